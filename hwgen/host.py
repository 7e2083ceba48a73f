"""The host side of an accelerator: what runs before and after the fabric, and the stream packing.

The same code serves the Verilator simulation and the board driver: `encode` turns what the ONNX
model takes (float, its own shape) into input beats, `decode` turns output beats into exactly what
the ONNX model outputs. Everything it needs is in the build folder: `accelerator.json` (shapes,
datatypes, folding of both streams), `host_pre.onnx` and `host_post.onnx`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.driver.wire import first_outside
from hwgen.errors import HwgenError
from hwgen.execute import execute
from hwgen.streams import beat_bytes, from_wire, pack_beats, to_wire, unpack_beats
from hwgen.units.base import StreamSpec
from hwgen.rtl.axi import read_dram
from hwgen.units.weight_stream import read_weight_stream


@dataclass(frozen=True)
class StreamInfo:
    """One accelerator stream as the host sees it (a row of `accelerator.json`)."""

    tensor: str
    shape: list[int]
    dtype: str
    elems_per_beat: int
    beats_per_frame: int
    width: int
    bytes_per_beat: int

    @staticmethod
    def of(tensor: str, shape: list[int], spec: StreamSpec) -> "StreamInfo":
        return StreamInfo(tensor, list(shape), spec.dtype.name, spec.elems_per_beat, spec.beats_per_frame,
                          spec.width, beat_bytes(spec.width))

    @property
    def datatype(self):
        return DataType[self.dtype]


def write_accelerator_json(path: Path, top: str, model_input: list[int], model_output: list[int],
                           inp: StreamInfo, out: StreamInfo, model_input_name: str = "",
                           model_input_dtype: str = "FLOAT32", modules: dict[str, str] | None = None,
                           streams: list[dict] | None = None, weight_beats: int = 0, dram_bytes: int = 0,
                           dram_masters: int = 0, dram_bits: int = 0, dram_writers: list[int] | None = None,
                           dram_align: int = 0) -> None:
    """`accelerator.json`: the top module, the model's input and output, both streams, the
    module of each hardware node (for synthesis), every stream inside the design (for deadlock
    reports), the beats of the weight stream (`rtl/weights.bin`, 0 if the weights are all in
    the bitstream), the bytes of the DRAM image (`rtl/dram.bin`, 0 if nothing is read from
    DRAM), the power of two its base must be a multiple of, and the top's read masters and their
    width, and which of them also write (FIFOs spilled to DRAM), all that the host side and the
    tools read."""
    path.write_text(json.dumps({
        "top": top, "model_input_name": model_input_name, "model_input_shape": model_input,
        "model_input_dtype": model_input_dtype, "modules": modules or {}, "streams": streams or [],
        "model_output_shape": model_output, "input": asdict(inp), "output": asdict(out),
        "weight_beats": weight_beats, "dram_bytes": dram_bytes, "dram_masters": dram_masters, "dram_bits": dram_bits,
        "dram_writers": dram_writers or [], "dram_align": dram_align,
    }, indent=2) + "\n")


def check_values(x: np.ndarray, dtype_name: str, tensor: str) -> None:
    """Raise naming the first element of `x` that is not a finite number of the model's declared
    input datatype (`dtype_name`, e.g. BIPOLAR or UINT8; FLOAT32 admits any finite value)."""
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise HwgenError(f"has dtype {x.dtype}, the model takes numbers", where="input array")
    bad = ~np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else np.zeros(x.shape, bool)
    dtype = DataType[dtype_name]
    outside = [int(i) for i in np.argwhere(bad)[0]] if bad.any() else None
    if outside is None and dtype.is_integer():
        outside = first_outside(x, dtype.name)
    if outside is not None:
        index = tuple(outside)
        raise HwgenError(f"value {x[index]!r} at index {list(index)} is outside the datatype {dtype.name} "
                         f"that the model declares for its input '{tensor}'", where="input array")


def load_build_graph(path: Path) -> ModelWrapper:
    """A graph of a build folder (the host parts, a checkpoint), read as data: it may have no nodes
    at all, and only ops of the domains hwgen writes (executing any other would import the Python
    module its domain names)."""
    from hwgen.frontend.support import check_build_graph

    try:
        model = ModelWrapper(str(path))
    except FileNotFoundError:
        raise HwgenError("no such file: not a finished build", where=str(path)) from None
    except Exception as exc:  # protobuf's DecodeError and qonnx's assertions on malformed graphs
        raise HwgenError(f"not an ONNX model ({type(exc).__name__})", where=str(path)) from None
    check_build_graph(model, str(path))
    return model


class HostIO:
    """Encode model inputs into beats and decode beats into model outputs, for one build."""

    def __init__(self, build_dir: Path) -> None:
        build_dir = Path(build_dir)
        where = str(build_dir / "accelerator.json")
        try:
            info = json.loads((build_dir / "accelerator.json").read_text())
            self.top: str = info["top"]
            self.input = StreamInfo(**info["input"])
            self.output = StreamInfo(**info["output"])
            self.model_input_shape: list[int] = list(info["model_input_shape"])
            self.model_output_shape: list[int] = list(info["model_output_shape"])
            self.model_input_dtype: str = info.get("model_input_dtype", "FLOAT32")
            DataType[self.model_input_dtype]
            self.model_input_name: str = info.get("model_input_name", "")
            self.streams: list[dict] = list(info.get("streams", []))
            self.weight_beats: int = int(info.get("weight_beats", 0))
            self.dram_bytes: int = int(info.get("dram_bytes", 0))
        except FileNotFoundError:
            raise HwgenError("no such file: not a finished build", where=where) from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise HwgenError(f"not an accelerator description ({type(exc).__name__}: {exc})", where=where) from None
        self.pre = load_build_graph(build_dir / "host_pre.onnx")
        self.post = load_build_graph(build_dir / "host_post.onnx")
        self.build_dir = build_dir

    def weight_stream(self) -> np.ndarray | None:
        """The weight stream (uint8 (beats, 8)) of a build whose weights are loaded after reset,
        checked against the beat count the build recorded; None when every weight is in the RTL."""
        return read_weight_stream(self.build_dir / "rtl", self.weight_beats)

    def dram(self) -> np.ndarray | None:
        """The DRAM image (uint8) of a build whose weights stream from DRAM, checked against the
        size the build recorded; None when nothing is read from DRAM."""
        return read_dram(self.build_dir / "rtl", self.dram_bytes)

    def check_input(self, x: np.ndarray) -> None:
        want = list(self.model_input_shape[1:])
        if x.ndim != len(self.model_input_shape) or list(x.shape[1:]) != want:
            raise HwgenError(f"has shape {list(x.shape)}, the model takes [N, {', '.join(map(str, want))}]",
                             where="input array")
        check_values(x, self.model_input_dtype, self.model_input_name or self.pre.graph.input[0].name)

    def to_integers(self, x: np.ndarray) -> np.ndarray:
        """The accelerator's integer input for model input `x`: the host part of the graph, run."""
        self.check_input(x)
        values = execute(self.pre, x.astype(np.float32))
        return np.rint(values).astype(np.int64).reshape(x.shape[0], -1)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Model input -> input beats, uint8 (N, beats_per_frame, bytes_per_beat)."""
        ints = self.to_integers(x)
        codes = to_wire(ints, self.input.datatype)
        return pack_beats(codes, self.input.datatype.bitwidth(), self.input.elems_per_beat)

    def decode_integers(self, beats: np.ndarray) -> np.ndarray:
        codes = unpack_beats(beats, self.output.datatype.bitwidth(), self.output.elems_per_beat)
        return from_wire(codes, self.output.datatype)

    def from_integers(self, values: np.ndarray) -> np.ndarray:
        """Model output for accelerator output integers: the host's exact output transform."""
        shaped = values.reshape([values.shape[0], *self.output.shape[1:]]).astype(np.float32)
        return execute(self.post, shaped)

    def decode(self, beats: np.ndarray) -> np.ndarray:
        """Output beats (N, beats_per_frame, bytes_per_beat) -> exactly what the model outputs."""
        return self.from_integers(self.decode_integers(beats))
