"""Weights loaded at start-up: the weight stream's format and the loader in front of a weight memory.

UltraRAM (URAM288 on UltraScale+) has no contents in the bitstream, so a weight memory placed
there is written after reset from a stream instead: the accelerator's `s_axis_weights` port
(`hwgen.rtl.axis`) takes the build's `weights.bin` once, and the stitched top hands each unit
whose weights are loaded its share in turn. A unit's share is its memory image word by word in
address order, each word cut into `WEIGHT_BEAT_BITS`-bit beats, low bits first (the last beat
zero-padded): a 288-bit word is five beats.

    weights.bin = unit 0's beats | unit 1's beats | ...        (8 bytes per beat, little-endian)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Module, Signal, Value

from hwgen.errors import HwgenError

#: bits per beat of the weight stream: a 64-bit AXI DMA moves one per clock
WEIGHT_BEAT_BITS = 64
#: the weight stream of a build whose weights are loaded after reset, in its `rtl/` folder
WEIGHTS_FILE = "weights.bin"


def read_weight_stream(rtl_dir: Path, beats: int) -> np.ndarray | None:
    """A design's weight stream (uint8 (beats, 8)) from `weights.bin` beside its RTL, which must
    hold `beats` beats; None when the design takes none (`beats` 0: every weight in the RTL)."""
    if not beats:
        return None
    path = Path(rtl_dir) / WEIGHTS_FILE
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise HwgenError("no such file: the build loads its weights from it", where=str(path)) from None
    if data.size != beats * WEIGHT_BEAT_BITS // 8:
        raise HwgenError(f"holds {data.size} bytes, the design takes {beats} beats of {WEIGHT_BEAT_BITS // 8}",
                         where=str(path))
    return data.reshape(-1, WEIGHT_BEAT_BITS // 8)


def beats_per_word(width: int) -> int:
    return math.ceil(width / WEIGHT_BEAT_BITS)


def stream_beats(words: list[int], width: int) -> np.ndarray:
    """The weight stream for a memory image (`words` of `width` bits): uint8 (beats, 8)."""
    per_word = beats_per_word(width)
    nbytes = per_word * WEIGHT_BEAT_BITS // 8
    data = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, WEIGHT_BEAT_BITS // 8).copy()


def load_memory(m: Module, wload, write_port, depth: int, width: int) -> Value:
    """Gateware: take `depth` words of `width` bits from the stream `wload` (payload
    `WEIGHT_BEAT_BITS` wide) into `write_port`, addresses 0, 1, ...; then refuse further beats.
    Returns `loaded`, a register that rises once the last word is written."""
    per_word = beats_per_word(width)
    loaded = Signal()
    addr = Signal(range(max(depth, 2)))
    beat = Signal(range(max(per_word, 2)))
    take = Signal()
    m.d.comb += [wload.ready.eq(~loaded), take.eq(wload.valid & ~loaded)]
    last_beat = beat == per_word - 1
    if per_word > 1:  # the word's earlier beats wait in a register, the last one completes it
        held = Signal((per_word - 1) * WEIGHT_BEAT_BITS)
        with m.If(take):
            for k in range(per_word - 1):
                with m.If(beat == k):
                    m.d.sync += held.word_select(k, WEIGHT_BEAT_BITS).eq(wload.payload)
        word = Cat(held, wload.payload)
    else:
        word = wload.payload
    m.d.comb += [write_port.addr.eq(addr), write_port.data.eq(word[:width]), write_port.en.eq(take & last_beat)]
    with m.If(take):
        m.d.sync += beat.eq(0 if per_word == 1 else Value.cast(beat) + 1)
        with m.If(last_beat):
            m.d.sync += [beat.eq(0), addr.eq(addr + 1)]
            with m.If(addr == depth - 1):
                m.d.sync += loaded.eq(1)
    return loaded
