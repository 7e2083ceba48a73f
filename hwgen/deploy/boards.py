"""The boards hwgen builds for, one TOML file each in `boards/` (data, not code):

    name, description, part (as Vivado names it), ps ("ps7" Zynq-7000, "ps8" Zynq UltraScale+),
    board_part (Vivado's board file, where one exists), fclk_mhz (the default fabric clock),
    [hp_port] name, data_width (the PS slave port the DMA masters, and its width in bits),
    [dma] max_burst_len, buffer_length_width (bits of the AXI DMA's length register: the largest
    transfer is 2^width - 1 bytes)

`hwgen boards` lists them; `hwgen synth --board NAME` synthesizes for the board's part.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from hwgen.errors import HwgenError
from hwgen.parts import Part, lookup_part

PS_TYPES = ("ps7", "ps8")


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

    @property
    def device(self) -> Part:
        return lookup_part(self.part)

    @property
    def max_transfer_bytes(self) -> int:
        return (1 << self.dma_buffer_length_width) - 1


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

    hp, dma = data.get("hp_port", {}), data.get("dma", {})
    if not isinstance(hp, dict) or not isinstance(dma, dict):
        raise HwgenError("[hp_port] and [dma] must be tables", where=where)
    board = Board(
        name=get(data, "name", str, "name"), description=get(data, "description", str, "description"),
        part=get(data, "part", str, "part"), ps=get(data, "ps", str, "ps"),
        board_part=get(data, "board_part", str, "board_part"), fclk_mhz=get(data, "fclk_mhz", float, "fclk_mhz"),
        hp_port=get(hp, "name", str, "hp_port.name"), hp_data_width=get(hp, "data_width", int, "hp_port.data_width"),
        dma_max_burst_len=get(dma, "max_burst_len", int, "dma.max_burst_len"),
        dma_buffer_length_width=get(dma, "buffer_length_width", int, "dma.buffer_length_width"),
    )
    if board.ps not in PS_TYPES:
        raise HwgenError(f"'ps' must be one of {', '.join(PS_TYPES)}, got {board.ps!r}", where=where)
    if board.fclk_mhz <= 0:
        raise HwgenError(f"'fclk_mhz' must be positive, got {board.fclk_mhz}", where=where)
    if board.hp_data_width not in (32, 64, 128):
        raise HwgenError(f"'hp_port.data_width' must be 32, 64 or 128, got {board.hp_data_width}", where=where)
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
