"""Compiled integer kernels for the per-pixel hot spots (numba; integer arithmetic only).

The torch formulations in :mod:`bbcodec.exact.distributions` define the results;
these loops compute the same integers in one pass per pixel, without the large
intermediate tensors (tests check the two agree). Integer arithmetic compiled by
LLVM is the same on every CPU, and each output element is computed by one thread,
so the thread count changes nothing. The elementwise kernels run on one thread (their
arrays are small: one coding step of a group, where starting threads costs more than
it saves, and far more when another process holds the cores); only the pixel tables
of a whole teacher-forced pass are split across threads.
"""

from __future__ import annotations

import numba
import numpy as np

from bbcodec.exact.fixed import PROB_BITS, PROB_TOTAL, WEIGHT_TOTAL_BITS

PARALLEL_ROWS = 256  # rows from which a table kernel splits its rows across threads
STEP_PARALLEL_ROWS = 16  # rows of a decoding step from which its tables are split across threads


@numba.njit(cache=True, inline="always")
def _sigmoid_index(edge: int, mean: int, inv: int, shift: int, offset: int, last: int) -> int:  # pragma: no cover
    return min(max((((edge - mean) * inv) >> shift) + offset, 0), last)


@numba.njit(cache=True, inline="always")
def _first_edge_at_least(target: int, edges: np.ndarray, mean: int, inv: int, shift: int, offset: int,
                         last: int) -> int:  # pragma: no cover - compiled
    """The first edge whose sigmoid index reaches ``target`` (the index is monotone in the edge)."""
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _sigmoid_index(edges[mid], mean, inv, shift, offset, last) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True, inline="always")
def _logistic_row(out: np.ndarray, r: int, weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray,
                  edges: np.ndarray, sigmoid: np.ndarray, shift: int, offset: int) -> None:  # pragma: no cover
    """Row ``r`` of :func:`logistic_frequencies`, written into ``out``.

    A component's sigmoid index is monotone in the edge and clamped at both ends, so
    only the edges between its two clamps need a look-up; the clamped runs add a
    constant each, accumulated as differences. The sums are the same integers as
    adding every component at every edge (integer addition in any order)."""
    k = weights.shape[1]
    n_edges = edges.shape[0]
    last = sigmoid.shape[0] - 1
    free = PROB_TOTAL - n_edges - 1
    steps = np.zeros(n_edges + 1, dtype=np.int64)  # differences of the clamped runs' constants
    for j in range(n_edges):
        out[r, j] = 0
    for c in range(k):
        w, mean, inv = weights[r, c], means[r, c], inv_scales[r, c]
        if w == 0:
            continue
        if inv < 0:  # not monotone: every edge
            for j in range(n_edges):
                out[r, j] += w * sigmoid[_sigmoid_index(edges[j], mean, inv, shift, offset, last)]
            continue
        lo = _first_edge_at_least(1, edges, mean, inv, shift, offset, last)
        hi = _first_edge_at_least(last, edges, mean, inv, shift, offset, last)
        steps[0] += w * sigmoid[0]
        steps[lo] -= w * sigmoid[0]
        for j in range(lo, hi):
            out[r, j] += w * sigmoid[_sigmoid_index(edges[j], mean, inv, shift, offset, last)]
        steps[hi] += w * sigmoid[last]
    previous = 0
    constant = 0
    for j in range(n_edges):
        constant += steps[j]
        scaled = (((out[r, j] + constant) >> WEIGHT_TOTAL_BITS) * free) >> PROB_BITS
        out[r, j] = scaled - previous + 1
        previous = scaled
    out[r, n_edges] = free - previous + 1


# Two functions, not two dispatchers of one: numba's on-disk cache is keyed by the
# function's name and line, not by ``parallel``, so one Python function compiled both
# ways shares one cache entry, and a serial caller could load the threaded build
# without numba's thread pool started (a crash in a fresh process).
@numba.njit(cache=True, parallel=True, nogil=True)
def _logistic_parallel(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                       sigmoid: np.ndarray, shift: int, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty((weights.shape[0], edges.shape[0] + 1), dtype=np.int64)
    for r in numba.prange(weights.shape[0]):
        _logistic_row(out, r, weights, means, inv_scales, edges, sigmoid, shift, offset)
    return out


@numba.njit(cache=True, nogil=True)
def _logistic_serial(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                     sigmoid: np.ndarray, shift: int, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """Few rows: no thread start-up."""
    out = np.empty((weights.shape[0], edges.shape[0] + 1), dtype=np.int64)
    for r in range(weights.shape[0]):
        _logistic_row(out, r, weights, means, inv_scales, edges, sigmoid, shift, offset)
    return out


@numba.njit(cache=True, inline="always")
def _logistic_scaled(r: int, j: int, weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray,
                     edges: np.ndarray, sigmoid: np.ndarray, shift: int, offset: int) -> int:  # pragma: no cover
    """Row ``r``'s scaled mixture CDF at edge ``j``, as :func:`_logistic_row` forms it
    (every component's clamped sigmoid index at that edge; ``free`` shares of 2^24)."""
    last = sigmoid.shape[0] - 1
    total = 0
    for c in range(weights.shape[1]):
        w = weights[r, c]
        if w != 0:
            total += w * sigmoid[_sigmoid_index(edges[j], means[r, c], inv_scales[r, c], shift, offset, last)]
    free = PROB_TOTAL - edges.shape[0] - 1
    return ((total >> WEIGHT_TOTAL_BITS) * free) >> PROB_BITS


@numba.njit(cache=True, inline="always")
def logistic_interval(r: int, x: int, weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray,
                      edges: np.ndarray, sigmoid: np.ndarray, shift: int,
                      offset: int) -> tuple[int, int]:  # pragma: no cover - compiled
    """(start, frequency) of value ``x`` in row ``r``'s full table (:func:`logistic_frequencies`),
    from the two table edges around it: value ``x`` starts at scaled(x − 1) + x."""
    n_edges = edges.shape[0]
    below = _logistic_scaled(r, x - 1, weights, means, inv_scales, edges, sigmoid, shift, offset) if x > 0 else 0
    upto = _logistic_scaled(r, x, weights, means, inv_scales, edges, sigmoid, shift, offset) if x < n_edges \
        else PROB_TOTAL - n_edges - 1
    return below + x, upto - below + 1


@numba.njit(cache=True, inline="always")
def _likely_value(r: int, weights: np.ndarray, means: np.ndarray, edges: np.ndarray) -> int:  # pragma: no cover
    """The value whose bin holds the mean of row ``r``'s heaviest component: where most
    of a sharp mixture's mass lies (an MNIST background pixel's 0, a stroke's 255)."""
    top = 0
    for c in range(1, weights.shape[1]):
        if weights[r, c] > weights[r, top]:
            top = c
    # The edges are evenly spaced to within rounding, so the bin is found by one
    # division instead of a search (a guess need not be exact: it only orders the search).
    n_edges, first = edges.shape[0], edges[0]
    mean = means[r, top]
    if mean <= first:
        return 0
    return min((mean - first) * (n_edges - 1) // (edges[n_edges - 1] - first) + 1, n_edges)


@numba.njit(cache=True, inline="always")
def _bisect_interval(r: int, quantile: int, lo: int, hi: int, below: int, above: int, weights: np.ndarray,
                     means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray, sigmoid: np.ndarray, shift: int,
                     offset: int) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """(value, start, frequency) of the value in [lo, hi] whose interval holds ``quantile``,
    given ``below`` = scaled(lo − 1) and ``above`` = scaled(hi): the two CDF edges around
    the value are the last two the bisection evaluated on either side."""
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        scaled = _logistic_scaled(r, mid - 1, weights, means, inv_scales, edges, sigmoid, shift, offset)
        if scaled + mid <= quantile:
            lo, below = mid, scaled
        else:
            hi, above = mid - 1, scaled
    return lo, below + lo, above - below + 1


@numba.njit(cache=True, inline="always")
def logistic_value_interval(r: int, quantile: int, weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray,
                            edges: np.ndarray, sigmoid: np.ndarray, shift: int,
                            offset: int) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """(value, start, frequency) of the value whose interval in row ``r``'s full table
    (:func:`logistic_frequencies`) holds ``quantile`` (in [0, 2^24)), without the table:
    what an ANS pop needs, and an inverse-CDF draw the first of.

    The search first tries :func:`_likely_value` (one or two CDF evaluations), then
    bisects on the side the quantile lies (eight or fewer). Every value's start is
    scaled(value − 1) + value, strictly increasing (weights and inverse scales are
    non-negative, the sigmoid table non-decreasing), so one value holds the quantile
    and any search order finds the same one: the search order is speed, not format."""
    n_edges = edges.shape[0]
    top = PROB_TOTAL - n_edges - 1  # scaled(n_edges): the CDF's end
    guess = _likely_value(r, weights, means, edges)
    below = _logistic_scaled(r, guess - 1, weights, means, inv_scales, edges, sigmoid, shift, offset) if guess > 0 else 0
    if quantile < below + guess:
        return _bisect_interval(r, quantile, 0, guess - 1, 0, below, weights, means, inv_scales, edges, sigmoid,
                                shift, offset)
    above = _logistic_scaled(r, guess, weights, means, inv_scales, edges, sigmoid, shift, offset) \
        if guess < n_edges else top
    if quantile > above + guess:
        return _bisect_interval(r, quantile, guess + 1, n_edges, above, top, weights, means, inv_scales, edges,
                                sigmoid, shift, offset)
    return guess, below + guess, above - below + 1


@numba.njit(cache=True, inline="always")
def logistic_value_at(r: int, quantile: int, weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray,
                      edges: np.ndarray, sigmoid: np.ndarray, shift: int,
                      offset: int) -> int:  # pragma: no cover - compiled
    """The value whose interval in row ``r``'s full table holds ``quantile``
    (:func:`logistic_value_interval`'s search): an inverse-CDF draw."""
    return logistic_value_interval(r, quantile, weights, means, inv_scales, edges, sigmoid, shift, offset)[0]


ANS_WORD = np.uint64(1 << 32)  # constriction's AnsCoder: 32-bit words, a 64-bit state


@numba.njit(cache=True, inline="always")
def ans_quantile(head: np.ndarray) -> int:  # pragma: no cover - compiled
    """The quantile the next pop reads: the state's low 24 bits (``head`` = [bulk length, state])."""
    return np.int64(head[1] & np.uint64(PROB_TOTAL - 1))


@numba.njit(cache=True, inline="always")
def ans_advance(head: np.ndarray, words: np.ndarray, start: int, freq: int,
                quantile: int) -> None:  # pragma: no cover - compiled
    """Finish popping the symbol at [start, start + freq) that holds ``quantile``: the state
    update and refill of constriction's ``AnsCoder::decode_symbol`` (precision 24), on
    the coder's words as :class:`bbcodec.ans.RawHead` holds them. Unsigned 64-bit
    throughout (numba would turn mixed signed/unsigned arithmetic into floats)."""
    state = (head[1] >> np.uint64(PROB_BITS)) * np.uint64(freq) + np.uint64(quantile - start)
    if state < ANS_WORD and head[0] > np.uint64(0):
        head[0] -= np.uint64(1)
        state = (state << np.uint64(32)) | np.uint64(words[head[0]])
    head[1] = state


@numba.njit(cache=True, nogil=True, parallel=True)
def logistic_intervals(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                       sigmoid: np.ndarray, shift: int, offset: int,
                       symbols: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(rows, 3) frequencies that give each row's ``symbol`` the interval its full table
    (:func:`logistic_frequencies`) gives it: (start, frequency) from the two table edges
    around the symbol, the rest of 2^24 on either side. An encoder knows its symbols and
    needs no other entry; returned as 3-entry tables [before, symbol, after] whose
    outer entries are at least 1 (a symbol at either end borrows 1 from the other side:
    see :func:`interval_symbols`), so the ANS step is the full table's own."""
    out = np.empty((weights.shape[0], 3), dtype=np.int64)
    for r in numba.prange(weights.shape[0]):
        start, freq = logistic_interval(r, symbols[r], weights, means, inv_scales, edges, sigmoid, shift, offset)
        if start == 0:  # [freq, rest − 1, 1]: the symbol is entry 0
            out[r, 0], out[r, 1], out[r, 2] = freq, PROB_TOTAL - freq - 1, 1
        elif start + freq == PROB_TOTAL:  # [1, start − 1, freq]: the symbol is entry 2
            out[r, 0], out[r, 1], out[r, 2] = 1, start - 1, freq
        else:
            out[r, 0], out[r, 1], out[r, 2] = start, freq, PROB_TOTAL - start - freq
    return out


def interval_symbols(symbols: np.ndarray, levels: int) -> np.ndarray:
    """Which entry of :func:`logistic_intervals`' 3-entry tables each symbol is."""
    return np.where(symbols == 0, 0, np.where(symbols == levels - 1, 2, 1)).astype(np.int32)


def logistic_frequencies(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                         sigmoid: np.ndarray, shift: int, offset: int) -> np.ndarray:
    """(rows, 256) integer frequency tables of discretised logistic mixtures (rows, K)."""
    kernel = _logistic_parallel if len(weights) >= PARALLEL_ROWS else _logistic_serial
    return kernel(weights, means, inv_scales, edges, sigmoid, shift, offset)


@numba.njit(cache=True, inline="always")
def _ndtr_index(edge: int, mean_shifted: int, den: int, offset: int, last: int) -> int:  # pragma: no cover
    return min(max((edge - mean_shifted) // den + offset, 0), last)  # // floors, as floor_div


@numba.njit(cache=True, inline="always")
def _edge(base: np.ndarray, j: int, shift: int, scale: int) -> int:  # pragma: no cover - compiled
    return shift + scale * base[j]


@numba.njit(cache=True, inline="always")
def _first_ndtr_edge_at_least(target: int, base: np.ndarray, shift: int, scale: int, mean_shifted: int, den: int,
                              offset: int, last: int) -> int:  # pragma: no cover - compiled
    lo, hi = 0, base.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _ndtr_index(_edge(base, mid, shift, scale), mean_shifted, den, offset, last) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True, inline="always")
def _floor_quotient(x: int, d: int, inverse: float) -> int:  # pragma: no cover - compiled
    """``x // d`` for ``d > 0`` and ``inverse = 1 / d``: a float estimate corrected to the
    exact floor, so the result is the integer quotient whatever the rounding (the loops
    run at most twice when the quotient is far below 2^50, as between a row's clamps);
    a multiply instead of a 64-bit division, which costs tens of cycles."""
    q = np.int64(np.floor(x * inverse))
    r = x - q * d
    while r < 0:
        q -= 1
        r += d
    while r >= d:
        q += 1
        r -= d
    return q


@numba.njit(cache=True, inline="always")
def _gaussian_row(out: np.ndarray, r: int, base: np.ndarray, edge_shift: np.ndarray, edge_scale: np.ndarray,
                  mean_shifted: np.ndarray, den: np.ndarray, ndtr: np.ndarray,
                  offset: int) -> None:  # pragma: no cover - compiled
    """Row ``r`` of :func:`gaussian_frequencies`. The table index is monotone in the edge
    and clamped at both ends, so the exact quotients run only between the clamps."""
    n_edges, last = base.shape[0], ndtr.shape[0] - 1
    free = PROB_TOTAL - n_edges - 1
    low, high = (ndtr[0] * free) >> PROB_BITS, (ndtr[last] * free) >> PROB_BITS
    e_row = 0 if edge_shift.shape[0] == 1 else r
    shift, scale = edge_shift[e_row], edge_scale[e_row]
    m, d = mean_shifted[r], den[r]
    inverse = 1.0 / d
    lo = _first_ndtr_edge_at_least(1, base, shift, scale, m, d, offset, last)
    hi = _first_ndtr_edge_at_least(last, base, shift, scale, m, d, offset, last)
    previous = 0
    for j in range(n_edges):
        if j < lo:
            scaled = low
        elif j >= hi:
            scaled = high
        else:  # between the clamps: the index is in range, so no clamp either
            x = _edge(base, j, shift, scale) - m
            scaled = (ndtr[_floor_quotient(x, d, inverse) + offset] * free) >> PROB_BITS
        out[r, j] = scaled - previous + 1
        previous = scaled
    out[r, n_edges] = free - previous + 1


@numba.njit(cache=True, nogil=True, parallel=True)
def _gaussian_parallel(base: np.ndarray, edge_shift: np.ndarray, edge_scale: np.ndarray, mean_shifted: np.ndarray,
                       den: np.ndarray, ndtr: np.ndarray, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty((mean_shifted.shape[0], base.shape[0] + 1), dtype=np.int64)
    for r in numba.prange(mean_shifted.shape[0]):
        _gaussian_row(out, np.int64(r), base, edge_shift, edge_scale, mean_shifted, den, ndtr, offset)
    return out


@numba.njit(cache=True, nogil=True)
def _gaussian_serial(base: np.ndarray, edge_shift: np.ndarray, edge_scale: np.ndarray, mean_shifted: np.ndarray,
                     den: np.ndarray, ndtr: np.ndarray, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """Few rows: no thread start-up."""
    out = np.empty((mean_shifted.shape[0], base.shape[0] + 1), dtype=np.int64)
    for r in range(mean_shifted.shape[0]):
        _gaussian_row(out, r, base, edge_shift, edge_scale, mean_shifted, den, ndtr, offset)
    return out


def gaussian_frequencies(base: np.ndarray, edge_shift: np.ndarray, edge_scale: np.ndarray, mean_shifted: np.ndarray,
                         den: np.ndarray, ndtr: np.ndarray, offset: int) -> np.ndarray:
    """(rows, E + 1) frequencies of Gaussians at the edges ``edge_shift[r] + edge_scale[r] · base``
    (``base`` (E,); shift and scale (rows,) or (1,)): the integers of
    :func:`bbcodec.exact.distributions.gaussian_frequencies_reference` at those edges, made
    row by row instead of as a (rows, E) array (rows split across threads when there are
    many; each row is one thread's, so the count changes nothing)."""
    kernel = _gaussian_parallel if len(mean_shifted) >= PARALLEL_ROWS else _gaussian_serial
    return kernel(base, edge_shift, edge_scale, mean_shifted, den, ndtr, offset)


@numba.njit(cache=True, inline="always")
def _logistic_parameters_row(params: np.ndarray, r: int, k: int, weights: np.ndarray, means: np.ndarray,
                             inv: np.ndarray, exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray,
                             exp_shift: int, exp_offset: int, mean_limit: int,
                             log_scale_floor: int) -> None:  # pragma: no cover - compiled
    """Row ``r`` of :func:`logistic_parameters`, written into ``weights``, ``means``, ``inv``."""
    last_neg, last_exp = exp_neg.shape[0] - 1, exp_table.shape[0] - 1
    top = params[r, 0]
    for c in range(1, k):
        top = max(top, params[r, c])
    total = 0
    for c in range(k):
        weights[r, c] = exp_neg[min(max((top - params[r, c]) >> exp_neg_shift, 0), last_neg)]
        total += weights[r, c]
    for c in range(k):
        weights[r, c] = (weights[r, c] << WEIGHT_TOTAL_BITS) // total
        means[r, c] = min(max(params[r, k + c], -mean_limit), mean_limit)
        ls = max(params[r, 2 * k + c], log_scale_floor)
        inv[r, c] = exp_table[min(max(((-ls) >> exp_shift) + exp_offset, 0), last_exp)]


@numba.njit(cache=True, nogil=True)
def logistic_parameters(params: np.ndarray, k: int, exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray,
                        exp_shift: int, exp_offset: int, mean_limit: int,
                        log_scale_floor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Mixture weights, clamped means and inverse scales (rows, K) from packed grid parameters
    (rows, 3K: logits, means, log-scales): the integers of
    :meth:`bbcodec.exact.distributions.Logistics.from_params`, in one pass per row."""
    rows = params.shape[0]
    weights = np.empty((rows, k), dtype=np.int64)
    means = np.empty((rows, k), dtype=np.int64)
    inv = np.empty((rows, k), dtype=np.int64)
    for r in range(rows):
        _logistic_parameters_row(params, r, k, weights, means, inv, exp_neg, exp_neg_shift, exp_table, exp_shift,
                                 exp_offset, mean_limit, log_scale_floor)
    return weights, means, inv


@numba.njit(cache=True, inline="always")
def _silu(y: float, table: np.ndarray, offset: int) -> float:  # pragma: no cover - compiled
    idx = int(np.floor(y * 0.25)) + offset  # activation grid (2^-14) -> table grid (2^-12)
    idx = min(max(idx, 0), table.shape[0] - 1)
    return max(y, 0.0) + table[idx]


@numba.njit(cache=True, inline="always")
def _requant(acc: float, scale: float, limit: float) -> float:  # pragma: no cover - compiled
    return min(max(np.rint(acc * scale), -limit), limit)


@numba.njit(cache=True, nogil=True)
def silu(x: np.ndarray, table: np.ndarray, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    flat = x.ravel()
    out = np.empty_like(flat)
    for i in numba.prange(flat.shape[0]):
        out[i] = _silu(flat[i], table, offset)
    return out.reshape(x.shape)


@numba.njit(cache=True, nogil=True)
def requant_silu(acc: np.ndarray, scale: np.ndarray, table: np.ndarray, offset: int,
                 limit: float) -> np.ndarray:  # pragma: no cover - compiled
    rows, cols = acc.shape
    out = np.empty_like(acc)
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = _silu(_requant(acc[r, c], scale[c], limit), table, offset)
    return out


@numba.njit(cache=True, nogil=True)
def requant_add_silu(acc: np.ndarray, scale: np.ndarray, h: np.ndarray, table: np.ndarray, offset: int,
                     limit: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    rows, cols = acc.shape
    out = np.empty_like(acc)
    act = np.empty_like(acc)
    for r in numba.prange(rows):
        for c in range(cols):
            y = min(max(h[r, c] + _requant(acc[r, c], scale[c], limit), -limit), limit)
            out[r, c] = y
            act[r, c] = _silu(y, table, offset)
    return out, act


@numba.njit(cache=True, nogil=True)
def requant_add(acc: np.ndarray, scale: np.ndarray, h: np.ndarray, limit: float) -> np.ndarray:  # pragma: no cover
    """``saturate(h + requant(acc))`` (a window convolution's step plus its conditioning)."""
    rows, cols = acc.shape
    out = np.empty_like(acc)
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = min(max(h[r, c] + _requant(acc[r, c], scale[c], limit), -limit), limit)
    return out


@numba.njit(cache=True, nogil=True)
def requant_channels(acc: np.ndarray, scale: np.ndarray, limit: float) -> np.ndarray:  # pragma: no cover
    """``requant`` of an (N, C, L) accumulator with one scale per channel C."""
    n, c, length = acc.shape
    out = np.empty_like(acc)
    for i in numba.prange(n * c):
        s = scale[i % c]
        for j in range(length):
            out[i // c, i % c, j] = _requant(acc[i // c, i % c, j], s, limit)
    return out


@numba.njit(cache=True, nogil=True)
def requant_rows(acc: np.ndarray, scale: np.ndarray, limit: float) -> np.ndarray:  # pragma: no cover
    """``requant`` of a (rows, C) accumulator with one scale per column C."""
    rows, cols = acc.shape
    out = np.empty_like(acc)
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = _requant(acc[r, c], scale[c], limit)
    return out


@numba.njit(cache=True, inline="always")
def window_origin(row: int, h_out: int, w_out: int, stride: int) -> tuple[int, int, int]:  # pragma: no cover
    """Image and top-left input position of im2col row ``row`` (rows run image, then raster)."""
    img = row // (h_out * w_out)
    rest = row - img * (h_out * w_out)
    i = rest // w_out
    return img, i * stride, (rest - i * w_out) * stride


@numba.njit(cache=True, nogil=True, parallel=True)
def conv_rows(x: np.ndarray, lo: int, hi: int, kh: int, kw: int, stride: int, ph: int, pw: int, h_out: int,
              w_out: int, table: np.ndarray, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`im2col` rows of images ``lo:hi`` of channels-first values ``x`` (N, C, H, W),
    zero-padded by (ph, pw) on the way: rows (image, raster), columns (di, dj, channel).
    With a SiLU ``table`` (non-empty) the rows hold ``silu(x)`` and the padding 0, what
    :func:`silu` then padding gives. Each image is laid out channels-last once, in cache."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    per = h_out * w_out
    out = np.empty(((hi - lo) * per, kh * kw * c), dtype=x.dtype)
    act = table.shape[0] > 0
    for i in numba.prange(hi - lo):
        src = np.zeros((h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
        for ch in range(c):
            for y in range(h):
                for xx in range(w):
                    v = x[lo + i, ch, y, xx]
                    src[y + ph, xx + pw, ch] = _silu(v, table, offset) if act else v
        for oy in range(h_out):
            for ox in range(w_out):
                row = i * per + oy * w_out + ox
                for di in range(kh):
                    for dj in range(kw):
                        base = (di * kw + dj) * c
                        for ch in range(c):
                            out[row, base + ch] = src[oy * stride + di, ox * stride + dj, ch]
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def requant_channels_first(acc: np.ndarray, scale: np.ndarray, limit: float, out: np.ndarray,
                           lo: int) -> None:  # pragma: no cover - compiled
    """``requant`` of :func:`conv_rows`-ordered sums (images from ``lo``, raster; C columns)
    into channels-first ``out`` (N, C, H'·W'), one (image, channel) plane at a time."""
    c, per = out.shape[1], out.shape[2]
    for k in numba.prange((acc.shape[0] // per) * c):
        i, ch = k // c, k % c
        s = scale[ch]
        for p in range(per):
            out[lo + i, ch, p] = _requant(acc[i * per + p, ch], s, limit)


@numba.njit(cache=True, nogil=True, parallel=True)
def im2col(padded: np.ndarray, kh: int, kw: int, stride: int, h_out: int,
           w_out: int) -> np.ndarray:  # pragma: no cover - compiled
    """The ``kh × kw`` windows of channels-last values (N, Hp, Wp, C) as rows (N·H'·W', kh·kw·C):
    a convolution as one matrix product (a copy: the values are not changed)."""
    n, _, _, c = padded.shape
    m = n * h_out * w_out
    out = np.empty((m, kh * kw * c), dtype=padded.dtype)
    for row in numba.prange(m):
        img, top, left = window_origin(row, h_out, w_out, stride)
        for di in range(kh):
            for dj in range(kw):
                base = (di * kw + dj) * c
                for ch in range(c):
                    out[row, base + ch] = padded[img, top + di, left + dj, ch]
    return out


@numba.njit(cache=True, inline="always")
def _log2_fixed(v: int, mantissa_table: np.ndarray) -> int:  # pragma: no cover - compiled
    """``distributions.log2_fixed`` for one positive integer: exponent by bit length, mantissa
    by its top 16 bits (the same integers as the frexp formulation)."""
    e = 0
    while (v >> e) > 0:
        e += 1
    d = v - (1 << (e - 1))
    idx = d >> (e - 17) if e - 1 >= 16 else d << (17 - e)
    return ((e - 1) << 20) + mantissa_table[idx]


@numba.njit(cache=True, inline="always")
def _cdf(edge: int, mean: int, inv: int, sigmoid: np.ndarray, shift: int, offset: int) -> int:  # pragma: no cover
    idx = (((edge - mean) * inv) >> shift) + offset
    return sigmoid[min(max(idx, 0), sigmoid.shape[0] - 1)]


@numba.njit(cache=True, inline="always")
def _coupled_row(t: int, r: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                 units: np.ndarray, masses: np.ndarray, comp_means: np.ndarray, weights: np.ndarray,
                 out: np.ndarray, edges: np.ndarray, sigmoid: np.ndarray, exp2_neg: np.ndarray, shift: int,
                 offset: int, exp2_shift: int, mean_limit: int, one: float,
                 limit: float) -> None:  # pragma: no cover - compiled
    """Row ``r`` of :func:`coupled_step`: its component means and weights, then its table."""
    _coupled_mixture_row(t, r, log2_pi, means, coeffs, units, masses, comp_means, weights, exp2_neg, exp2_shift,
                         mean_limit, one, limit)
    _logistic_row(out, r, weights, comp_means, inv[t], edges, sigmoid, shift, offset)


@numba.njit(cache=True, inline="always")
def _coupled_mixture_row(t: int, r: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray,
                         units: np.ndarray, masses: np.ndarray, comp_means: np.ndarray, weights: np.ndarray,
                         exp2_neg: np.ndarray, exp2_shift: int, mean_limit: int, one: float,
                         limit: float) -> None:  # pragma: no cover - compiled
    """Row ``r``'s mixture over channel ``t``: component means shifted by the channels before
    it, weights the integer softmax of ``log2 π`` plus those channels' log2 masses."""
    k = log2_pi.shape[1]
    top = -(1 << 62)
    for c in range(k):
        mean = means[t, r, c]
        for s in range(t):
            mean += min(max(np.rint(coeffs[t * (t - 1) // 2 + s, r, c] * units[r, s] * (1.0 / one)), -limit), limit)
        comp_means[r, c] = min(max(int(mean), -mean_limit), mean_limit)
        w = log2_pi[r, c]
        for s in range(t):
            w += masses[r, s, c]
        weights[r, c] = w
        top = max(top, w)
    total = 0
    for c in range(k):
        weights[r, c] = exp2_neg[min(max((top - weights[r, c]) >> exp2_shift, 0), exp2_neg.shape[0] - 1)]
        total += weights[r, c]
    for c in range(k):
        weights[r, c] = (weights[r, c] << WEIGHT_TOTAL_BITS) // total


@numba.njit(cache=True, nogil=True, parallel=True)
def _coupled_parallel(t: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                      units: np.ndarray, masses: np.ndarray, edges: np.ndarray, sigmoid: np.ndarray,
                      exp2_neg: np.ndarray, shift: int, offset: int, exp2_shift: int, mean_limit: int,
                      one: float, limit: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    rows, k = log2_pi.shape
    comp_means = np.empty((rows, k), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    out = np.empty((rows, edges.shape[0] + 1), dtype=np.int64)
    for r in numba.prange(rows):
        _coupled_row(t, r, log2_pi, means, coeffs, inv, units, masses, comp_means, weights, out, edges, sigmoid,
                     exp2_neg, shift, offset, exp2_shift, mean_limit, one, limit)
    return out, comp_means


@numba.njit(cache=True, nogil=True)
def _coupled_serial(t: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                    units: np.ndarray, masses: np.ndarray, edges: np.ndarray, sigmoid: np.ndarray,
                    exp2_neg: np.ndarray, shift: int, offset: int, exp2_shift: int, mean_limit: int,
                    one: float, limit: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Few rows: no thread start-up."""
    rows, k = log2_pi.shape
    comp_means = np.empty((rows, k), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    out = np.empty((rows, edges.shape[0] + 1), dtype=np.int64)
    for r in range(rows):
        _coupled_row(t, r, log2_pi, means, coeffs, inv, units, masses, comp_means, weights, out, edges, sigmoid,
                     exp2_neg, shift, offset, exp2_shift, mean_limit, one, limit)
    return out, comp_means


def coupled_step(t: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                 units: np.ndarray, masses: np.ndarray, edges: np.ndarray, sigmoid: np.ndarray,
                 exp2_neg: np.ndarray, shift: int, offset: int, exp2_shift: int, mean_limit: int,
                 one: float, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Channel ``t`` of coupled RGB pixels (rows, K): its frequency tables and its component means.

    The same integers as :meth:`bbcodec.exact.coupled.CoupledLogistics._step`: means shifted
    by ``round(c · u / 2^14)`` of the channels before, weights an integer softmax of
    ``log2 π + Σ log2 P_k(x_c)`` (``exp2_neg`` table), then the mixture's tables (rows
    split across threads from :data:`STEP_PARALLEL_ROWS` on: a large image's tiles)."""
    kernel = _coupled_parallel if len(log2_pi) >= STEP_PARALLEL_ROWS else _coupled_serial
    return kernel(t, log2_pi, means, coeffs, inv, units, masses, edges, sigmoid, exp2_neg, shift, offset,
                  exp2_shift, mean_limit, one, limit)


@numba.njit(cache=True, nogil=True)
def coupled_pop(t: int, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                units: np.ndarray, masses: np.ndarray, head: np.ndarray, words: np.ndarray, edges: np.ndarray,
                sigmoid: np.ndarray, exp2_neg: np.ndarray, shift: int, offset: int, exp2_shift: int,
                mean_limit: int, one: float, limit: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Pop channel ``t`` of every row, first row first, from the coder's ``head`` and ``words``
    (:class:`bbcodec.ans.RawHead`): the values constriction pops with :func:`coupled_step`'s
    tables, and the coder it leaves, without the tables (each row's value by bisection over
    its mixture's edges, then ``AnsCoder::decode_symbol``'s update). Returns the values and
    the component means, as :func:`coupled_step` does."""
    rows, k = log2_pi.shape
    comp_means = np.empty((rows, k), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    for r in range(rows):
        _coupled_mixture_row(t, r, log2_pi, means, coeffs, units, masses, comp_means, weights, exp2_neg, exp2_shift,
                             mean_limit, one, limit)
    inv_t = inv[t]
    out = np.empty(rows, dtype=np.uint8)
    for r in range(rows):
        quantile = ans_quantile(head)
        value, start, freq = logistic_value_interval(r, quantile, weights, comp_means, inv_t, edges, sigmoid, shift,
                                                     offset)
        ans_advance(head, words, start, freq, quantile)
        out[r] = value
    return out, comp_means


@numba.njit(cache=True, nogil=True)
def coupled_parameters(params: np.ndarray, k: int, log2_e: int, frac: int, tanh_table: np.ndarray,
                       tanh_offset: int, exp_table: np.ndarray, exp_shift: int, exp_offset: int,
                       log_scale_floor: int) -> tuple:  # pragma: no cover - compiled
    """The kernel arguments of :class:`bbcodec.exact.coupled.CoupledSteps` from a head's grid
    parameters (rows, 10K: per component a logit, three means, three log-scales, three
    raw coefficients): ``log2 π`` (rows, K) int64, means (3, rows, K), tanh'd coefficients
    (3, rows, K) float64 and inverse scales (3, rows, K) int64, the integers
    :class:`~bbcodec.exact.coupled.CoupledLogistics` computes in torch ops."""
    rows = params.shape[0]
    log2_pi = np.empty((rows, k), dtype=np.int64)
    means = np.empty((3, rows, k), dtype=np.float64)
    coeffs = np.empty((3, rows, k), dtype=np.float64)
    inv = np.empty((3, rows, k), dtype=np.int64)
    last_tanh, last_exp = tanh_table.shape[0] - 1, exp_table.shape[0] - 1
    for r in range(rows):
        for c in range(k):
            base = 10 * c
            log2_pi[r, c] = (np.int64(params[r, base]) * log2_e) >> frac
            for t in range(3):
                means[t, r, c] = params[r, base + 1 + t]
                ls = max(np.int64(params[r, base + 4 + t]), log_scale_floor)
                inv[t, r, c] = exp_table[min(max(((-ls) >> exp_shift) + exp_offset, 0), last_exp)]
                u = np.int64(np.floor(params[r, base + 7 + t] * 0.25))  # activation grid -> tanh grid (2^-12)
                coeffs[t, r, c] = tanh_table[min(max(u + tanh_offset, 0), last_tanh)]
    return log2_pi, means, coeffs, inv


@numba.njit(cache=True, nogil=True)
def component_log2_mass(values: np.ndarray, means: np.ndarray, inv: np.ndarray, edges: np.ndarray,
                        sigmoid: np.ndarray, mantissa_table: np.ndarray, shift: int,
                        offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """log2 of each component's integer mass in the bin of ``values`` (rows,), 2^-20 bits: (rows, K)."""
    rows, k = means.shape
    out = np.empty((rows, k), dtype=np.int64)
    for r in range(rows):
        x = values[r]
        for c in range(k):
            lower = 0 if x == 0 else _cdf(edges[max(x - 1, 0)], means[r, c], inv[r, c], sigmoid, shift, offset)
            upper = PROB_TOTAL if x == 255 else _cdf(edges[min(x, 254)], means[r, c], inv[r, c], sigmoid, shift,
                                                     offset)
            out[r, c] = _log2_fixed(max(upper - lower, 1), mantissa_table) - (PROB_BITS << 20)
    return out


@numba.njit(cache=True, inline="always")
def _categorical_row(table: np.ndarray, r: int, out: np.ndarray) -> bool:  # pragma: no cover - compiled
    total = 0
    good = True
    for j in range(table.shape[1]):
        f = table[r, j]
        total += f
        good = good and 1 <= f <= PROB_TOTAL  # also keeps the sum from overflowing
        out[r, j] = f - 1
    return good and total == PROB_TOTAL


@numba.njit(cache=True, nogil=True, parallel=True)
def _categorical_parallel(table: np.ndarray) -> tuple[bool, np.ndarray]:  # pragma: no cover - compiled
    out = np.empty(table.shape, dtype=np.float32)
    good = np.empty(table.shape[0], dtype=np.bool_)
    for r in numba.prange(table.shape[0]):
        good[r] = _categorical_row(table, np.int64(r), out)
    return bool(good.all()), out


@numba.njit(cache=True, nogil=True)
def _categorical_serial(table: np.ndarray) -> tuple[bool, np.ndarray]:  # pragma: no cover - compiled
    """Few rows: no thread start-up."""
    out = np.empty(table.shape, dtype=np.float32)
    good = True
    for r in range(table.shape[0]):
        good = _categorical_row(table, r, out) and good
    return good, out


def categorical_params(table: np.ndarray) -> tuple[bool, np.ndarray]:
    """(every row totals 2^24 with every entry ≥ 1, ``table − 1`` as float32) of int64 frequency
    tables (N, K), in one pass: what constriction's categorical takes (whole numbers below
    2^24, exact in float32)."""
    kernel = _categorical_parallel if len(table) >= PARALLEL_ROWS else _categorical_serial
    return kernel(np.ascontiguousarray(table, dtype=np.int64))
