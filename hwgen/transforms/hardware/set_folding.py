"""SetFolding: choose the folding of every unit for a target cycles-per-frame with the least hardware.

    MVU(PE=1, SIMD=1)            =>   MVU(PE=p, SIMD=s, weights_in_luts=l)   with (MH/p)*(MW/s) <= target, least est_luts
    SlidingWindow(SIMD=1, MMV=1) =>   SlidingWindow(SIMD=c, MMV=k), its beats as wide as the MVU's SIMD
    MVU(8-bit x 8-bit, products in DSPs)  =>  MVU(packed_products=1)    two to a DSP, only where the DSPs run short
                                          or MVU(products_in_luts=1)   none in DSPs, likewise

Every folding a unit can take is tried (`Unit.folding_space`: layers have few divisors; an MVU
also with its weights in block RAM or in LUTs), so each unit gets the cheapest one by its own
estimates that meets the target: the least total of the whole design for that target (the
units' costs add up, no unit is faster than the target asks, so the pipeline is balanced), not
a greedy doubling. Cost is LUTs; block RAM is a constraint: the design's 18 Kb BRAMs stay
within `MAX_BRAM_SHARE` of the part's, less the weight memories its UltraRAM will take
(`hwgen.fit.uram_choice`, as `ChooseWeightMemories` places them). An 18 Kb BRAM is priced at the least of `BRAM_PRICES`
(LUTs) for which the cheapest foldings keep within that (a Lagrangian price: from nothing, where
block RAM is plentiful, so that it takes whatever it saves LUTs on, up to several times the
part's LUTs per BRAM, where it is scarce and a shallow, wide weight ROM goes to LUTs; where no
price fits, the nearest miss frees block RAM a unit at a time, the cheapest in LUTs per BRAM first,
since one price moves all memories of a like cost at once). A DSP is
priced at the LUTs it stands for on the part (its LUTs over its DSPs: 242 on the xc7z020); where
the chosen units still need more DSPs than the part has, they are freed a unit at a time, the
fewest LUTs per DSP first: the same folding with two products to a DSP (`MVU.packed_products`,
an unsigned input's: a stem's pixels) or its products built in LUTs (`MVU.products_in_luts`),
else a folding with fewer. A design whose DSPs fit keeps its multipliers in DSPs.
On a part with UltraRAM a URAM288 has a price of its own (`URAM_PRICES`, tried from nothing up,
the BRAM prices within each): a weight memory that UltraRAM may take costs the lesser of its
BRAMs and its URAMs at their prices, so where block RAM runs short a deep, narrow weight memory
(a URAM is 72 bits wide whatever its words) takes a wider shape that UltraRAM holds in few URAMs.
The design's block RAM is always counted with UltraRAM taking what `ChooseWeightMemories` will
give it.

The target is first checked against what the pipeline can reach: the slowest unit at its fastest
folding. A target below that cannot be met; the units are then folded for the reachable rate, not
for the unreachable one (which would buy hardware that only waits); the report then names the
limiting unit (`report.json` `target`) and the build warns.

`target_cycles=None` asks for the fastest folding that fits `part` by the units' estimates: the
smallest cycle count whose cheapest folding keeps the compute units within `part` (LUTs within
`MAX_LUT_SHARE` of the part, the rest left to FIFOs, width converters and routing; BRAM within
`MAX_BRAM_SHARE` of it and DSPs within the part). Cost mostly falls as the target rises, so a
bisection over the cycle counts the units can take finds it; not always: a slower folding may
stream more layers' weights from DRAM, whose buffers take LUTs, so where the slowest does not
fit, counts 20 % apart are tried, slowest first, and the bisection runs below the first that
fits; nor is fitting monotonic below its answer (one step of the block RAM's price moves memories
of a like shape together), so counts 20 % apart below that are tried too, and the bisection runs
again below the fastest of them that fits. Where none fits, that is an error naming the resource that binds, what the design needs
of it and what the part has. Where one does, `limit` says what stops a faster one
(`FoldLimit`): the resource the next faster cycle count needs beyond the part, the DRAM bandwidth
where that folding would fit with a DRAM that carried anything (the weights that block RAM
cannot hold would stream in fewer passes), or the pipeline's own minimum (its slowest unit at
its fastest folding). `apply` records it in the model (`FOLD_LIMIT_KEY`) for `report.json`.

With a DRAM to stream from (`DramBudget`: the board's bandwidth at the clock, its read masters
and their width; `--weight-memory auto`), an MVU also has every folding with its weights in DRAM,
its words padded to slots where they do not fill whole bus words (`hwgen.units.dram_mvu.plan_of`
and `slot_bits_of`: the weight-stationary
unit's cycles, LUTs and block RAM, and its DRAM bytes per frame). They are taken only where the
weights on chip do not fit: where the cheapest foldings at a price need more block RAM than the
part has, the layers that save the most block RAM per DRAM byte move to DRAM (`_spill`), while
their bytes per frame stay within what the DRAM carries in the target's cycles (`DramBudget.
bytes_per_frame`: the board's bandwidth, and the masters' bus words). So a design that fits on
chip is built as before, and the fastest folding that fits (`target_cycles=None`) counts the
DRAM bandwidth among the part's resources. The moved layers become DramMVUs
(`choose_weight_memories.move_to_dram`).

A window generator feeding a matrix-vector unit then takes, of its foldings that meet the target,
the one that is cheapest together with the width converter between them (none where its beats
carry exactly the MVU's SIMD elements).
"""

from __future__ import annotations

import bisect
import copy
import functools
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.fit import uram_choice, uram_eligible
from hwgen.ops import FOLDING, unit_of
from hwgen.parts import Part
from hwgen.units.base import Unit
from hwgen.units.datapath import memory_bram18, uram_count
from hwgen.units.dram_mvu import can_stream, pass_choices, plan_of, word_bits_of
from hwgen.units.dwc import DataWidthConverter
from hwgen.units.mvu import MVU

#: share of a part's LUTs that the compute units may take when folding for the fastest rate
MAX_LUT_SHARE = 0.85
#: share of a part's 18 Kb BRAMs that the compute units may take: all (the FIFOs that plumbing
#: adds are mostly shallow, in LUTs; a build that does not fit says so in its parts table)
MAX_BRAM_SHARE = 1.0
#: prices of an 18 Kb BRAM in LUTs that folding tries, the least first (see the module doc)
BRAM_PRICES = (0.0, *(float(2 ** k) for k in range(11)))
#: prices of a URAM288 in LUTs that folding tries on a part with UltraRAM, the least first
URAM_PRICES = (0.0, *(float(4 ** k) for k in range(8)))
#: the model's metadata key under which `SetFolding` records its `FoldLimit` (JSON)
FOLD_LIMIT_KEY = "hwgen_fold_limit"


@dataclass(frozen=True)
class Option:
    """One folding of one unit with its estimates."""

    knobs: dict[str, int]
    unit: Unit
    cycles: int
    resources: tuple[int, int, int]  # (LUTs, BRAM18, DSPs)
    #: per weight memory UltraRAM may take (`hwgen.fit.uram_eligible`): (its BRAM18, its URAMs)
    weights: tuple[tuple[int, int], ...] = ()
    #: bytes per frame read from DRAM: the weights stream from there (0: on chip)
    dram_bytes: int = 0
    #: passes a frame of a unit whose weights stream from DRAM (`hwgen.units.dram_mvu`)
    passes: int = 1
    #: (depth, width) of each weight memory in block RAM or UltraRAM (`Unit.ram_weight_memories`),
    #: listed once: folding weighs UltraRAM's share of them for every choice it tries
    ram_weights: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class DramBudget:
    """The DRAM the weights may stream from: the bandwidth a design on the board may plan on
    (`Board.dram_mbytes_per_s`), at the design's clock, through `masters` read masters of
    `bus_bits` each."""

    mbytes_per_s: float
    clock_mhz: float
    masters: int
    bus_bits: int
    #: bytes a frame that others take (FIFOs spilled to DRAM: `hwgen.units.dram_fifo`)
    reserved_bytes: int = 0

    def carried(self, cycles: int) -> float:
        """What the DRAM and the masters carry in a frame of `cycles` clocks."""
        by_dram = self.mbytes_per_s * cycles / self.clock_mhz
        return min(by_dram, self.masters * self.bus_bits // 8 * cycles)

    def bytes_per_frame(self, cycles: int) -> float:
        """What the DRAM and the masters carry for weights in a frame of `cycles` clocks."""
        return max(0.0, self.carried(cycles) - self.reserved_bytes)


@dataclass(frozen=True)
class FoldLimit:
    """What stops a faster folding than the fastest that fits: `resource` ("LUTs", "BRAM18",
    "DSPs" or "DRAM MB/s") of which the next faster cycle count, `faster_cycles`, needs `need`
    where the part (or the board's DRAM) has `have`; or "cycles": the pipeline takes no fewer than
    `need` cycles per frame, its slowest unit `unit` at its fastest folding."""

    resource: str
    need: float
    have: float
    faster_cycles: int | None = None
    unit: str | None = None
    #: of a DRAM `need`, the MB/s of the FIFOs spilled there (`hwgen.units.dram_fifo`)
    fifo_mbytes_per_s: float = 0.0

    def describe(self, clock_mhz: float) -> str:
        """One plain sentence, with the rates at `clock_mhz`."""
        if self.resource == "cycles":
            return (f"the pipeline's minimum: {self.unit} takes {self.need:,.0f} cycles per frame at its fastest "
                    "folding")
        fps = clock_mhz * 1e6 / self.faster_cycles
        faster = f"the next faster folding ({fps:,.{0 if fps >= 100 else 1}f} FPS)"
        if self.resource == "DRAM MB/s" and self.fifo_mbytes_per_s:
            return (f"DRAM bandwidth: {faster} would move {self.need:,.0f} MB/s through DRAM "
                    f"({self.fifo_mbytes_per_s:,.0f} of it the FIFOs spilled there), where the board carries "
                    f"{self.have:,.0f}")
        if self.resource == "DRAM MB/s":
            return (f"DRAM bandwidth: {faster} would read {self.need:,.0f} MB/s of weights from DRAM, where the "
                    f"board carries {self.have:,.0f} (block RAM holds the rest)")
        return (f"{self.resource}: {faster} needs {self.need:,.0f} for its compute units, where they may take "
                f"{self.have:,.0f}")


class SetFolding(Transformation):
    """Fold for `target_cycles` (None: the fastest that fits), pricing block RAM and DSPs on `part`."""

    def __init__(self, target_cycles: int | None, part: Part,
                 options: dict[str, list[Option]] | None = None, bus_bits: int | None = None,
                 dram: DramBudget | None = None, reserved_bram18: int = 0, reserved_luts: int = 0) -> None:
        """`options`: the units' foldings as `fold_options` gives them for this model, where one
        model is folded for many targets (they take seconds to list for an ImageNet network).
        `bus_bits`: the weights will stream from DRAM over a bus this wide: an MVU takes a folding
        whose weight words fill whole bus words where it has one (`ChooseWeightMemories`).
        `dram`: the weights may move to DRAM where they do not fit on chip (see the module doc).
        `reserved_bram18`: block RAM the compute units must leave to the FIFOs of plumbing (a
        build folding for the fastest rate learns it from a first plumbing: `hwgen.builder`);
        `reserved_luts`: LUTs they must leave beyond the part's share for plumbing (FIFOs spilled
        to DRAM take more than that share leaves)."""
        super().__init__()
        self.target_cycles = None if target_cycles is None else int(target_cycles)
        self.part = part
        self.options = options
        self.bus_bits = bus_bits
        self.dram = dram
        self._bram_budget = MAX_BRAM_SHARE * part.bram18 - reserved_bram18
        self._lut_budget = MAX_LUT_SHARE * part.luts - reserved_luts
        self._dram_options: dict[str, list[Option]] = {}
        self._lut_product_options: dict[str, list[Option]] = {}
        #: what stops a faster folding, once `choose` has found the fastest that fits (else None)
        self.limit: FoldLimit | None = None

    def apply(self, model: ModelWrapper):
        nodes = [n for n in model.graph.node if n.op_type in FOLDING]
        if not nodes:
            return model, False
        chosen = self.choose(model)
        if self.limit is not None:
            model.set_metadata_prop(FOLD_LIMIT_KEY, json.dumps(asdict(self.limit)))
        changed = False
        for node in nodes:
            op = getCustomOp(node)
            knobs = chosen[node.name].knobs
            if node.op_type == "MVU":  # a DSP a product unless freeing them chose otherwise (`_free_dsps`)
                knobs = {"products_in_luts": 0, "packed_products": 0, **knobs}
            for knob, value in knobs.items():
                if op.get_nodeattr(knob) != value:
                    op.set_nodeattr(knob, value)
                    changed = True
        to_dram = {name: o.passes for name, o in chosen.items() if o.dram_bytes}
        if to_dram:
            from hwgen.transforms.hardware.choose_weight_memories import move_to_dram

            # the folding was chosen for the whole graph and is final: another pass would fold the
            # units left without the ones now in DRAM (which take no folding), so none is asked for
            move_to_dram(model, to_dram, self.dram.bus_bits)
            return model, False
        return model, changed

    def choose(self, model: ModelWrapper) -> dict[str, Option]:
        """The folding of every unit that folding chooses for, by node name, the graph left as it
        is (a sweep over targets reads the chosen units' estimates without rewriting the graph)."""
        nodes = [n for n in model.graph.node if n.op_type in FOLDING]
        options = self._options(model)
        reachable = max(min(o.cycles for o in opts) for opts in options.values())
        if self.target_cycles is None:
            cycles = self._fastest_fitting(options, reachable)
        else:
            cycles = max(self.target_cycles, reachable)
        chosen, prices = self._fold(options, cycles)
        _match_window_beats(model, nodes, options, chosen, cycles, prices,
                            self._bram_budget - self._block_ram(chosen))
        if self.target_cycles is None:
            self.limit = self._limit(options, max(o.cycles for o in chosen.values()), reachable)
        return chosen

    def least_block_ram(self, model: ModelWrapper) -> int:
        """The BRAM18s the compute units of `model` take at the slowest folding of all (weights
        in DRAM in the most passes where block RAM runs short): the most block RAM any folding
        leaves to the FIFOs is the part's less this."""
        options = self._options(model)
        slowest = self.slowest_cycles(model)
        starved = copy.copy(self)  # no block RAM to spend: the prices and passes that take the least
        starved._bram_budget = 0
        return starved._block_ram(starved._fold(options, slowest)[0])

    def slowest_cycles(self, model: ModelWrapper) -> int:
        """The cycles a frame of the slowest folding of all (weights in DRAM where they may be)."""
        options = self._options(model)
        return max(o.cycles for opts in [*options.values(), *self._all_in_dram(options)] for o in opts)

    def _options(self, model: ModelWrapper) -> dict[str, list[Option]]:
        options = self.options if self.options is not None else fold_options(model)
        if self.bus_bits:
            options = {name: _whole_bus_words(opts, self.bus_bits) for name, opts in options.items()}
        return options

    def _all_in_dram(self, options: dict[str, list[Option]]) -> list[list[Option]]:
        """Every unit's foldings with its weights in DRAM (none without a DRAM)."""
        return [self._in_dram(name, opts) for name, opts in options.items()] if self.dram else []

    def _fold(self, options: dict[str, list[Option]], cycles: int) -> tuple[dict[str, Option], tuple]:
        """The cheapest option of every unit within `cycles` at the least BRAM price of
        `BRAM_PRICES` that keeps the design's block RAM within `MAX_BRAM_SHARE` of the part and
        its LUTs within their budget (where no dearer block RAM at that URAM price brings the
        LUTs within it, the least that keeps them within the part: a cheaper block RAM may spill
        a layer to DRAM whose buffers take more LUTs than a dearer one's), and the prices used
        (on a part with UltraRAM, the least URAM price of `URAM_PRICES` with which some BRAM
        price does). Where none does (the design
        cannot fit), the prices of the nearest miss whose LUTs fit the part, else price 0: the
        design as cheap in LUTs as it comes (the highest price would move every memory to LUTs,
        tens of times the part's, and fit no better)."""
        budget = self._bram_budget
        dsp_price = self.part.luts / self.part.dsp
        nearest = None  # (block RAM beyond the part, prices) of the nearest miss within the LUTs
        within_part = None  # the first (chosen, prices) in block RAM whose LUTs fit the part, not their budget
        for uram_price in URAM_PRICES if self.part.uram else (0.0,):
            for bram_price in BRAM_PRICES:
                prices = (1.0, bram_price, dsp_price, uram_price)
                chosen = self._pick(options, cycles, prices)
                luts = sum(o.resources[0] for o in chosen.values())
                beyond = self._block_ram(chosen) - budget
                if beyond <= 0 and luts <= self._lut_budget:
                    break
                if beyond <= 0 and luts <= self.part.luts and within_part is None:
                    within_part = (chosen, prices)
                if luts <= self.part.luts and (nearest is None or beyond < nearest[0]):
                    nearest = (beyond, prices)
            else:
                if within_part is None:
                    continue
                # the block RAM fits, the LUTs not their budget at any dearer block RAM: as it was
                chosen, prices = within_part
            break
        else:  # no price fits the part: the nearest miss whose LUTs fit (UltraRAM priced so that it
            # takes the most), else the design as cheap in LUTs as it comes (memories stay put)
            prices = nearest[1] if nearest else (1.0, BRAM_PRICES[0], dsp_price, URAM_PRICES[0])
            chosen = self._pick(options, cycles, prices)
            self._free_block_ram(chosen, options, cycles, dsp_price)
        _spend_block_ram(chosen, options, cycles, budget, self._block_ram)
        self._free_dsps(chosen, options, cycles)
        return chosen, prices

    def _free_dsps(self, chosen: dict[str, Option], options: dict[str, list[Option]], cycles: int) -> None:
        """Where the chosen units need more DSPs than the part has, free them a unit at a time,
        the fewest extra LUTs per DSP freed first, while the LUTs stay within their budget, the
        block RAM within its (or where it was) and the DRAM bytes within what the DRAM carries:
        first by packing two products to a DSP or building them in LUTs in the foldings chosen
        (`MVU.packed_products`, `MVU.products_in_luts`);
        where that cannot free enough, from the foldings as chosen again, by any folding within
        `cycles` with fewer DSPs (another PE / SIMD, weights on chip or in DRAM, the products in
        DSPs or in LUTs). Only then: where the DSPs fit, a multiplier in a DSP costs no LUTs, so
        a design that fits keeps them (and its RTL)."""
        if sum(o.resources[2] for o in chosen.values()) <= self.part.dsp:
            return
        products, elsewhere = dict(chosen), {}

        def products_elsewhere(name: str, now: Option) -> list[Option]:
            if id(now) not in elsewhere:
                elsewhere[id(now)] = (now, self._products_elsewhere(now))  # `now` held: its id stays its own
            return elsewhere[id(now)][1]

        if self._free_dsps_by(products, cycles, products_elsewhere):
            chosen.update(products)
        else:
            self._free_dsps_by(chosen, cycles, lambda name, now: self._dsp_choices(name, options[name]))

    def _free_dsps_by(self, chosen: dict[str, Option], cycles: int,
                      choices: Callable[[str, Option], list[Option]]) -> bool:
        """`_free_dsps` with each unit's `choices`; whether the DSPs then fit."""
        dsps = sum(o.resources[2] for o in chosen.values())
        luts = sum(o.resources[0] for o in chosen.values())
        used = sum(o.dram_bytes for o in chosen.values())
        carried = self.dram.bytes_per_frame(cycles) if self.dram else 0
        block_ram = max(self._bram_budget, self._block_ram(chosen))
        while dsps > self.part.dsp:
            swaps = []
            for name, now in chosen.items():
                if not now.resources[2]:
                    continue
                for o in choices(name, now):
                    freed, extra = now.resources[2] - o.resources[2], o.resources[0] - now.resources[0]
                    if (freed <= 0 or o.cycles > cycles or luts + extra > self._lut_budget
                            or used - now.dram_bytes + o.dram_bytes > max(carried, used)):
                        continue
                    swaps.append((extra / freed, name, o))
            for _, name, o in sorted(swaps, key=lambda s: s[0]):
                if o.resources[1] <= chosen[name].resources[1] or self._block_ram({**chosen, name: o}) <= block_ram:
                    now = chosen[name]
                    dsps, luts = dsps - now.resources[2] + o.resources[2], luts - now.resources[0] + o.resources[0]
                    used += o.dram_bytes - now.dram_bytes
                    chosen[name] = o
                    break
            else:
                return False
        return True

    def _dsp_choices(self, name: str, options: list[Option]) -> list[Option]:
        """Every folding of a unit (on chip, or with its weights in DRAM) and, for an MVU whose
        products take DSPs, each of them with its products built in LUTs."""
        if name not in self._lut_product_options:
            every = [*options, *(self._in_dram(name, options) if self.dram else ())]
            self._lut_product_options[name] = every + [o for option in every for o in self._products_elsewhere(option)]
        return self._lut_product_options[name]

    def _products_elsewhere(self, option: Option) -> list[Option]:
        """`option` (an MVU, on chip or with its weights in DRAM) with its DSP products two to
        a DSP (`MVU.packed_products`, where they can be) and built in LUTs (`products_in_luts`);
        none where it has no DSP products."""
        unit = option.unit
        if not isinstance(unit, MVU) or not unit.est_dsps():
            return []
        ways = [{"packed_products": 1, "products_in_luts": 0}] if unit.can_pack_products() else []
        return [self._with_products(option, **way) for way in [*ways, {"products_in_luts": 1, "packed_products": 0}]]

    def _with_products(self, option: Option, **knob: int) -> Option:
        """`option` with its products built as `knob` says."""
        unit = option.unit.refolded(**knob)
        knobs = {**option.knobs, **knob}
        if option.dram_bytes:
            plan = plan_of(unit, self.dram.bus_bits, option.passes)
            return replace(option, knobs=knobs, unit=unit, resources=(plan.luts, plan.brams, plan.dsps))
        return replace(option, knobs=knobs, unit=unit,
                       resources=(int(unit.est_luts()), int(unit.est_brams()), int(unit.est_dsps())))

    def _free_block_ram(self, chosen: dict[str, Option], options: dict[str, list[Option]], cycles: int,
                        dsp_price: float) -> None:
        """Where no single price fits the block RAM (the nearest miss), free it one unit at a time:
        while the design needs more than the budget, take the folding within `cycles` (on chip, or
        with its weights in DRAM where the bandwidth carries them) that frees block RAM for the
        fewest LUTs (a DSP at `dsp_price`) per BRAM18 freed, while the LUTs stay within
        `MAX_LUT_SHARE` of the part and the DSPs within it. A price moves every memory of a like
        cost together, and one step of the price ladder can move too many (LUTs overflow) where
        the step before moved too few: Bi-Real-18 on the xc7z020 missed by 3 BRAM18 of 280 with
        17,000 LUTs to spare."""
        lut_cap, carried = self._lut_budget, self.dram.bytes_per_frame(cycles) if self.dram else 0
        need = self._block_ram(chosen)
        while need > self._bram_budget:
            luts, dsps, used = (sum(o.resources[0] for o in chosen.values()), sum(o.resources[2] for o in chosen.values()),
                                sum(o.dram_bytes for o in chosen.values()))
            swaps = []
            for name, opts in options.items():
                now = chosen[name]
                for o in [*opts, *(self._in_dram(name, opts) if self.dram else ())]:
                    freed, extra_luts, extra_dsps = (now.resources[1] - o.resources[1], o.resources[0] - now.resources[0],
                                                     o.resources[2] - now.resources[2])
                    if (freed <= 0 or o.cycles > cycles or luts + extra_luts > max(lut_cap, luts)
                            or dsps + extra_dsps > max(self.part.dsp, dsps)
                            or used - now.dram_bytes + o.dram_bytes > max(carried, used)):
                        continue
                    swaps.append(((max(extra_luts, 0) + dsp_price * max(extra_dsps, 0)) / freed, name, o))
            for _, name, o in sorted(swaps, key=lambda s: s[0]):
                after = self._block_ram({**chosen, name: o})
                if after < need:
                    chosen[name], need = o, after
                    break
            else:
                return

    def _pick(self, options: dict[str, list[Option]], cycles: int, prices: tuple[float, ...]) -> dict[str, Option]:
        """Each unit's cheapest option within `cycles` at `prices`, weights moved to DRAM where
        block RAM cannot hold them (`_spill`)."""
        return self._spill({name: _cheapest(opts, cycles, prices) for name, opts in options.items()},
                           options, cycles, prices)

    def _spill(self, chosen: dict[str, Option], options: dict[str, list[Option]], cycles: int,
               prices: tuple[float, ...]) -> dict[str, Option]:
        """Where the chosen units need more block RAM than the part has and there is a DRAM: the
        MVUs whose weights in DRAM (their foldings within `cycles`, in any number of passes) save
        the most block RAM per DRAM byte move there (what the design's block RAM loses without the
        unit: UltraRAM holds some weights, and takes others where one leaves; ranked by its own
        BRAM18s, a unit whose weights UltraRAM held went to DRAM and freed no block RAM), in
        that order, until the block RAM fits: each in its cheapest such folding whose DRAM bytes
        per frame stay, with the others', within what the DRAM carries in `cycles` (more passes
        cost less block RAM and more bandwidth).
        Foldings whose weight words fill whole bus words first (where a unit has some), so that
        no bandwidth goes to padding; where the block RAM does not fit so, any folding."""
        if self.dram is None or self._block_ram(chosen) <= self._bram_budget:
            return chosen
        whole = self._spill_by(chosen, options, cycles, prices, padded=False)
        if self._block_ram(whole) <= self._bram_budget:
            return whole
        return self._spill_by(chosen, options, cycles, prices, padded=True)

    def _spill_by(self, chosen: dict[str, Option], options: dict[str, list[Option]], cycles: int,
                  prices: tuple[float, ...], padded: bool) -> dict[str, Option]:
        """`_spill` with each unit's foldings in DRAM, padded ones too or only those that fill
        whole bus words (where it has some)."""
        budget, bits = self._bram_budget, self.dram.bus_bits
        moves, before = [], self._block_ram(chosen)
        for name, opts in options.items():
            in_dram = self._in_dram(name, opts)
            if not in_dram:
                continue
            if not padded:
                in_dram = [o for o in in_dram if word_bits_of(o.unit) % bits == 0] or in_dram
            held = before - self._block_ram({other: o for other, o in chosen.items() if other != name})
            saving = [o for o in in_dram if o.cycles <= cycles and o.resources[1] < held]
            if saving:
                moves.append((max((held - o.resources[1]) / o.dram_bytes for o in saving), name, saving))
        out, carried = dict(chosen), self.dram.bytes_per_frame(cycles)
        used = sum(o.dram_bytes for o in out.values())
        for _, name, saving in sorted(moves, key=lambda m: -m[0]):
            if self._block_ram(out) <= budget:
                break
            carriable = [o for o in saving if used + o.dram_bytes <= carried]
            if carriable:
                out[name] = min(carriable, key=lambda o: (_cost(o, prices), o.cycles))
                used += out[name].dram_bytes
        return out

    def _in_dram(self, name: str, options: list[Option]) -> list[Option]:
        """The foldings of an MVU (of `options`) with its weights in DRAM: those whose weights
        are not in LUTs, in each number of passes, priced by `plan_of` (a weight word narrower
        than the bus, or not a whole number of bus words, in a padded slot: `slot_bits_of`).
        Two banks of input and output buffers: with one (`DramMVU.banks`), a pass's input and
        output wait for the compute, and in a pipeline folded to one rate the neighbours then
        take as long again (ReActNet-A's 1024-channel block on the PYNQ-Z2: 292,267 cycles a
        frame where the units' estimates said 147,456)."""
        if name not in self._dram_options:
            bits = self.dram.bus_bits
            self._dram_options[name] = [
                replace(o, cycles=plan.cycles, resources=(plan.luts, plan.brams, plan.dsps), weights=(),
                        dram_bytes=plan.dram_bytes, passes=passes, ram_weights=())
                for o in options if isinstance(o.unit, MVU) and can_stream(o.unit, bits, padded=True)
                for passes in pass_choices(o.unit.vectors_per_frame)
                for plan in (plan_of(o.unit, bits, passes),)]
        return self._dram_options[name]

    def _block_ram(self, chosen: dict[str, Option]) -> int:
        """The chosen units' BRAM18s on the part, less those of the weight memories that the
        part's UltraRAM takes (as `ChooseWeightMemories` places them)."""
        held = sum(o.resources[1] for o in chosen.values())
        if not self.part.uram:
            return held
        weights = [memory for o in chosen.values() if not o.dram_bytes for memory in o.ram_weights]
        return held - sum(memory_bram18(d, w) for (d, w), u in zip(weights, uram_choice(weights, self.part.uram)) if u)

    def _fastest_fitting(self, options: dict[str, list[Option]], reachable: int) -> int:
        """The smallest cycle count (of those some unit takes, from `reachable` up) whose cheapest
        folding fits the part, by bisection below the slowest that fits (the slowest of all, or
        where that does not fit, the slowest of a ladder of counts 20 % apart), then below the
        fastest of a ladder of counts 20 % apart below that answer which fits (fitting is not
        monotonic); an error naming what binds where none fits."""
        part = self.part
        candidates = self._candidates(options, reachable)
        limits = self._limits()

        def needs(cycles: int) -> dict[str, int]:
            return self._needs(self._fold(options, cycles)[0])

        @functools.cache
        def fits(cycles: int) -> bool:
            reserved = self.dram is None or self.dram.reserved_bytes <= self.dram.carried(cycles)
            return reserved and all(need <= limits[name] for name, need in needs(cycles).items())

        lo, hi = 0, len(candidates) - 1
        if not fits(candidates[hi]):
            # slower is not always leaner: a slower folding may stream more layers' weights from
            # DRAM, whose buffers take LUTs; look for one that fits, slowest first, a step of 20 %
            slower_first = [bisect.bisect_right(candidates, candidates[-1] / 1.2 ** k) - 1
                            for k in range(1, math.ceil(math.log(candidates[-1] / candidates[0], 1.2)) + 1)]
            hi = next((k for k in dict.fromkeys(slower_first) if k >= 0 and fits(candidates[k])), None)
        if hi is None:
            hi = len(candidates) - 1
            need = needs(candidates[hi])
            name = max(limits, key=lambda r: need[r] / max(limits[r], 1))
            raise HwgenError(
                f"no folding fits the {part.device}: even the slowest ({candidates[hi]:,} cycles per frame) needs "
                f"{need[name]:,} {name} for its compute units, where the part has {limits[name]:,.0f} "
                f"({_share(name, part.bram18 - self._bram_budget, MAX_LUT_SHARE * part.luts - self._lut_budget)})",
                where="--target-fps max")
        lo = _bisect_fitting(lambda k: fits(candidates[k]), lo, hi)
        # nor is fitting monotonic below that: a faster folding may fit where one between does not
        # (the block RAM's price steps move memories together); look at counts 20 % apart below
        # it, and bisect again below the fastest of them that fits
        faster = [k for k in dict.fromkeys(bisect.bisect_right(candidates, candidates[lo] / 1.2 ** j) - 1
                                           for j in range(1, math.ceil(math.log(candidates[lo] / candidates[0], 1.2)) + 1))
                  if 0 <= k < lo]
        fitting = [k for k in faster if fits(candidates[k])]
        if fitting:
            best = fitting[-1]
            above = [k for k in faster if k < best]
            lo = _bisect_fitting(lambda k: fits(candidates[k]), above[0] + 1 if above else 0, best)
        return candidates[lo]

    def _candidates(self, options: dict[str, list[Option]], reachable: int) -> list[int]:
        """The cycle counts some unit's folding takes (in DRAM too), from `reachable` up."""
        return sorted({o.cycles for opts in [*options.values(), *self._all_in_dram(options)] for o in opts
                       if o.cycles >= reachable})

    def _limits(self) -> dict[str, float]:
        """What of the part the compute units may take."""
        return {"LUTs": self._lut_budget, "BRAM18": self._bram_budget, "DSPs": self.part.dsp}

    def _needs(self, chosen: dict[str, Option]) -> dict[str, int]:
        """The LUTs, block RAM (UltraRAM taking what it will) and DSPs of the chosen units."""
        picks = chosen.values()
        luts, _, dsps = (sum(p.resources[i] for p in picks) for i in range(3))
        return {"LUTs": luts, "BRAM18": self._block_ram(chosen), "DSPs": dsps}

    def _limit(self, options: dict[str, list[Option]], achieved: int, reachable: int) -> FoldLimit:
        """What stops a folding faster than the fastest that fits (its slowest unit `achieved`
        cycles per frame): the pipeline's minimum where that is `reachable`; else at the largest
        cycle count below it, the DRAM's bandwidth where a DRAM that carried anything would let
        that fit, or the resource the most over what the compute units may take."""
        faster = [c for c in self._candidates(options, reachable) if c < achieved]
        if not faster:
            return _pipeline_minimum(options, reachable)
        faster, limits = faster[-1], self._limits()
        if self.dram is not None:
            boundless = copy.copy(self)
            boundless.dram = replace(self.dram, mbytes_per_s=float("inf"), masters=1 << 20)
            chosen = boundless._fold(options, faster)[0]
            unbound = boundless._needs(chosen)
            if all(unbound[name] <= limits[name] for name in limits):
                per_s = self.dram.clock_mhz / faster  # frames per microsecond: bytes a frame -> MB/s
                moved = sum(p.dram_bytes for p in chosen.values()) + self.dram.reserved_bytes
                return FoldLimit("DRAM MB/s", round(moved * per_s, 1), round(self.dram.carried(faster) * per_s, 1),
                                 faster, fifo_mbytes_per_s=round(self.dram.reserved_bytes * per_s, 1))
        need = self._needs(self._fold(options, faster)[0])
        name = max(limits, key=lambda r: need[r] / max(limits[r], 1))
        return FoldLimit(name, need[name], round(limits[name]), faster)


def _pipeline_minimum(options: dict[str, list[Option]], reachable: int) -> FoldLimit:
    """The limit of a design folded at the fastest its slowest unit goes."""
    unit = next(name for name, opts in options.items() if min(o.cycles for o in opts) == reachable)
    return FoldLimit("cycles", reachable, reachable, unit=unit)


def _share(resource: str, reserved_bram18: float, reserved_luts: float = 0) -> str:
    """What of the part's `resource` the compute units may take, in words."""
    if resource == "LUTs" and reserved_luts:
        return (f"{MAX_LUT_SHARE:.0%} of its LUTs less {reserved_luts:,.0f} that plumbing takes beyond the rest, "
                "with FIFOs in DRAM")
    if resource == "LUTs":
        return f"{MAX_LUT_SHARE:.0%} of its LUTs, the rest left to plumbing"
    if resource == "BRAM18" and reserved_bram18:
        return f"less {reserved_bram18:,.0f} that the FIFOs take"
    return "all of them"


def _bisect_fitting(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """The least index in [lo, hi] whose candidate fits, by bisection, `hi` fitting."""
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _whole_bus_words(options: list[Option], bus_bits: int) -> list[Option]:
    """The foldings of an MVU whose weight words are whole bus words, where there are some."""
    if not isinstance(options[0].unit, MVU):
        return options
    whole = [o for o in options if word_bits_of(o.unit) % bus_bits == 0]
    return whole or options


def fold_options(model: ModelWrapper) -> dict[str, list[Option]]:
    """Every folding of every unit that folding chooses for, by node name."""
    return {n.name: _options(model, n) for n in model.graph.node if n.op_type in FOLDING}


def _options(model: ModelWrapper, node) -> list[Option]:
    return options_of(unit_of(model, node))  # its arrays read and checked once


def options_of(base: Unit) -> list[Option]:
    """Every folding of `base` (`Unit.folding_space`) with its estimates: an MVU's products in
    DSPs, as folding starts (`SetFolding._free_dsps` moves them to LUTs where DSPs run short)."""
    if isinstance(base, MVU) and (base.products_in_luts or base.packed_products):
        base = base.refolded(products_in_luts=0, packed_products=0)
    options = []
    for knobs in base.folding_space():
        unit = base.refolded(**knobs)
        resources = (int(unit.est_luts()), int(unit.est_brams()), int(unit.est_dsps()))
        ram_weights = tuple(unit.ram_weight_memories())
        weights = tuple((memory_bram18(d, w), uram_count(d, w)) for d, w in ram_weights if uram_eligible(d, w))
        options.append(Option(knobs, unit, int(unit.est_cycles()), resources, weights, ram_weights=ram_weights))
    return options


def _price(resources: tuple[int, int, int], prices: tuple[float, ...]) -> float:
    return sum(r * p for r, p in zip(resources, prices))


def _cost(option: Option, prices: tuple[float, ...]) -> float:
    """The option's LUTs, BRAM18 and DSPs at `prices`, each weight memory that UltraRAM may take
    priced in URAMs where that costs less than its block RAM (`prices[3]` a URAM's price): so on
    a part with UltraRAM, once URAMs grow dear, a deep weight memory takes the shape that wastes
    the least of them (a classifier's 8-bit weights 1,024,000 deep and 8 wide take 250 URAMs for
    8 Mbit; 128 wide, 32)."""
    cost = _price(option.resources, prices)
    if len(prices) > 3 and prices[1]:
        cost -= sum(max(0.0, prices[1] * brams - prices[3] * urams) for brams, urams in option.weights)
    return cost


def _cheapest(options: list[Option], cycles: int, prices: tuple[float, float, float]) -> Option:
    """The least costly option within `cycles` (of equal cost, the one with the fewest block
    RAMs, then the slowest); the fastest one if none is."""
    meeting = [o for o in options if o.cycles <= cycles]
    if meeting:
        return min(meeting, key=lambda o: (_cost(o, prices), o.resources[1], o.cycles))
    return min(options, key=lambda o: (o.cycles, _cost(o, prices)))


def _spend_block_ram(chosen: dict[str, Option], options: dict[str, list[Option]], cycles: int,
                     budget: float, block_ram: Callable[[dict[str, Option]], float]) -> None:
    """Spend the block RAM that the price left unused: while some unit has an option within
    `cycles` with fewer LUTs after which the design's block RAM (`block_ram`: UltraRAM taking
    what it will) stays within `budget`, take the one that saves the most LUTs per extra BRAM. A
    single price moves memories of a like shape together (two shallow weight ROMs that save about
    the same LUTs per BRAM go to LUTs at the same price, though one of them would fit in block
    RAM); this takes back what fits."""
    while True:
        swaps = []
        for name, opts in options.items():
            now = chosen[name]
            for o in opts:
                saved, extra = now.resources[0] - o.resources[0], o.resources[1] - now.resources[1]
                if o.cycles > cycles or saved <= 0 or o.resources[2] > now.resources[2]:
                    continue
                swaps.append((saved / max(extra, 0.5), name, o))
        swaps.sort(key=lambda s: -s[0])
        for _, name, o in swaps:
            if block_ram({**chosen, name: o}) <= budget:
                chosen[name] = o
                break
        else:
            return


def _match_window_beats(model: ModelWrapper, nodes, options, chosen, cycles: int, prices,
                        bram_left: float) -> None:
    """A window generator whose reader is an MVU: of its foldings within `cycles` whose extra
    block RAM fits in `bram_left`, the one that costs least together with the width converter
    its beats need to reach the MVU's SIMD (none where they match)."""
    for node in nodes:
        if node.op_type != "SlidingWindow":
            continue
        readers = model.find_consumers(node.output[0])
        if len(readers) != 1 or readers[0].op_type != "MVU" or readers[0].name not in chosen:
            continue
        simd = chosen[readers[0].name].unit.SIMD
        now = chosen[node.name]
        meeting = [o for o in options[node.name]
                   if o.cycles <= cycles and o.resources[1] - now.resources[1] <= bram_left]
        if meeting:
            chosen[node.name] = min(meeting, key=lambda o: (_with_converter(o, simd, prices), o.cycles))
            bram_left -= chosen[node.name].resources[1] - now.resources[1]


def _with_converter(option: Option, elems: int, prices: tuple[float, float, float]) -> float:
    """The cost of `option` and of a width converter from its output beats to `elems` per beat
    (its LUTs: a converter holds no memory)."""
    out = option.unit.outputs[0]
    cost = _cost(option, prices)
    if out.elems_per_beat == elems:
        return cost
    return cost + DataWidthConverter(out.dtype, out.elems_per_beat, elems, out.elems_per_frame).est_luts()
