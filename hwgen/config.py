"""The build configuration: everything a build depends on, explicit and saved beside the build."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hwgen.errors import HwgenError

#: Used when neither a target cycle count nor a target frame rate is given.
DEFAULT_TARGET_FPS = 100_000.0
#: how FIFO depths are found where paths fork and join (see `hwgen.transforms.hardware.size_fifos`)
FIFO_SIZING_MODES = ("auto", "measured", "modelled")
#: where MVU weights live (see `hwgen.transforms.hardware.choose_weight_memories`)
WEIGHT_MEMORY_MODES = ("auto", "rom", "loaded", "dram", "frame")
#: where the FIFOs at joins may hold their beats (`hwgen.transforms.hardware.spill_fifos`)
FIFO_MEMORY_MODES = ("auto", "chip", "dram")


def default_cache_dir() -> Path:
    """Where Verilator builds are cached, keyed by content hash (safe to delete)."""
    return Path.home() / ".cache" / "hwgen"


def check_folding(folding: object) -> None:
    """A hand folding is a JSON object of layer names, each an object of positive integers
    (`PE`, `SIMD`, `depth`); raise naming the first entry that is not."""
    if not isinstance(folding, dict):
        raise HwgenError(f"must be a JSON object of layer names, not {type(folding).__name__}", where="folding config")
    for name, entry in folding.items():
        if not isinstance(entry, dict):
            raise HwgenError(f"must be a JSON object of parameters, not {entry!r}", where=f"folding config '{name}'")
        for key, value in entry.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HwgenError(f"'{key}' must be a positive integer, got {value!r}", where=f"folding config '{name}'")


@dataclass(frozen=True)
class BuildConfig:
    """How to build an accelerator.

    `target_cycles` (cycles per frame) wins over `target_fps`; with neither, `DEFAULT_TARGET_FPS`
    at `clock_mhz`. `target_fps="max"` asks for the fastest folding that fits `part` (by the units'
    estimates; default: the board's part, else the PYNQ-Z1's xc7z020). A hand `folding` (FINN-style JSON object) is applied after the automatic
    folding and overrides it for the layers and keys it names. `fifo_sizing` is how the FIFOs
    where paths fork and meet again get their depths: "measured" (a Verilator run), "modelled"
    (from each unit's latency, no simulation) or "auto" (measured where the design is small).
    With a `board` (a name of `hwgen boards`) the build also writes `OUT/deploy/` for it.
    `dram_read_masters` is how many AXI read masters the DRAM readers share (through an arbiter
    where one has several): default the board's PS ports for them, at most `MAX_MASTERS` (3), and
    3 without a board; more than the board has is an error (without a board, any number; the
    bench's DRAM answers up to four: `benchmarks/bench_masters.py` measures one to four).
    `weight_memory` is where the MVUs' weights live: "rom" (initialised memories, in the
    bitstream), "loaded" (every weight memory written after reset from the weight stream,
    `OUT/rtl/weights.bin`), "dram" (every MVU whose weight words fill whole words of the DRAM
    bus reads its weights from DRAM once per frame, weight-stationary: `hwgen.units.dram_mvu`,
    the image in `OUT/rtl/dram.bin`, with a board in `OUT/deploy/`), "frame" (as "dram", and each
    such convolution reads its weights once a frame over its image held on chip, its output
    channel-major: `hwgen.transforms.hardware.use_frame_mvus`; its FIFOs stay on chip) or "auto" (loaded into
    UltraRAM where `fit_part` has UltraRAM and that saves block RAM, else ROM; and where block
    RAM cannot hold them, the layers that save the most of it per DRAM byte read their weights
    from DRAM, within the board's bandwidth: `hwgen.transforms.hardware.set_folding`).
    `fifo_memory` is where the FIFOs at joins hold their beats: "chip" (block RAM or LUT RAM),
    "dram" (every one in block RAM goes to a ring in DRAM: `hwgen.units.dram_fifo`) or "auto"
    (those the part cannot hold beside its compute units, where a DRAM carries them:
    `hwgen.transforms.hardware.spill_fifos`).
    """

    clock_mhz: float = 100.0
    target_cycles: int | None = None
    target_fps: float | str | None = None
    folding: dict | None = None
    fifo_depth: int = 2
    fifo_sizing: str = "auto"
    weight_memory: str = "auto"
    fifo_memory: str = "auto"
    board: str | None = None
    part: str | None = None
    top_name: str = "hwgen_accel"
    dram_read_masters: int | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        if self.clock_mhz <= 0:
            raise HwgenError(f"must be positive, got {self.clock_mhz}", where="clock_mhz")
        if self.target_cycles is not None and self.target_cycles < 1:
            raise HwgenError(f"must be at least 1, got {self.target_cycles}", where="target_cycles")
        if isinstance(self.target_fps, str):
            if self.target_fps != "max":
                raise HwgenError(f"must be a frame rate or 'max', got {self.target_fps!r}", where="target_fps")
        elif self.target_fps is not None and self.target_fps <= 0:
            raise HwgenError(f"must be positive, got {self.target_fps}", where="target_fps")
        if self.fifo_depth < 2:
            raise HwgenError(f"must be at least 2, got {self.fifo_depth}", where="fifo_depth")
        if self.fifo_sizing not in FIFO_SIZING_MODES:
            raise HwgenError(f"must be one of {', '.join(FIFO_SIZING_MODES)}, got {self.fifo_sizing!r}",
                             where="fifo_sizing")
        if self.weight_memory not in WEIGHT_MEMORY_MODES:
            raise HwgenError(f"must be one of {', '.join(WEIGHT_MEMORY_MODES)}, got {self.weight_memory!r}",
                             where="weight_memory")
        if self.fifo_memory not in FIFO_MEMORY_MODES:
            raise HwgenError(f"must be one of {', '.join(FIFO_MEMORY_MODES)}, got {self.fifo_memory!r}",
                             where="fifo_memory")
        if self.weight_memory == "frame" and self.fifo_memory == "dram":
            raise HwgenError("FIFOs in DRAM beside convolutions that hold their image (weight_memory 'frame') are "
                             "not supported yet (such a design stalls in rtlsim); use fifo_memory 'chip' or 'auto'",
                             where="fifo_memory")
        if self.folding is not None:
            check_folding(self.folding)
        if self.board is not None:
            from hwgen.deploy.boards import lookup_board

            ports = len(lookup_board(self.board).dram_ports)
            if self.dram_read_masters is not None and self.dram_read_masters > ports:
                raise HwgenError(f"the board {self.board} has {ports} DRAM ports for read masters, asked for "
                                 f"{self.dram_read_masters}", where="dram_read_masters")
        if self.dram_read_masters is not None and self.dram_read_masters < 1:
            raise HwgenError(f"must be at least 1, got {self.dram_read_masters}", where="dram_read_masters")
        if self.part is not None:
            from hwgen.parts import lookup_part

            lookup_part(self.part)

    @property
    def dram_bits(self) -> int:
        """The DRAM bus's width for weight readers: the board's PS port, else 64 bits (a
        Zynq-7000's HP port)."""
        if self.board is None:
            return 64
        from hwgen.deploy.boards import lookup_board

        return lookup_board(self.board).hp_data_width

    @property
    def dram_masters(self) -> int:
        """Read masters the DRAM readers may share: the board's PS ports for them, else
        `hwgen.rtl.axi.MAX_MASTERS`."""
        from hwgen.rtl.axi import MAX_MASTERS

        if self.dram_read_masters is not None:
            return self.dram_read_masters
        if self.board is None:
            return MAX_MASTERS
        from hwgen.deploy.boards import lookup_board

        return min(MAX_MASTERS, len(lookup_board(self.board).dram_ports))

    @property
    def cycles_target(self) -> int | None:
        """The cycles-per-frame budget that folding aims for; None for the fastest that fits."""
        if self.target_cycles is not None:
            return self.target_cycles
        if self.target_fps == "max":
            return None
        fps = self.target_fps if self.target_fps is not None else DEFAULT_TARGET_FPS
        return max(1, int(self.clock_mhz * 1e6 // fps))

    @property
    def fit_part(self) -> str:
        """The part the fastest folding must fit: `part`, else the board's, else the xc7z020."""
        if self.part is not None:
            return self.part
        if self.board is not None:
            from hwgen.deploy.boards import lookup_board

            return lookup_board(self.board).part
        from hwgen.parts import DEFAULT_PART

        return DEFAULT_PART

    def to_toml(self, folding_file: str | None = None, model: ModelReference | None = None) -> str:
        """`OUT/build.toml`: the model it was built from (`model`, a path relative to the file's
        folder, and `model_sha256`), the build's command-line options (`CONFIG_KEYS`), the folding
        as the name of its JSON file beside it; `hwgen build --config` reads it back."""
        aim = "the fastest folding that fits" if self.cycles_target is None else f"{self.cycles_target} cycles per frame"
        lines = ["# hwgen build options: hwgen build --config build.toml -o OUT builds the same",
                 f"# (folding aims for {aim}; a MODEL on the command line replaces the file's)"]
        if model is not None:
            lines += [f"model = {json.dumps(model.path)}", f"model_sha256 = {json.dumps(model.sha256)}"]
        for key in CONFIG_KEYS:
            value = folding_file if key == "folding" else getattr(self, key)
            if value is None:
                continue
            lines.append(f"{key} = {value}" if isinstance(value, (int, float)) else f"{key} = {json.dumps(str(value))}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelReference:
    """The model a build was made from, as its build.toml names it: the file's path (relative to
    the TOML's folder when written, resolved against it when read) and the sha256 of its bytes."""

    path: str
    sha256: str

    @classmethod
    def of_file(cls, model: Path, folder: Path) -> ModelReference:
        """`model` as seen from `folder` (where the build.toml will lie)."""
        return cls(os.path.relpath(model.resolve(), folder.resolve()), file_sha256(model))

    def check(self, where: str) -> Path:
        """The model file, which must be the one the build was made from."""
        path = Path(self.path)
        if not path.is_file():
            raise HwgenError(f"names model {self.path}, which is not there (give the MODEL on the command line)",
                             where=where)
        found = file_sha256(path)
        if found != self.sha256:
            raise HwgenError(f"model {self.path} has changed since the build: its sha256 is {found}, the build's "
                             f"was {self.sha256} (give the MODEL on the command line to build it anyway)", where=where)
        return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


#: the options a build.toml holds: exactly those of `hwgen build` (with their TOML types)
CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "target_cycles": (int,), "target_fps": (int, float, str), "clock_mhz": (int, float), "folding": (str,),
    "fifo_sizing": (str,), "weight_memory": (str,), "fifo_memory": (str,), "board": (str,), "part": (str,),
}


#: what a build.toml holds beside the options: the model it was built from
MODEL_KEYS: dict[str, tuple[type, ...]] = {"model": (str,), "model_sha256": (str,)}


def read_config(path: str | Path) -> dict:
    """The options of a build.toml (`CONFIG_KEYS`), the folding file's path made relative to the
    TOML's folder, and its model as a `ModelReference` (key `model`, the path resolved against
    the TOML's folder) where it names one; an unknown key or a value of the wrong type is an error
    naming it."""
    import tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise HwgenError("no such file", where=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HwgenError(f"not valid TOML ({exc})", where=str(p)) from None
    known = CONFIG_KEYS | MODEL_KEYS
    for key, value in data.items():
        if key not in known:
            raise HwgenError(f"unknown option (known: {', '.join(known)})", where=f"{p}: '{key}'")
        if isinstance(value, bool) or not isinstance(value, known[key]):
            raise HwgenError(f"has the wrong type ({type(value).__name__})", where=f"{p}: '{key}'")
    if "folding" in data:
        data["folding"] = str(p.parent / data["folding"])
    if ("model" in data) != ("model_sha256" in data):
        raise HwgenError("names a model without its sha256, or the other way round (both or neither)", where=str(p))
    if "model" in data:
        data["model"] = ModelReference(str(p.parent / data["model"]), data.pop("model_sha256"))
    return data


def build_part(build_dir: str | Path) -> str:
    """The part a build folder was made for, as `BuildConfig.fit_part` gives it: its build.toml's
    `part`, else its board's, else the default part."""
    path = Path(build_dir) / "build.toml"
    options = read_config(path) if path.is_file() else {}
    return BuildConfig(part=options.get("part"), board=options.get("board")).fit_part
