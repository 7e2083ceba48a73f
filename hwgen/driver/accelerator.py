"""The board driver: one class that reads a deploy folder's `accelerator.json` and runs inference.

    acc = Accelerator("deploy/")                 # on the board: PYNQ overlay + AXI DMA
    acc = simulated_accelerator("OUT/deploy")    # anywhere (hwgen.deploy.sim_pynq): the same code against Verilator
    y = acc.execute(x)                           # x as the ONNX model takes it, y as it returns
    acc.throughput_test()                        # FINN's keys

A build whose weights are loaded after reset (UltraRAM has no contents in the bitstream) has
`weights` in its description: opening the accelerator sends `weights.bin` once through the
second DMA (`load_weights`), before any frame. A build that reads DRAM has `dram`: opening the
accelerator allocates `dram.bin` in contiguous memory (`pynq.allocate`), fills it once and writes
its physical address into the accelerator's DRAM_BASE register, which enables its readers
(`load_dram`); the image starts on a multiple of `dram.align` (a FIFO's ring in DRAM asks for
its size); the buffer is kept for as long as the accelerator runs.

On the board it needs numpy and `pynq` only: the host's float ends run as numpy programs
(`host_ops`) and the stream packing is `wire`, the code the simulator uses. The class drives
whatever overlay and buffer allocator it is given: by default PYNQ's (`pynq.Overlay` of the deploy
folder's bitfile, `pynq.allocate`); `hwgen.deploy.sim_pynq` passes its PYNQ-shaped stand-in
backed by the Verilator model of the build's RTL, which the driver knows nothing of. A DMA that
does not finish within `timeout_s` raises `DriverError` naming the channel; nothing waits forever.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from hwgen.driver.host_ops import run_program
from hwgen.driver.wire import dma_bytes, first_outside, from_wire, pack_beats, pad_beats, to_wire, unpack_beats, value_range
from hwgen.errors import HwgenError

DEPLOY_FORMAT = "hwgen-deploy-1"
#: the DRAM image's address: 4 KB aligned (no read burst crosses a 4 KB boundary), below 4 GB (the
#: readers' addresses have 32 bits)
DRAM_ALIGN, DRAM_LIMIT = 4096, 1 << 32


class DriverError(HwgenError):
    """A problem the driver's user can fix: the input, the deploy folder, the board, a DMA."""


def load_description(deploy_dir: Path) -> dict:
    path = Path(deploy_dir) / "accelerator.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DriverError("no such file: not a deploy folder", where=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DriverError(f"not JSON ({type(exc).__name__})", where=str(path)) from None
    if not isinstance(info, dict) or info.get("format") != DEPLOY_FORMAT:
        raise DriverError(f"not a hwgen deploy description (format {DEPLOY_FORMAT})", where=str(path))
    return info


class Accelerator:
    """Inference on the accelerator of one deploy folder."""

    def __init__(self, deploy_dir: str | Path, batch_size: int = 1, timeout_s: float = 10.0, *,
                 overlay: object | None = None, allocate: Callable | None = None) -> None:
        """`overlay` and `allocate`: the fabric (an object with the DMAs the description names as
        attributes, PYNQ's shape) and its buffer allocator; by default PYNQ's on the bitfile."""
        self.deploy_dir = Path(deploy_dir)
        self.info = load_description(self.deploy_dir)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DriverError(f"must be a positive integer, got {batch_size!r}", where="batch_size")
        self.batch_size, self.timeout_s = batch_size, float(timeout_s)
        self.fclk_mhz = float(self.info["fclk_mhz"])
        if overlay is None:
            overlay, allocate = self._pynq_overlay()
        elif allocate is None:
            raise DriverError("an overlay needs the allocator of its buffers too", where="allocate")
        self._overlay, self._allocate = overlay, allocate
        self._dma = getattr(self._overlay, self.info["dma"])
        self._dram_image = None
        if "dram" in self.info:
            self.load_dram()
        if "weights" in self.info:
            self.load_weights()

    def load_dram(self) -> None:
        """Allocate the deploy folder's DRAM image in contiguous memory, fill it and hand its
        physical address to the accelerator (DRAM_BASE), which checks it by reading it back."""
        spec = self.info["dram"]
        path = self.deploy_dir / str(spec["file"])
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise DriverError("no such file: the accelerator reads its weights from this DRAM image",
                              where=str(path)) from None
        if data.size != int(spec["bytes"]):
            raise DriverError(f"holds {data.size} bytes, the accelerator's DRAM image has {spec['bytes']}",
                              where=str(path))
        # the allocator gives pages; an image whose base must sit on a larger power of two (a FIFO's
        # ring in DRAM: its size) gets room to slide up to one
        align = int(spec.get("align", DRAM_ALIGN))
        buf = self._allocate(shape=(data.size + align - DRAM_ALIGN,), dtype=np.uint8)
        address = int(buf.physical_address)
        if address % DRAM_ALIGN:
            raise DriverError(f"gave the DRAM image the address {address:#x}: the accelerator needs it "
                              f"{DRAM_ALIGN // 1024} KB aligned", where="allocate")
        start = -address % align
        address += start
        if address + data.size > DRAM_LIMIT:
            raise DriverError(f"gave the DRAM image the address {address:#x}: the accelerator needs it below 4 GB",
                              where="allocate")
        buf[start:start + data.size] = data
        _sync(buf, "sync_to_device", "flush")
        registers = getattr(self._overlay, str(spec["ip"]))
        registers.write(int(spec["base_register"]), address)
        if int(registers.read(int(spec["base_register"]))) != address:
            raise DriverError("the accelerator's DRAM_BASE register does not hold what was written "
                              "(is the bitstream the one of this deploy folder?)", where=str(spec["ip"]))
        self._dram_image = buf

    def load_weights(self) -> None:
        """Send the deploy folder's weight stream through its DMA; the accelerator takes no
        frame before it has all of it."""
        spec = self.info["weights"]
        path = self.deploy_dir / str(spec["file"])
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise DriverError("no such file: the accelerator loads its weights from it", where=str(path)) from None
        if data.size != 8 * int(spec["beats"]):
            raise DriverError(f"holds {data.size} bytes, the accelerator takes {spec['beats']} beats of 8",
                              where=str(path))
        buf = self._allocate(shape=(int(spec["beats"]), 8), dtype=np.uint8)
        buf[:] = data.reshape(-1, 8)
        _sync(buf, "sync_to_device", "flush")
        dma = getattr(self._overlay, str(spec["dma"]))
        dma.sendchannel.transfer(buf)
        self._wait(dma.sendchannel, "weights (MM2S)", str(spec["dma"]))

    def _pynq_overlay(self):
        bitfile = self.deploy_dir / self.info["bitfile"]
        if not bitfile.is_file():
            raise DriverError(f"no bitfile: a bitstream built for this deploy folder goes here as {bitfile.name}, "
                              f"with {self.info['hwh']} beside it", where=str(bitfile))
        try:
            import pynq
        except ImportError:
            raise DriverError("the pynq package is not installed: target 'pynq' runs on a PYNQ board image",
                              where="target") from None
        return pynq.Overlay(str(bitfile)), pynq.allocate

    # -- inference

    @property
    def input_shape(self) -> list[int]:
        return list(self.info["model_input_shape"])

    @property
    def output_shape(self) -> list[int]:
        return list(self.info["model_output_shape"])

    def check_input(self, x: object) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise DriverError(f"must be a numpy array, not {type(x).__name__}", where="input")
        want = self.input_shape[1:]
        if x.ndim != len(self.input_shape) or list(x.shape[1:]) != want:
            raise DriverError(f"has shape {list(x.shape)}, the model takes [N, {', '.join(map(str, want))}]",
                              where="input")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise DriverError(f"has dtype {x.dtype}, the model takes numbers", where="input")
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            index = [int(i) for i in np.argwhere(~np.isfinite(x))[0]]
            raise DriverError(f"holds {x[tuple(index)]} at index {index}", where="input")
        declared = self.info.get("model_input_dtype", "FLOAT32")
        if declared != "FLOAT32":  # the model declares an integer input datatype (e.g. BIPOLAR)
            index = first_outside(x, declared)
            if index is not None:
                raise DriverError(f"value {x[tuple(index)]} at index {index} is outside the datatype {declared} "
                                  "the model declares for its input", where="input")
        return x.astype(np.float32)

    def execute(self, x: np.ndarray) -> np.ndarray:
        """What the ONNX model returns for `x`, batch by batch through the fabric."""
        x = self.check_input(x)
        return np.concatenate([self._run(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def _run(self, x: np.ndarray) -> np.ndarray:
        ibuf = self._send_buffer(self.to_integers(x))
        obuf = self._transfer(ibuf)
        return self.from_beats(np.asarray(obuf))

    def to_integers(self, x: np.ndarray) -> np.ndarray:
        ints = run_program(self.info["host_pre"], x)
        return np.rint(ints).astype(np.int64).reshape(len(x), -1)

    def _send_buffer(self, ints: np.ndarray):
        s = self.info["input"]
        lo, hi = value_range(s["dtype"])
        if ints.size and (ints.min() < lo or ints.max() > hi):
            raise DriverError(f"the input quantizer gave values outside {s['dtype']}", where="input")
        beats = pack_beats(to_wire(ints, s["dtype"]), s["width"] // s["elems_per_beat"], s["elems_per_beat"])
        beats = pad_beats(beats, dma_bytes(s["width"]))
        buf = self._allocate(shape=beats.shape, dtype=np.uint8)
        buf[:] = beats
        _sync(buf, "sync_to_device", "flush")
        return buf

    def _transfer(self, ibuf):
        s = self.info["output"]
        shape = (ibuf.shape[0], s["beats_per_frame"], dma_bytes(s["width"]))
        limit = int(self.info.get("dma_max_bytes", 1 << 62))
        if max(ibuf.nbytes, int(np.prod(shape))) > limit:
            raise DriverError(f"a batch of {ibuf.shape[0]} frames moves {max(ibuf.nbytes, int(np.prod(shape)))} bytes, "
                              f"more than one DMA transfer takes ({limit}): use a smaller batch_size",
                              where="batch_size")
        obuf = self._allocate(shape=shape, dtype=np.uint8)
        self._dma.recvchannel.transfer(obuf)
        self._dma.sendchannel.transfer(ibuf)
        self._wait(self._dma.sendchannel, "send (MM2S)")
        self._wait(self._dma.recvchannel, "receive (S2MM)")
        _sync(obuf, "sync_from_device", "invalidate")
        return obuf

    def _wait(self, channel, name: str, dma: str | None = None) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not channel.idle:
            if time.monotonic() > deadline:
                raise DriverError(f"the DMA's {name} channel did not finish within {self.timeout_s:g} s "
                                  "(is the bitstream the one of this deploy folder?)", where=dma or self.info["dma"])
            time.sleep(1e-5)

    def from_beats(self, beats: np.ndarray) -> np.ndarray:
        s = self.info["output"]
        codes = unpack_beats(beats[..., :s["bytes_per_beat"]], s["width"] // s["elems_per_beat"], s["elems_per_beat"])
        values = from_wire(codes, s["dtype"]).reshape(len(beats), *s["shape"][1:]).astype(np.float32)
        return run_program(self.info["host_post"], values)

    # -- measurement

    def throughput_test(self) -> dict:
        """One batch of `batch_size` frames through the fabric, timed (on the simulated fabric: its
        cycles at the board clock); FINN's keys."""
        s = self.info["input"]
        ints = np.zeros((self.batch_size, s["beats_per_frame"] * s["elems_per_beat"]), np.int64)
        if s["dtype"] == "BIPOLAR":
            ints += 1
        ibuf = self._send_buffer(ints)
        start = time.perf_counter()
        obuf = self._transfer(ibuf)
        runtime = getattr(self._overlay, "last_runtime_s", None) or (time.perf_counter() - start)
        in_bytes, out_bytes = ibuf.nbytes, obuf.nbytes
        return {"runtime[ms]": runtime * 1e3, "throughput[images/s]": self.batch_size / runtime,
                "DRAM_in_bandwidth[MB/s]": in_bytes / runtime / 1e6,
                "DRAM_out_bandwidth[MB/s]": out_bytes / runtime / 1e6,
                "fclk[mhz]": self.fclk_mhz, "batch_size": self.batch_size}


def _sync(buf, *methods: str) -> None:
    """Flush or invalidate a PYNQ buffer's cache lines (by whichever name the PYNQ version has)."""
    for name in methods:
        if hasattr(buf, name):
            getattr(buf, name)()
            return
