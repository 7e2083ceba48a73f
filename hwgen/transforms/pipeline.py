"""The whole lowering, on one screen.

    INGEST       any supported export -> one opset, static shapes, QONNX domains, datatypes
    STREAMLINE   float QONNX -> integer graph (MatMul / XnorPopcountMatMul / MultiThreshold)
    (partition)  host pre | accelerator | host post        (hwgen.transforms.partition)
    TO_HARDWARE  integer graph -> hardware-unit nodes
    FOLD         PE / SIMD per unit; weights in ROM, loaded after reset (UltraRAM), or in DRAM
    PLUMBING     fan-out, width converters and a FIFO on every edge (those at joins that block RAM
                 cannot hold spilled to DRAM)

Each list is applied in order, each rewrite to its fixed point; after a stage, `check_stage` asserts
what the graph may now contain. `hwgen.builder` runs the stages as steps with a checkpoint after each.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames, GiveUniqueNodeNames, GiveUniqueParameterTensors, RemoveStaticGraphInputs,
    RemoveUnusedTensors, SortGraph,
)
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

from hwgen.config import BuildConfig
from hwgen.errors import HwgenError, ToolError
from hwgen.ops import COMPUTE_OPS, PLUMBING_OPS
from hwgen.deploy.boards import lookup_board
from hwgen.fit import dram_mbytes_per_s
from hwgen.parts import lookup_part
from hwgen.transforms.partition import ACCELERATOR_OPS
from hwgen.transforms.hardware.absorb_flatten_into_matmul import AbsorbFlattenIntoMatMul
from hwgen.transforms.hardware.infer_add_streams import InferAddStreams
from hwgen.transforms.hardware.infer_concat_streams import InferConcatStreams
from hwgen.transforms.hardware.infer_lookup import InferLookup
from hwgen.transforms.hardware.infer_sum_pool import InferSumPool
from hwgen.transforms.hardware.apply_folding_config import ApplyFoldingConfig
from hwgen.transforms.hardware.choose_weight_memories import ChooseWeightMemories
from hwgen.transforms.hardware.infer_convolution import InferConvolution
from hwgen.transforms.hardware.infer_maxpool import InferMaxPool
from hwgen.transforms.hardware.infer_label_select import InferLabelSelect
from hwgen.transforms.hardware.infer_mvu import InferMVU
from hwgen.transforms.hardware.infer_thresholding import InferThresholding
from hwgen.transforms.hardware.insert_data_width_converters import InsertDataWidthConverters
from hwgen.transforms.hardware.insert_duplicate_streams import InsertDuplicateStreams
from hwgen.transforms.hardware.insert_fifos import InsertFifos
from hwgen.transforms.hardware.remove_layout_transposes import RemoveLayoutTransposes
from hwgen.transforms.hardware.set_folding import DramBudget, SetFolding
from hwgen.transforms.hardware.size_fifos import SizeFifos
from hwgen.transforms.hardware.spill_fifos import SpillFifos
from hwgen.transforms.hardware.use_frame_mvus import UseFrameMVUs
from hwgen.transforms.fixed_point import FixedPoint
from hwgen.transforms.ingest.annotate_integer_weights import AnnotateIntegerWeights
from hwgen.transforms.ingest.annotate_sign_outputs import AnnotateSignOutputs
from hwgen.transforms.ingest.collapse_per_pixel_constants import CollapsePerPixelConstants
from hwgen.transforms.ingest.cancel_inverse_transposes import CancelInverseTransposes
from hwgen.transforms.ingest.div_by_power_of_two_to_mul import DivByPowerOfTwoToMul
from hwgen.transforms.ingest.fix_batch_size import FixDynamicBatch
from hwgen.transforms.ingest.fold_constant_nodes import FoldConstantNodes
from hwgen.transforms.ingest.infer_datatypes import InferDataTypesKeepingAnnotations
from hwgen.transforms.ingest.multithreshold_channels_first import MultiThresholdChannelsFirst
from hwgen.transforms.ingest.normalize_domains import NormalizeCustomOpDomains
from hwgen.transforms.ingest.remove_reshapes_around_elementwise import RemoveReshapesAroundElementwise
from hwgen.transforms.ingest.split_multithreshold_scale import SplitMultiThresholdScale
from hwgen.transforms.ingest.upgrade_opset import UpgradeOpset
from hwgen.transforms.streamline.absorb_affine_into_multithreshold import AbsorbAffineIntoMultiThreshold
from hwgen.transforms.streamline.absorb_monotonic_chain_into_topk import AbsorbMonotonicChainIntoTopK
from hwgen.transforms.streamline.convert_bipolar_matmul_to_xnor_popcount import ConvertBipolarMatMulToXnorPopcount
from hwgen.transforms.streamline.convert_gemm_to_matmul import ConvertGemmToMatMul
from hwgen.transforms.streamline.duplicate_forked_elementwise import DuplicateForkedElementwise
from hwgen.transforms.streamline.fold_average_pool_into_sum_pool import FoldAveragePoolIntoSumPool
from hwgen.transforms.streamline.merge_concat_scales import MergeConcatScales
from hwgen.transforms.streamline.propagate_integer_datatypes import PropagateIntegerDatatypes
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import (
    FoldElementwiseChainIntoThresholds, accumulator_range, check_exact_range,
)
from hwgen.transforms.streamline.fold_join_into_scaled_add import FoldJoinIntoScaledAdd
from hwgen.transforms.streamline.fold_scaled_sum import FoldScaledSum
from hwgen.transforms.streamline.fold_weight_quant_into_matmul import FoldWeightQuantIntoMatMul
from hwgen.transforms.streamline.move_scalar_mul_past_matmul import MoveScalarMulPastMatMul
from hwgen.transforms.streamline.remove_identity_ops import RemoveIdentityOps
from hwgen.transforms.streamline.split_quant_scale import SplitQuantScale

INGEST: list[Transformation] = [
    NormalizeCustomOpDomains(),
    UpgradeOpset(),
    RemoveStaticGraphInputs(),          # IR < 4 lists initializers among the graph inputs
    FixDynamicBatch(),
    InferShapes(),
    GiveUniqueParameterTensors(),
    FoldConstantNodes(),                # constant ops at the model's opset (ABC-Net's weight bases)
    FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]),  # Shape -> Gather -> ... -> Reshape
    FoldTransposeIntoQuantInit(),
    CollapsePerPixelConstants(),        # `bias.expand_as(x)`: a per-channel parameter written per pixel
    MultiThresholdChannelsFirst(),
    CancelInverseTransposes(),
    RemoveReshapesAroundElementwise(),
    DivByPowerOfTwoToMul(),
    AnnotateSignOutputs(),
    AnnotateIntegerWeights(),
    SplitMultiThresholdScale(),
    RemoveUnusedTensors(),
    InferDataTypesKeepingAnnotations(),
]
#: after ingest's op check, so that its errors name the nodes as the user's file does
NAMES: list[Transformation] = [GiveUniqueNodeNames(), GiveReadableTensorNames()]

STREAMLINE: list[Transformation] = [
    RemoveIdentityOps(),
    ConvertGemmToMatMul(),
    FoldWeightQuantIntoMatMul(),
    SplitQuantScale(),
    FixedPoint([  # one layer's result is the next one's start: repeat until nothing moves
        DuplicateForkedElementwise(),
        MoveScalarMulPastMatMul(),
        ConvertBipolarMatMulToXnorPopcount(),
        FoldAveragePoolIntoSumPool(),
        MergeConcatScales(),
        FoldElementwiseChainIntoThresholds(),
        FoldScaledSum(),
        FoldJoinIntoScaledAdd(),
    ]),
    AbsorbAffineIntoMultiThreshold(),
    AbsorbMonotonicChainIntoTopK(),
    RemoveIdentityOps(),
    PropagateIntegerDatatypes(),
]

TO_HARDWARE: list[Transformation] = [
    AbsorbFlattenIntoMatMul(),
    InferConvolution(),
    InferMaxPool(),
    InferSumPool(),
    InferMVU(),
    InferThresholding(),
    InferLookup(),
    InferAddStreams(),
    InferConcatStreams(),
    InferLabelSelect(),
    RemoveLayoutTransposes(),
]


def FOLD(cfg: BuildConfig, options: dict | None = None, reserved_bram18: int = 0,  # noqa: N802
         reserved_dram_bytes: int = 0, reserved_luts: int = 0) -> list[Transformation]:
    """Automatic folding for the target, then the hand folding on top of it; then where the
    weights live (ROM, or loaded after reset, in UltraRAM where the part has it, or DRAM).
    `options`: the units' foldings listed once (`fold_options`) where one graph is folded for many
    targets; `reserved_bram18`: block RAM left to the FIFOs (`SetFolding`); `reserved_dram_bytes`:
    DRAM bytes a frame left to the FIFOs spilled there, `reserved_luts` the LUTs they take beyond
    plumbing's share."""
    bus = cfg.dram_bits if cfg.weight_memory in ("dram", "frame") else None
    budget = dram_budget(cfg)
    if budget is not None and reserved_dram_bytes:
        budget = replace(budget, reserved_bytes=reserved_dram_bytes)
    steps: list[Transformation] = [SetFolding(cfg.cycles_target, lookup_part(cfg.fit_part), options, bus,
                                              budget, reserved_bram18, reserved_luts)]
    if cfg.folding is not None:
        steps.append(ApplyFoldingConfig(cfg.folding, COMPUTE_OPS))
    steps.append(ChooseWeightMemories(cfg.weight_memory, lookup_part(cfg.fit_part), cfg.dram_bits))
    if cfg.weight_memory == "frame":
        steps.append(UseFrameMVUs())
    return steps


def dram_budget(cfg: BuildConfig) -> DramBudget | None:
    """With `--weight-memory auto`, the DRAM that weights which do not fit on chip may stream
    from: the board's (else the least of the boards that carry the part), at the build's clock,
    through its read masters; None where no board carries the part."""
    if cfg.weight_memory != "auto":
        return None
    if cfg.board is not None:
        mbytes = lookup_board(cfg.board).dram_mbytes_per_s
    else:
        mbytes = dram_mbytes_per_s(lookup_part(cfg.fit_part))
    return DramBudget(mbytes, cfg.clock_mhz, cfg.dram_masters, cfg.dram_bits) if mbytes else None


def PLUMBING(cfg: BuildConfig, spill_to_fit: bool = False) -> list[Transformation]:  # noqa: N802
    """Fan-out, width converters and a FIFO on every edge, sized (measured in Verilator or
    modelled, `cfg.fifo_sizing`) where paths fork and meet again; then the hand depths of the
    folding file; then the FIFOs at joins into DRAM as `cfg.fifo_memory` says ("auto": those the
    part cannot hold, for a fixed target, or where the build asks, `spill_to_fit`)."""
    steps: list[Transformation] = [InsertDuplicateStreams(), InsertDataWidthConverters(), InsertFifos(cfg.fifo_depth),
                                   SizeFifos(cfg.cache_dir, cfg.top_name, cfg.fifo_sizing)]
    if cfg.folding is not None:
        steps.append(ApplyFoldingConfig(cfg.folding, PLUMBING_OPS))
    fifo_memory = cfg.fifo_memory if cfg.fifo_memory != "auto" or has_dram(cfg) else "chip"
    if cfg.weight_memory == "frame":  # rings in DRAM beside image-holding convolutions stall (BuildConfig)
        fifo_memory = "chip"
    steps.append(SpillFifos(fifo_memory, lookup_part(cfg.fit_part), cfg.dram_bits,
                            spill_to_fit or cfg.cycles_target is not None))
    return steps


def has_dram(cfg: BuildConfig) -> bool:
    """Whether the build has a DRAM to spill FIFOs to: its board's, else one of a board that
    carries its part."""
    if cfg.board is not None:
        return bool(lookup_board(cfg.board).dram_mbytes_per_s)
    return bool(dram_mbytes_per_s(lookup_part(cfg.fit_part)))


#: what each stage may leave in the graph (the accelerator part, from the partition on), and what
#: is wrong with any other op found there
STAGE_OPS: dict[str, tuple[frozenset[str], str]] = {
    "partition": (ACCELERATOR_OPS, "cannot run in the accelerator"),
    "to_hardware": (COMPUTE_OPS, "has no hardware unit"),
    "fold": (COMPUTE_OPS, "has no hardware unit"),
    "plumbing": (COMPUTE_OPS | PLUMBING_OPS, "has no hardware unit"),
}
#: a rewrite that still reports a change after this many passes is a bug (it matches its own output)
MAX_PASSES = 10_000


def apply_all(model: ModelWrapper, transforms: list[Transformation]) -> ModelWrapper:
    """Apply each transform in turn, each to its fixed point (until it reports no change), keeping
    the node list sorted. Works on a copy: the caller's model is left as it was. A rewrite that
    fails with anything but a `HwgenError` raises `RewriteFailure` naming it."""
    model = ModelWrapper(copy.deepcopy(model.model))
    for t in transforms:
        for _ in range(MAX_PASSES):
            model, changed = _guarded(t, model)
            if not changed:
                break
        else:
            raise RuntimeError(f"{type(t).__name__} reached no fixed point in {MAX_PASSES} passes")
        model, _ = _guarded(SortGraph(), model)
    model, _ = _guarded(InferShapes(), model)
    return model


def _guarded(t: Transformation, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
    try:
        if isinstance(t, (SortGraph, InferShapes)):
            return model.transform(t, make_deepcopy=False, cleanup=False), False
        return t.apply(model)
    except (HwgenError, ToolError):
        raise
    except Exception as exc:
        raise RewriteFailure(type(t).__name__, exc) from exc


class RewriteFailure(Exception):
    """A rewrite raised something other than a `HwgenError`: a graph it was not written for (a
    malformed model that passed the checks before it) or a bug in it. The build turns it into one
    line naming the rewrite."""

    def __init__(self, rewrite: str, exc: Exception) -> None:
        detail = " ".join(str(exc).split())[:200]
        super().__init__(f"{rewrite} failed ({type(exc).__name__}: {detail})")
        self.rewrite = rewrite


def check_stage(model: ModelWrapper, stage: str) -> None:
    """After `stage`, every node's op must be one the stage may leave; else name the node."""
    if stage == "streamline":
        check_streamlined(model)
        return
    allowed, problem = STAGE_OPS[stage]
    for node in model.graph.node:
        if node.op_type not in allowed:
            raise HwgenError(f"op '{node.op_type}' {problem} (left after {stage})", where=f"node {node.name}")


def check_streamlined(model: ModelWrapper) -> None:
    """After streamlining no Gemm is left, every weight quantizer is folded into its layer, and no
    integer layer's accumulator exceeds what float32 holds exactly (+-2^24)."""
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Conv", "XnorPopcountMatMul"):
            found = accumulator_range(model, node.output[0])
            if found is not None:
                check_exact_range(int(found[0].min()), int(found[1].max()), node)
        if node.op_type == "Gemm":
            raise HwgenError("Gemm left after streamline", where=f"node {node.name}")
        if node.op_type in ("Quant", "BipolarQuant") and model.get_initializer(node.input[0]) is not None:
            raise HwgenError("a quantizer of constants (weights) is left after streamline: its layer "
                             f"is not one hwgen folds weights into ({_readers(model, node)})",
                             where=f"node {node.name}")


def _readers(model: ModelWrapper, node) -> str:
    readers = model.find_consumers(node.output[0]) or []
    return ", ".join(f"{r.op_type} {r.name}" for r in readers) or "nothing reads it"
