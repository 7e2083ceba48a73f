"""The boards hwgen builds for, one TOML file each in `boards/` (data, not code):

    name, description, part (as Vivado names it), ps ("ps7" Zynq-7000, "ps8" Zynq UltraScale+),
    board_part (Vivado's board file, where one exists), fclk_mhz (the default fabric clock),
    [hp_port] name, data_width (the PS slave port the DMA masters, and its width in bits),
    [dma] max_burst_len, buffer_length_width (bits of the AXI DMA's length register: the largest
    transfer is 2^width - 1 bytes)
    [dram] mt_per_s, bus_bits (the PS DRAM's transfer rate and data bus: its peak), ports (the PS
    slave ports, of `hp_port`'s width, that the accelerator's DRAM readers may use), source (where
    the figures come from)

The DRAM bandwidth a design may plan on (`Board.dram_mbytes_per_s`) is the lesser of
`DRAM_EFFICIENCY` of the DRAM's peak (long sequential bursts, with the processor and the I/O DMA
sharing the controller) and what the reader ports carry at the fabric clock.

`hwgen boards` lists them; `hwgen synth --board NAME` synthesizes for the board's part.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from hwgen.errors import HwgenError
from hwgen.parts import Part, lookup_part

PS_TYPES = ("ps7", "ps8")
#: share of the DRAM's peak a design plans on: sequential bursts reach 80-90 % of it on the Zynq
#: memory controllers; the rest is left to refresh, the processor and the input/output DMA
DRAM_EFFICIENCY = 0.7


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    part: str
    ps: str
    board_part: str
    fclk_mhz: float
    hp_port: str
    hp_data_width: int
    dma_max_burst_len: int
    dma_buffer_length_width: int
    dram_mt_per_s: float
    dram_bus_bits: int
    dram_ports: tuple[str, ...]
    dram_source: str

    @property
    def device(self) -> Part:
        return lookup_part(self.part)

    @property
    def max_transfer_bytes(self) -> int:
        return (1 << self.dma_buffer_length_width) - 1

    @property
    def dram_peak_mbytes_per_s(self) -> float:
        return self.dram_mt_per_s * self.dram_bus_bits / 8

    @property
    def dram_port_mbytes_per_s(self) -> float:
        """What the reader ports carry at the fabric clock, one beat of `hp_data_width` per clock each."""
        return len(self.dram_ports) * self.hp_data_width / 8 * self.fclk_mhz

    @property
    def dram_mbytes_per_s(self) -> float:
        """The DRAM bandwidth a design may plan on (see the module doc)."""
        return min(DRAM_EFFICIENCY * self.dram_peak_mbytes_per_s, self.dram_port_mbytes_per_s)


def parse_board(text: str, where: str) -> Board:
    """A board from its TOML text; every missing or malformed entry is an error naming it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HwgenError(f"not valid TOML ({exc})", where=where) from None

    def get(table: dict, key: str, kind: type, path: str):
        value = table.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HwgenError(f"'{path}' must be a {kind.__name__}, got {value!r}", where=where)
        return value

    hp, dma, dram = data.get("hp_port", {}), data.get("dma", {}), data.get("dram", {})
    if not isinstance(hp, dict) or not isinstance(dma, dict) or not isinstance(dram, dict):
        raise HwgenError("[hp_port], [dma] and [dram] must be tables", where=where)

    def port_names(value) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
            raise HwgenError(f"'dram.ports' must be a list of PS port names, got {value!r}", where=where)
        return tuple(value)

    board = Board(
        name=get(data, "name", str, "name"), description=get(data, "description", str, "description"),
        part=get(data, "part", str, "part"), ps=get(data, "ps", str, "ps"),
        board_part=get(data, "board_part", str, "board_part"), fclk_mhz=get(data, "fclk_mhz", float, "fclk_mhz"),
        hp_port=get(hp, "name", str, "hp_port.name"), hp_data_width=get(hp, "data_width", int, "hp_port.data_width"),
        dma_max_burst_len=get(dma, "max_burst_len", int, "dma.max_burst_len"),
        dma_buffer_length_width=get(dma, "buffer_length_width", int, "dma.buffer_length_width"),
        dram_mt_per_s=get(dram, "mt_per_s", float, "dram.mt_per_s"),
        dram_bus_bits=get(dram, "bus_bits", int, "dram.bus_bits"),
        dram_ports=port_names(dram.get("ports")), dram_source=get(dram, "source", str, "dram.source"),
    )
    if board.ps not in PS_TYPES:
        raise HwgenError(f"'ps' must be one of {', '.join(PS_TYPES)}, got {board.ps!r}", where=where)
    if board.fclk_mhz <= 0:
        raise HwgenError(f"'fclk_mhz' must be positive, got {board.fclk_mhz}", where=where)
    if board.hp_data_width not in (32, 64, 128):
        raise HwgenError(f"'hp_port.data_width' must be 32, 64 or 128, got {board.hp_data_width}", where=where)
    if board.dram_mt_per_s <= 0 or board.dram_bus_bits not in (16, 32, 64):
        raise HwgenError("'dram.mt_per_s' must be positive and 'dram.bus_bits' 16, 32 or 64", where=where)
    if board.hp_port in board.dram_ports:
        raise HwgenError(f"'dram.ports' must not name {board.hp_port}, the input/output DMA's port", where=where)
    if not 8 <= board.dma_buffer_length_width <= 26:
        raise HwgenError("'dma.buffer_length_width' must be 8 to 26 (the AXI DMA's range)", where=where)
    lookup_part(board.part)  # a part synthesis knows
    return board


def _load() -> dict[str, Board]:
    boards = {}
    for entry in sorted(resources.files("hwgen.deploy").joinpath("boards").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            board = parse_board(entry.read_text(), f"boards/{entry.name}")
            boards[board.name] = board
    return boards


BOARDS: dict[str, Board] = _load()


def lookup_board(name: str) -> Board:
    if name not in BOARDS:
        raise HwgenError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}", where="board")
    return BOARDS[name]
