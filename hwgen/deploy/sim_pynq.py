"""A PYNQ-shaped stand-in for a board, backed by the Verilator model of a build's RTL, so that the
driver's real code path runs in CI (`simulated_accelerator(deploy_dir)` hands it to the driver): `Overlay(deploy_dir)` has the AXI DMA the deploy description
names, whose `sendchannel` / `recvchannel` take `transfer(buffer)` and report `idle` as PYNQ's do,
and `Overlay.allocate(shape, dtype)` gives the buffers.

The fabric runs when the send channel is given its buffer with the receive channel armed: the
beats (less the DMA's byte padding) go through the simulated accelerator, its output beats come
back into the receive buffer, and `last_runtime_s` is the simulated cycles at the board clock. A
send without an armed receive never finishes, as on the board (the driver's timeout says so).

The build folder is the deploy folder's parent unless given; its RTL must be the one the deploy
folder was made from (`rtl_sha256` in the description), else the deploy folder is another
build's.

A build that reads DRAM has the accelerator's registers (`Overlay.<ip>.write/read`, PYNQ's
`DefaultIP` calls): the simulated fabric reads its DRAM from the buffer whose physical address the
driver wrote into DRAM_BASE (the buffers `Overlay.allocate` gives have addresses, 4 KB aligned
and no more, as PYNQ's may be), and until then no frame finishes, as the readers on the board
wait for it.

A build whose weights are loaded after reset also has the weights DMA (send channel only): what it
is given is the weight stream, which every simulated run then loads first (the model stands for a
fabric that keeps it); until it has been given, the data DMA never finishes, as on the board.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwgen.deploy.package import rtl_digest
from hwgen.driver.accelerator import Accelerator, DriverError, load_description
from hwgen.sim import run as run_sim
from hwgen.sim.verilator import DramImage
from hwgen.simulate import build_simulator


def simulated_accelerator(deploy_dir: str | Path, batch_size: int = 1, timeout_s: float = 10.0,
                          **fabric) -> Accelerator:
    """The board driver on the simulated fabric of `deploy_dir` (`fabric`: `Overlay`'s options,
    `build_dir`, `cache_dir`, `stall_prob`, `seed`)."""
    overlay = Overlay(deploy_dir, **fabric)
    return Accelerator(deploy_dir, batch_size, timeout_s, overlay=overlay, allocate=overlay.allocate)


class Buffer(np.ndarray):
    """A buffer of the simulated contiguous memory: an array with its `physical_address`, as
    PYNQ's `PynqBuffer` is."""

    physical_address: int


#: where the simulated contiguous memory starts (a Zynq's CMA lies in the low DRAM), its page
SIM_MEMORY_BASE, SIM_PAGE = 0x1800_3000, 4096


class _Channel:
    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer: np.ndarray | None = None
        self.idle = True

    def transfer(self, buffer: np.ndarray) -> None:
        if not self.idle:
            raise DriverError("transfer started while the previous one runs", where=self.name)
        self.buffer, self.idle = buffer, False

    def wait(self) -> None:  # PYNQ's blocking wait; the driver polls `idle` with a timeout instead
        if not self.idle:
            raise DriverError("would wait forever: the transfer cannot finish", where=self.name)


class _SimDMA:
    def __init__(self, overlay: "Overlay") -> None:
        self.overlay = overlay
        self.recvchannel = _Channel("S2MM")
        self.sendchannel = _SendChannel(self)


class _SendChannel(_Channel):
    def __init__(self, dma: _SimDMA) -> None:
        super().__init__("MM2S")
        self.dma = dma

    def transfer(self, buffer: np.ndarray) -> None:
        super().transfer(buffer)
        if not self.dma.recvchannel.idle and self.dma.overlay.ready_to_run:
            self.dma.overlay.run(buffer, self.dma.recvchannel.buffer)
            self.idle = self.dma.recvchannel.idle = True


class _WeightsDMA:
    """The weights DMA: its send channel takes the weight stream at once and keeps it."""

    def __init__(self, overlay: "Overlay") -> None:
        self.sendchannel = _WeightsChannel(overlay)


class _WeightsChannel(_Channel):
    def __init__(self, overlay: "Overlay") -> None:
        super().__init__("MM2S")
        self.overlay = overlay

    def transfer(self, buffer: np.ndarray) -> None:
        super().transfer(buffer)
        self.overlay.weights = np.array(buffer, dtype=np.uint8).copy()
        self.idle = True


class _Registers:
    """The accelerator's AXI-Lite registers, PYNQ's `DefaultIP` calls (`write(offset, value)`,
    `read(offset)`): DRAM_BASE at the offset the description gives."""

    def __init__(self, base_register: int) -> None:
        self.base_register = base_register
        self.values: dict[int, int] = {}

    def write(self, offset: int, value: int) -> None:
        self.values[int(offset)] = int(value) & 0xFFFF_FFFF

    def read(self, offset: int = 0) -> int:
        return self.values.get(int(offset), 0)

    @property
    def dram_base(self) -> int | None:
        return self.values.get(self.base_register)


class Overlay:
    """The simulated fabric of one deploy folder."""

    def __init__(self, deploy_dir: str | Path, build_dir: str | Path | None = None, cache_dir: Path | None = None,
                 stall_prob: float = 0.0, seed: int = 0) -> None:
        deploy_dir = Path(deploy_dir)
        self.info = load_description(deploy_dir)
        self.build_dir = Path(build_dir) if build_dir is not None else deploy_dir.parent
        rtl = self.build_dir / "rtl"
        if not rtl.is_dir() or rtl_digest(rtl) != self.info["rtl_sha256"]:
            raise DriverError(f"the deploy folder is not of the build in {self.build_dir} (its RTL differs)",
                              where=str(deploy_dir))
        self.exe = build_simulator(self.build_dir, cache_dir)
        self.stall_prob, self.seed = stall_prob, seed
        self.last_runtime_s: float | None = None
        setattr(self, self.info["dma"], _SimDMA(self))
        self.weights: np.ndarray | None = None  # the weight stream, once its DMA has sent it
        if "weights" in self.info:
            setattr(self, str(self.info["weights"]["dma"]), _WeightsDMA(self))
        self.buffers: list[Buffer] = []  # what `allocate` gave, at increasing addresses
        self.registers = None
        if "dram" in self.info:
            self.registers = _Registers(int(self.info["dram"]["base_register"]))
            setattr(self, str(self.info["dram"]["ip"]), self.registers)

    def allocate(self, shape, dtype=np.uint8) -> Buffer:
        """A zeroed buffer of the simulated contiguous memory, page aligned after the last."""
        buf = np.zeros(shape, dtype=dtype).view(Buffer)
        end = max((b.physical_address + b.nbytes for b in self.buffers), default=SIM_MEMORY_BASE)
        buf.physical_address = -(-end // SIM_PAGE) * SIM_PAGE
        self.buffers.append(buf)
        return buf

    def dram(self) -> DramImage | None:
        """The DRAM the readers see: the buffer that holds DRAM_BASE, from there on; None before
        the driver has written DRAM_BASE (or where it names no buffer)."""
        base = self.registers.dram_base if self.registers is not None else None
        held = next((b for b in self.buffers if base is not None
                     and b.physical_address <= base < b.physical_address + b.nbytes), None)
        if held is None:
            return None
        return DramImage(np.asarray(held).view(np.uint8).reshape(-1)[base - held.physical_address:], base)

    @property
    def ready_to_run(self) -> bool:
        """The fabric takes frames: its weights are in the bitstream, or they have been sent; its
        DRAM readers (if any) have their base."""
        return ("weights" not in self.info or self.weights is not None) and \
            ("dram" not in self.info or self.dram() is not None)

    def run(self, send: np.ndarray, receive: np.ndarray) -> None:
        s_in, s_out = self.info["input"], self.info["output"]
        in_bytes, out_bytes = s_in["bytes_per_beat"], s_out["bytes_per_beat"]
        frames = send.shape[0]
        if receive.shape[0] != frames:
            raise DriverError(f"receive buffer holds {receive.shape[0]} frames, the send buffer {frames}",
                              where="S2MM")
        result = run_sim(self.exe, np.ascontiguousarray(send[..., :in_bytes]), s_out["beats_per_frame"], out_bytes,
                         stall_prob=self.stall_prob, seed=self.seed, weights=self.weights, dram=self.dram())
        receive[..., :out_bytes] = result.output.reshape(frames, s_out["beats_per_frame"], out_bytes)
        # the batch's cycles; a simulated run loads the weights first, which the board did once
        cycles = result.total_cycles if self.weights is None else \
            int(result.last_out_cycles[-1]) + 1 - int(result.first_in_cycles[0])
        self.last_runtime_s = cycles / (float(self.info["fclk_mhz"]) * 1e6)
