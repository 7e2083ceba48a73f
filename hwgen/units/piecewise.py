"""Integer functions as one or two affine pieces: the search for the exact form.

A requantization between units (BatchNorm into an 8-bit quantizer, a join's rescaling of its
sum, RPReLU's shift - PReLU - shift between two quantizers) is a function of one integer per
channel, given exactly by the graph: as ascending thresholds (a count of thresholds passed) or
as a table of its value on every input. Such functions are nearly always

    y(x) = clamp(floor((m_p * x + b_p) / 2^S), lo_p, hi_p),      p = 1 if x >= knee else 0

with integers m_p (signed), b_p, lo_p, hi_p per channel and piece, and one shift S per layer: one
piece for a rescaling, two for a function with a kink (PReLU's slope changes at 0, and a
negative slope turns the function down). `fit_thresholds` and `fit_table` find such a form where
one reproduces the function on every input, or say there is none.

A piece is found in its count form: an increasing piece with levels base + 1 .. base + T reached
at thresholds t_1 <= ... <= t_T on its domain [lo, hi] is base + clamp(floor((m x + b) / 2^S),
0, T); a decreasing piece is an increasing one in -x. For a level k, count(x) >= k must hold
exactly when x >= t_k:

    m * t_k + b       >= k * 2^S          where t_k <= hi   (reached in the domain)
    m * (t_k - 1) + b <= k * 2^S - 1      where t_k > lo    (not reached before it)

Eliminating b from each pair of these gives the open interval of real slopes that a line through
the levels can take (`slope_bounds`): more than the slope-change point of a two-piece function
can be read off it, so the knee is the split of the levels where both parts keep a non-empty
interval. For a slope inside the interval, an integer m = slope * 2^S exists at some S, and the
integers b that then work form an interval computed exactly (`_offsets`); the smallest S where
every channel of every piece has one is the layer's shift. Everything is integer arithmetic in
int64, checked against overflow, and the result is checked against the function on every input
before it is used (`Piecewise.counts` against the thresholds or the table).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: the largest shift tried: slopes of a BatchNorm-rounded requantization need up to ~2^-30 on a
#: 13-bit accumulator, ~2^-40 on a 22-bit one (the interval of exact slopes narrows with the span of
#: the thresholds)
MAX_SHIFT = 48
#: split points tried on a valley's or a peak's plateau
PLATEAU_SPLITS = 16
#: products and sums stay below this (int64 has 63 bits)
_LIMIT_BITS = 61
_BIG = np.int64(1) << 61


@dataclass(frozen=True)
class Piecewise:
    """y = clamp(q - tie, lo[c, p], hi[c, p]) with q = floor((m[c, p] x + b[c, p]) / 2^shift),
    p = (x >= knee[c]), and tie = 1 where the channel rounds half to even, m x + b is a multiple
    of 2^shift and q is odd (else 0).

    Arrays: m, b, lo, hi of shape (C, 2), knee (C,) int64. A channel of one piece has both pieces
    equal (its knee is then irrelevant); `pieces` is 1 when every channel is so."""

    m: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    knee: np.ndarray
    shift: int
    #: (C,) bool: the channel rounds a quotient that lands exactly on .5 to even, as the model's
    #: quantizer does (w = m x + b with its low `shift` bits zero and an odd quotient: one less)
    half_even: np.ndarray | None = None
    #: (C, E) each: single inputs whose output the line misses (the model's float rounding put a
    #: threshold one or two values off every line), and their outputs (`line_with_exceptions`);
    #: an unused entry repeats a value the line gets right
    except_x: np.ndarray | None = None
    except_y: np.ndarray | None = None

    @property
    def exceptions(self) -> int:
        return 0 if self.except_x is None else self.except_x.shape[1]

    @property
    def channels(self) -> int:
        return self.m.shape[0]

    @property
    def pieces(self) -> int:
        same = all(np.array_equal(a[:, 0], a[:, 1]) for a in (self.m, self.b, self.lo, self.hi))
        return 1 if same else 2

    def with_shared_clamps(self, low: np.ndarray, high: np.ndarray, exact) -> Piecewise:
        """The form with one clamp range per channel for both pieces, the function's own least and
        most value (`low`, `high` (C,)), wherever that still reproduces it (`exact(form) -> (C,)
        bool`): a valley's pieces both stop at its floor, and a ROM holds two clamp bounds per
        channel instead of four."""
        shared = replace(self, lo=np.repeat(low[:, None], 2, axis=1), hi=np.repeat(high[:, None], 2, axis=1))
        keep = exact(shared)[:, None]
        return replace(self, lo=np.where(keep, shared.lo, self.lo), hi=np.where(keep, shared.hi, self.hi))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The function on x (..., C), int64."""
        x = np.asarray(x, np.int64)
        p = (x >= self.knee).astype(np.int64)
        pick = lambda a: np.where(p == 1, a[:, 1], a[:, 0])  # noqa: E731
        w = pick(self.m) * x + pick(self.b)
        y = w >> self.shift
        if self.half_even is not None:
            y = y - (self.half_even & ((w & ((1 << self.shift) - 1)) == 0) & (y & 1 == 1))
        y = np.clip(y, pick(self.lo), pick(self.hi))
        for e in range(self.exceptions):
            y = np.where(x == self.except_x[:, e], self.except_y[:, e], y)
        return y


# ---- one increasing piece per channel, in count form ---------------------------------------------


#: channels per block in the pairwise slope computations ((block, T, T) arrays)
_BLOCK = 16


def _pair_bounds(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of levels, the bound on the slope it gives: `lower[c, k, j]` (j < k: a line must
    rise by k - j over t_k - t_j + 1) and `upper[c, k, j]` (j > k: it must not rise by j - k over
    t_j - t_k - 1), from a level k that is reached in the domain (t_k <= hi) and a level j that is
    not reached before its threshold (t_j > lo); 0 and inf where a pair says nothing."""
    t = t.astype(np.float64)
    levels = np.arange(1, t.shape[1] + 1, dtype=np.float64)
    need = valid & (t <= hi[:, None])
    allow = valid & (t > lo[:, None])
    dk = levels[None, :, None] - levels[None, None, :]  # [c, k, j] = k - j
    dt = t[:, :, None] - t[:, None, :]  # t_k - t_j
    pair = need[:, :, None] & allow[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(pair & (dk > 0), dk / (dt + 1), 0.0)
        upper = np.where(pair & (dk < 0) & (dt <= -2), -dk / (-dt - 1), np.inf)
    return lower, upper


def slope_bounds(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The open interval (lower, upper) of real slopes a count line can take through thresholds
    t (C, T) (`valid` marks the ones that are levels of the channel) on domains [lo, hi] (C,).
    Float, for choosing slopes; exactness comes from `_offsets`."""
    lower, upper = np.zeros(t.shape[0]), np.full(t.shape[0], np.inf)
    for c in range(0, t.shape[0], _BLOCK):
        part = slice(c, c + _BLOCK)
        low, up = _pair_bounds(t[part], valid[part], lo[part], hi[part])
        lower[part], upper[part] = low.max(axis=(1, 2), initial=0.0), up.min(axis=(1, 2), initial=np.inf)
    return lower, upper


def _offsets(m: np.ndarray, t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             shift: int, odd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(least, most) integer b per channel for which count = floor((m x + b) / 2^shift) meets
    every level's two constraints with slope m (C,). With `odd` (C, T: the level's output value
    is odd) the count rounds half to even: an odd level is reached one step of w later."""
    step = np.int64(1) << shift
    levels = np.arange(1, t.shape[1] + 1, dtype=np.int64)[None, :] * step
    if odd is not None:
        levels = levels + odd.astype(np.int64)
    need = np.where(valid & (t <= hi[:, None]), levels - m[:, None] * t, -_BIG)
    allow = np.where(valid & (t > lo[:, None]), levels - 1 - m[:, None] * (t - 1), _BIG)
    return need.max(axis=1, initial=-_BIG), allow.min(axis=1, initial=_BIG)


def fit_counts(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               odd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (m, b) and a shift S per channel with count(x) = clamp(floor((m x + b) / 2^S), 0,
    T_c) on every x of each channel's domain [lo, hi] (thresholds t (C, T), `valid` the channel's
    T_c levels, ascending); the smallest S for each channel, negative where a channel has no
    such line at any shift up to `MAX_SHIFT`. With `odd` (which levels are odd output values)
    the quotient rounds half to even instead (`Piecewise.half_even`): a slope at an end of the
    interval can then serve, exactly."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    t = np.clip(np.asarray(t, np.int64), lo[:, None], hi[:, None] + 1)
    channels = t.shape[0]
    m, b, found = np.zeros(channels, np.int64), np.zeros(channels, np.int64), np.full(channels, -1, np.int64)
    if channels == 0:
        return m, b, found
    found[~valid.any(axis=1)] = 0  # a constant: m = b = 0
    lower, upper = slope_bounds(t, valid, lo, hi)
    found[~(lower < upper if odd is None else lower <= upper)] = -2  # no line in the reals either
    magnitude = int(max(np.abs(lo).max(), np.abs(hi).max() + 1)).bit_length()
    middle = np.where(np.isfinite(upper), (lower + upper) / 2, lower + 1.0)
    for shift in range(MAX_SHIFT + 1):
        # the levels (T << shift) and the products m * t (a slope of 2^-k needs k fewer bits than
        # the shift) must stay within int64
        if t.shape[1].bit_length() + 2 + shift >= _LIMIT_BITS:
            break
        for rounding in (np.floor, np.ceil):
            todo = np.flatnonzero(found == -1)
            todo = todo[np.abs(middle[todo]) * float(1 << shift) < 2.0 ** (_LIMIT_BITS - 2 - magnitude)]
            if todo.size == 0:
                break
            cand = rounding(middle[todo] * float(1 << shift)).astype(np.int64)
            least, most = _offsets(cand, t[todo], valid[todo], lo[todo], hi[todo], shift,
                                   None if odd is None else odd[todo])
            ok = todo[least <= most]
            m[ok], b[ok], found[ok] = cand[least <= most], least[least <= most], shift
        if not (found == -1).any():
            break
    return m, b, found


# ---- pieces, knees, and the two front ends --------------------------------------------------------


@dataclass
class _Pieces:
    """Per channel and piece (C, 2): the count line (m, b at its own shift), its base, its clamp
    bounds, its direction (+1, or -1 for a piece fitted in -x); per channel the knee and whether
    it rounds half to even."""

    m: np.ndarray
    b: np.ndarray
    shift: np.ndarray
    base: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    sign: np.ndarray
    knee: np.ndarray
    half_even: np.ndarray

    FIELDS = ("m", "b", "shift", "base", "lo", "hi", "sign")

    @classmethod
    def empty(cls, channels: int) -> _Pieces:
        z = lambda: np.zeros((channels, 2), np.int64)  # noqa: E731
        return cls(z(), z(), z(), z(), z(), z(), np.ones((channels, 2), np.int64), np.zeros(channels, np.int64),
                   np.zeros(channels, bool))

    def set_piece(self, rows: np.ndarray, piece: int, line: _Line, sign: np.ndarray | int = 1) -> None:
        """Piece `piece` of channels `rows` from a fitted line (rows of `line` in the same order)."""
        for name in ("m", "b", "shift", "base", "lo", "hi"):
            getattr(self, name)[rows, piece] = getattr(line, name)
        self.sign[rows, piece] = sign
        self.half_even[rows] = line.half_even

    def form(self) -> Piecewise | None:
        """The pieces at one shift, in x: y = clamp(floor((sign m x + b + base 2^S) / 2^S), lo, hi);
        None if the common shift overflows."""
        shift = int(self.shift.max(initial=0))
        lift = shift - self.shift
        m, b = self.m << lift, self.b << lift
        if np.abs(m).max(initial=0) >= (1 << 40) or np.abs(b).max(initial=0) >= _BIG >> 2:
            return None
        return Piecewise(self.sign * m, b + (self.base << shift), self.lo.copy(), self.hi.copy(), self.knee.copy(),
                         shift, self.half_even.copy() if self.half_even.any() else None)


@dataclass
class _Line:
    """One fitted line per channel: y = clamp(base + floor((m u + b) / 2^shift), lo, hi) (shift
    < 0: none found)."""

    m: np.ndarray
    b: np.ndarray
    shift: np.ndarray
    base: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    half_even: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        return self.shift >= 0


def _bounded(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray,
             out_lo: int, out_hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The count problem of a line that needs no clamp of its own: a level 0 reached at the domain's
    start and a level T + 1 not reached before its end (where the run's lowest and highest values
    are not the output type's, whose clamp is free). Returns (thresholds, valid, base - 1)."""
    channels = t.shape[0]
    levels = valid.sum(axis=1)
    rows = np.arange(channels)
    te = np.concatenate([lo[:, None], t, (hi + 1)[:, None]], axis=1)
    ve = np.concatenate([(base > out_lo)[:, None], valid, np.zeros((channels, 1), bool)], axis=1)
    te[rows, levels + 1] = hi + 1
    ve[rows, levels + 1] = base + levels < out_hi
    return te, ve, base - 1


def _fit_line(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray,
              out_lo: int, out_hi: int) -> _Line:
    """One line per channel for the increasing function base + count on [lo, hi], the cheapest
    form first: bounded (clamps at the output type's ends, which every channel shares, so the ROM
    holds none), rounding down, then half to even; then with clamps of its own."""
    channels = t.shape[0]
    levels = valid.sum(axis=1)
    line = _Line(np.zeros(channels, np.int64), np.zeros(channels, np.int64), np.full(channels, -1, np.int64),
                 base.copy(), base.copy(), base + levels, np.zeros(channels, bool))
    for bounded in (True, False):
        tt, vv, bb = _bounded(t, valid, lo, hi, base, out_lo, out_hi) if bounded else (t, valid, base)
        for even in (False, True):
            rest = np.flatnonzero(~line.ok)
            if rest.size == 0:
                return line
            odd = (bb[rest, None] + np.arange(1, tt.shape[1] + 1)[None, :]) % 2 == 1 if even else None
            m, b, shift = fit_counts(tt[rest], vv[rest], lo[rest], hi[rest], odd)
            done = rest[shift >= 0]
            line.m[done], line.b[done], line.shift[done] = m[shift >= 0], b[shift >= 0], shift[shift >= 0]
            line.base[done], line.half_even[done] = bb[done], even
            if bounded:
                line.lo[done], line.hi[done] = out_lo, out_hi
    return line


def _split_levels(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, closed: bool) -> np.ndarray:
    """For increasing count functions that no single line holds: the level K (1-based) at whose
    threshold a second line takes over, so that levels 1..K-1 and K..T each keep an interval of
    slopes (non-empty; with `closed`, an end point is allowed: rounding half to even); 0 where no
    split does. From the pairwise bounds, the longest prefix and the longest suffix of levels
    that keep one; a K between them, the middle one."""
    channels, steps = t.shape
    split = np.zeros(channels, np.int64)
    fits = np.less_equal if closed else np.less
    for c in range(0, channels, _BLOCK):
        part = slice(c, c + _BLOCK)
        lower, upper = _pair_bounds(t[part], valid[part], lo[part], hi[part])
        rows = lower.shape[0]
        # prefix of J levels: pairs with both levels among the first J
        pre_lo = np.maximum.accumulate(lower.max(axis=2), axis=1)
        pre_hi = np.minimum.accumulate(upper.min(axis=1), axis=1)
        prefix_ok = np.concatenate([np.ones((rows, 1), bool), fits(pre_lo, pre_hi)], axis=1)  # [J]
        # suffix from level K: levels >= K must be reached, levels > K not before their threshold
        col_lo = np.maximum.accumulate(lower.max(axis=1)[:, ::-1], axis=1)[:, ::-1]  # over j' >= j
        suf_lo = np.concatenate([col_lo[:, 1:], np.zeros((rows, 1))], axis=1)
        suf_hi = np.minimum.accumulate(upper.min(axis=2)[:, ::-1], axis=1)[:, ::-1]
        suffix_ok = np.concatenate([fits(suf_lo, suf_hi), np.ones((rows, 1), bool)], axis=1)  # [K-1]
        for row, (pre, suf, n) in enumerate(zip(prefix_ok, suffix_ok, valid[part].sum(axis=1))):
            longest = int(np.flatnonzero(pre[: n + 1]).max())  # levels 1..longest take one line
            first = int(np.flatnonzero(suf[: n + 1]).min()) + 1  # and levels first..n another
            if 2 <= first <= longest + 1:
                split[c + row] = (first + longest + 1) // 2
    return split


def _increasing(t: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray,
                out_lo: int, out_hi: int) -> tuple[_Pieces, np.ndarray]:
    """Increasing functions base + count (thresholds t (C, T), `valid` levels, domains [lo, hi])
    as one line each, or two where one does not serve; and which channels have such a form. The
    knee is in the same coordinate as t."""
    channels = t.shape[0]
    t = np.clip(np.asarray(t, np.int64), lo[:, None], hi[:, None] + 1)
    pieces = _Pieces.empty(channels)
    pieces.knee[:] = lo  # one piece: the second, everywhere
    one = _fit_line(t, valid, lo, hi, base, out_lo, out_hi)
    rows = np.flatnonzero(one.ok)
    for p in (0, 1):
        pieces.set_piece(rows, p, _take(one, rows))
    ok = one.ok.copy()
    for closed in (False, True):
        rest = np.flatnonzero(~ok)
        if rest.size == 0:
            break
        split = _split_levels(t[rest], valid[rest], lo[rest], hi[rest], closed=closed)
        for index, k in zip(rest, split):
            if k >= 1 and _fit_split(pieces, int(index), int(k), t[index], int(valid[index].sum()), int(lo[index]),
                                     int(hi[index]), int(base[index]), out_lo, out_hi):
                ok[index] = True
    return pieces, ok


def _take(line: _Line, rows: np.ndarray) -> _Line:
    return _Line(*(getattr(line, name)[rows] for name in ("m", "b", "shift", "base", "lo", "hi", "half_even")))


def _fit_split(pieces: _Pieces, index: int, k: int, row: np.ndarray, n: int, lo: int, hi: int, base: int,
               out_lo: int, out_hi: int) -> bool:
    """Channel `index` as levels 1..k-1 on [lo, t_k - 1] and levels k..n on [t_k, hi], a line each
    (rounding alike); written into `pieces` where both have one."""
    knee, steps = int(row[k - 1]), row.size
    first = row[None, :].copy()
    first_valid = (np.arange(steps) < k - 1)[None, :]
    second = np.full((1, steps), hi + 1, np.int64)
    second[0, : n - k + 1] = row[k - 1:n]
    second_valid = (np.arange(steps) < n - k + 1)[None, :]
    a = _fit_line(first, first_valid, np.array([lo]), np.array([knee - 1]), np.array([base]), out_lo, out_hi)
    b = _fit_line(second, second_valid, np.array([knee]), np.array([hi]), np.array([base + k - 1]), out_lo, out_hi)
    if not (a.ok[0] and b.ok[0]):
        return False
    if a.half_even[0] != b.half_even[0]:  # one rounding per channel: fit the other piece that way too
        return False
    row_index = np.array([index])
    pieces.set_piece(row_index, 0, a)
    pieces.set_piece(row_index, 1, b)
    pieces.knee[index] = knee
    return True


def fit_thresholds(thresholds: np.ndarray, lo: int | np.ndarray, hi: int | np.ndarray, base: int,
                   out_lo: int, out_hi: int) -> Piecewise | None:
    """The form of y = base + #{t : x >= t} (thresholds (C, T) ascending per channel) on every x
    in [lo, hi] (per channel, if arrays: the values the input can take), the output type holding
    [out_lo, out_hi]; or None where a channel has none."""
    t = np.asarray(thresholds, np.int64)
    channels = t.shape[0]
    lo = np.broadcast_to(np.asarray(lo, np.int64), (channels,)).copy()
    hi = np.broadcast_to(np.asarray(hi, np.int64), (channels,)).copy()
    pieces, ok = _increasing(t, np.ones(t.shape, bool), lo, hi, np.full(channels, base, np.int64), out_lo, out_hi)
    exceptions: dict[int, list[tuple[int, int]]] = {}
    for c in np.flatnonzero(~ok):  # a line that misses a few single inputs, and those inputs
        found = line_with_exceptions(t[c], int(lo[c]), int(hi[c]), base)
        if found is None:
            return None
        line, exceptions[int(c)] = found
        for p in (0, 1):
            pieces.set_piece(np.array([c]), p, line)
        pieces.knee[c] = lo[c]
    form = pieces.form()
    if form is not None and exceptions:
        form = _with_exceptions(form, exceptions, lo, t, base)
    if form is not None:
        # both are monotone step functions on each piece (but at the exceptions, checked with
        # their neighbours): equal where either can step, equal everywhere
        marks = form.except_x if form.except_x is not None else np.zeros((channels, 0), np.int64)
        steps = np.concatenate([t - 1, t, pieces.knee[:, None] - 1, pieces.knee[:, None],
                                lo[:, None], hi[:, None], marks - 1, marks, marks + 1], axis=1)
        x = np.clip(steps, lo[:, None], hi[:, None])
        count = base + (x[:, :, None] >= t[:, None, :]).sum(axis=2)
        form = form.with_shared_clamps(count.min(axis=1), count.max(axis=1), lambda f: np.all(f(x.T).T == count, axis=1))
        assert np.array_equal(form(x.T).T, count), "piecewise fit differs from its thresholds"  # a bug
    return form


#: single inputs per channel a line may miss (`line_with_exceptions`), and levels it may drop
MAX_EXCEPTIONS = 8
MAX_DROPPED_LEVELS = 6


def line_with_exceptions(row: np.ndarray, lo: int, hi: int, base: int) -> tuple[_Line, list[tuple[int, int]]] | None:
    """One channel's base + #{t : x >= t} on [lo, hi] as one line that misses at most
    `MAX_EXCEPTIONS` single inputs, and those inputs with their outputs; None where none does.

    BatchNorm folded into thresholds on a wide accumulator, in the model's float32, puts a
    threshold now and then one value off the exact line (its float product rounds across the .5),
    and then no line holds all of them. Dropping the levels whose pairs bound the slope interval
    from either side (up to `MAX_DROPPED_LEVELS`, depth first) finds the line through the others;
    where it crosses a dropped level a value or two away from its threshold, those inputs are
    the exceptions."""
    steps = row.size
    t = np.clip(np.asarray(row, np.int64), lo, hi + 1)[None, :]
    lo_a, hi_a = np.array([lo], np.int64), np.array([hi], np.int64)

    def count(x: np.ndarray) -> np.ndarray:
        return base + (x[:, None] >= t[0][None, :]).sum(axis=1)

    def search(dropped: frozenset[int]):
        valid = np.ones((1, steps), bool)
        valid[0, list(dropped)] = False
        lower, upper = _pair_bounds(t, valid, lo_a, hi_a)
        if lower.max() < upper.min():
            m, b, shift = fit_counts(t, valid, lo_a, hi_a)
            if shift[0] < 0:
                return None
            line = _Line(m, b, shift, np.array([base]), np.array([base]), np.array([base + steps]), np.zeros(1, bool))
            window = np.unique(np.clip(np.concatenate([t[0, list(dropped)] + d for d in range(-MAX_EXCEPTIONS - 1,
                                                                                                 MAX_EXCEPTIONS + 2)]),
                                       lo, hi))
            got = np.clip(base + ((m[0] * window + b[0]) >> shift[0]), base, base + steps)
            missed = window[got != count(window)]
            if missed.size > MAX_EXCEPTIONS or (missed.size and missed.min() <= window.min() and missed.min() > lo) \
                    or (missed.size and missed.max() >= window.max() and missed.max() < hi):
                return None  # too many, or a run reaching the window's edge: more beyond it
            return line, [(int(x), int(y)) for x, y in zip(missed, count(missed))]
        if len(dropped) == MAX_DROPPED_LEVELS:
            return None
        k1 = np.unravel_index(int(lower[0].argmax()), lower[0].shape)
        k2 = np.unravel_index(int(upper[0].argmin()), upper[0].shape)
        for k in dict.fromkeys(int(k) for k in (*k1, *k2)):
            if k not in dropped and (found := search(dropped | {k})) is not None:
                return found
        return None

    return search(frozenset())


def _with_exceptions(form: Piecewise, exceptions: dict[int, list[tuple[int, int]]], lo: np.ndarray, t: np.ndarray,
                     base: int) -> Piecewise:
    """`form` with the exceptions of the channels that have some; an unused entry repeats the
    channel's first exception, or its value at `lo` (which its line gets right)."""
    width = max(len(v) for v in exceptions.values())
    if width == 0:
        return form
    xs = np.zeros((form.channels, width), np.int64)
    ys = np.zeros((form.channels, width), np.int64)
    for c in range(form.channels):
        own = exceptions.get(c) or [(int(lo[c]), base + int((t[c] <= lo[c]).sum()))]
        own = own + [own[0]] * (width - len(own))
        xs[c], ys[c] = [x for x, _ in own], [y for _, y in own]
    return replace(form, except_x=xs, except_y=ys)


@dataclass(frozen=True)
class TableFit:
    """What `fit_table` found: the form of every channel that has one (`form`; its entries for the
    others are a constant, unused), which channels have none (`failed`) and why (`reasons`:
    channel -> why), or no form at all (`form` None: the coefficients overflow)."""

    form: Piecewise | None
    failed: np.ndarray
    reasons: dict[int, str]

    @property
    def reason(self) -> str:
        """One line on the channels without a form."""
        if self.form is None:
            return self.reasons.get(-1, "no form")
        first = min(self.reasons)
        more = f" (and {len(self.reasons) - 1} more channels)" if len(self.reasons) > 1 else ""
        return f"channel {first}: {self.reasons[first]}{more}"


def fit_table(values: np.ndarray, x_min: int, out_lo: int, out_hi: int) -> TableFit:
    """The form of the function given on every input (values (C, E): channel c's output for input
    x_min + i at [c, i]; the output type holding [out_lo, out_hi]), channel by channel: a channel
    of more than two monotone runs, or one whose runs no line reproduces, has none (the model's
    float rounding can put single values off every line)."""
    v = np.asarray(values, np.int64)
    channels, entries = v.shape
    reasons: dict[int, str] = {}
    xs = x_min + np.arange(entries, dtype=np.int64)
    turn = np.full(channels, entries, np.int64)  # where the second monotone run starts
    plateau = np.zeros(channels, np.int64)  # how far the extremum's plateau reaches past `turn`
    rising = np.ones(channels, bool)  # the first run's direction
    for c in range(channels):
        d = np.sign(np.diff(v[c]))
        d = d[d != 0]
        changes = int((np.diff(d) != 0).sum())
        if changes > 1:
            reasons[c] = f"{changes + 1} monotone runs (two affine pieces follow at most two)"
            continue
        if d.size:
            rising[c] = d[0] > 0
        if changes == 1:  # a valley or a peak: the second run starts on the extremum's plateau
            extreme = v[c].max() if rising[c] else v[c].min()
            at = np.flatnonzero(v[c] == extreme)
            turn[c], plateau[c] = at[0], at[-1] + 1 - at[0]
    pieces = _Pieces.empty(channels)
    mono = np.array([c for c in np.flatnonzero(turn == entries) if c not in reasons], np.int64)
    if mono.size:  # one run, one or two lines: an increasing count in u = x, or u = -x if falling
        t, valid, base, lo, hi = _run_counts(v[mono], xs, np.zeros(mono.size, np.int64),
                                             np.full(mono.size, entries), rising[mono])
        sub, ok = _increasing(t, valid, lo, hi, base, out_lo, out_hi)
        for c in mono[~ok]:
            reasons[int(c)] = "no two affine pieces reproduce it (checked on every input)"
        falling = ~rising[mono]
        # in x, u >= knee_u is x >= knee_u when rising, and x < 1 - knee_u when falling: pieces swap
        for name in _Pieces.FIELDS:
            part = getattr(sub, name)
            part[falling] = part[falling][:, ::-1]
        sub.sign[falling] = -1
        sub.knee[falling] = 1 - sub.knee[falling]
        for name in (*_Pieces.FIELDS, "knee", "half_even"):
            getattr(pieces, name)[mono[ok]] = getattr(sub, name)[ok]
    turned = np.array([c for c in np.flatnonzero(turn < entries) if c not in reasons], np.int64)
    if turned.size:  # a valley or a peak: two runs, a line each, rounding alike
        # the kink lies somewhere on the extremum's plateau, which may end the first run or begin the
        # second at any point: the first split that needs no clamps of its own, else the first that fits
        best, free = None, np.zeros(turned.size, bool)
        for offset in range(min(int(plateau.max(initial=0)), PLATEAU_SPLITS) + 1):
            knee = turn + np.minimum(offset, plateau)
            bounds = ((np.zeros(channels, np.int64), knee, rising), (knee, np.full(channels, entries), ~rising))
            lines = []
            for start, stop, up in bounds:
                t, valid, base, lo, hi = _run_counts(v[turned], xs, start[turned], stop[turned], up[turned])
                lines.append(_fit_line(t, valid, lo, hi, base, out_lo, out_hi))
            ok = lines[0].ok & lines[1].ok & (lines[0].half_even == lines[1].half_even)
            clampless = ok & np.all([(ln.lo == out_lo) & (ln.hi == out_hi) for ln in lines], axis=0)
            take = (ok & (best is None)) if best is None else (clampless & ~free)
            if best is None:
                best = (lines, knee.copy(), ok)
            else:
                for p in (0, 1):
                    for name in ("m", "b", "shift", "base", "lo", "hi", "half_even"):
                        getattr(best[0][p], name)[take] = getattr(lines[p], name)[take]
                best[1][turned[take]] = knee[turned[take]]
                best = (best[0], best[1], best[2] | ok)
            free |= clampless
        lines, knee, ok = best
        for c in turned[~ok]:
            reasons[int(c)] = "a monotone run of it is no affine line at any shift"
        for p, line in enumerate(lines):
            up = rising[turned] if p == 0 else ~rising[turned]
            pieces.set_piece(turned[ok], p, _take(line, np.flatnonzero(ok)), np.where(up, 1, -1)[ok])
        pieces.knee[turned[ok]] = xs[np.minimum(knee[turned[ok]], entries - 1)]
    failed = np.zeros(channels, bool)
    failed[list(reasons)] = True
    pieces.lo[failed], pieces.hi[failed] = out_lo, out_hi  # a constant, never used
    form = pieces.form()
    if form is None:
        return TableFit(None, failed, {-1: f"its coefficients need more than 40 bits at shift {int(pieces.shift.max())}"})
    exact = lambda f: np.all(f(xs[:, None]) == v.T, axis=0) | failed  # noqa: E731
    form = form.with_shared_clamps(np.where(failed, out_lo, v.min(axis=1)), np.where(failed, out_hi, v.max(axis=1)),
                                   exact)
    assert exact(form).all(), "piecewise fit differs from its table"  # a bug, never the model's
    return TableFit(form, failed, reasons)


def _run_counts(v: np.ndarray, xs: np.ndarray, start: np.ndarray, stop: np.ndarray, up: np.ndarray) -> tuple:
    """One monotone run [start, stop) of each row of v, as an increasing count in u = x (`up`) or
    u = -x: (thresholds (C, L) in u, valid (C, L), base (C,), lo (C,), hi (C,)); the thresholds
    past a channel's levels are hi + 1."""
    rows = v.shape[0]
    bases, found, los, his = [], [], [], []
    for r in range(rows):
        seg_v, seg_x = v[r, start[r]:stop[r]], xs[start[r]:stop[r]]
        if not up[r]:
            seg_v, seg_x = seg_v[::-1], -seg_x[::-1]
        base, levels = int(seg_v[0]), int(seg_v[-1] - seg_v[0])
        found.append(seg_x[np.searchsorted(seg_v, base + np.arange(1, levels + 1), side="left")])
        bases.append(base), los.append(int(seg_x[0])), his.append(int(seg_x[-1]))
    hi = np.array(his, np.int64)
    t = np.repeat(hi[:, None] + 1, max(max(f.size for f in found), 1), axis=1)
    valid = np.zeros(t.shape, bool)
    for r, th in enumerate(found):
        t[r, : th.size], valid[r, : th.size] = th, True
    return t, valid, np.array(bases, np.int64), np.array(los, np.int64), hi
