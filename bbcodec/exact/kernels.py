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


def _logistic_frequencies(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                          sigmoid: np.ndarray, shift: int, offset: int) -> np.ndarray:  # pragma: no cover - compiled
    rows, k = weights.shape
    n_edges = edges.shape[0]
    n = n_edges + 1
    last = sigmoid.shape[0] - 1
    free = PROB_TOTAL - n
    out = np.empty((rows, n), dtype=np.int64)
    for r in numba.prange(rows):
        previous = 0
        for j in range(n_edges):
            total = 0
            for c in range(k):
                idx = (((edges[j] - means[r, c]) * inv_scales[r, c]) >> shift) + offset
                idx = min(max(idx, 0), last)
                total += weights[r, c] * sigmoid[idx]
            scaled = ((total >> WEIGHT_TOTAL_BITS) * free) >> PROB_BITS
            out[r, j] = scaled - previous + 1
            previous = scaled
        out[r, n_edges] = free - previous + 1
    return out


_logistic_parallel = numba.njit(cache=True, parallel=True, nogil=True)(_logistic_frequencies)
_logistic_serial = numba.njit(cache=True, nogil=True)(_logistic_frequencies)  # few rows: no thread start-up


def logistic_frequencies(weights: np.ndarray, means: np.ndarray, inv_scales: np.ndarray, edges: np.ndarray,
                         sigmoid: np.ndarray, shift: int, offset: int) -> np.ndarray:
    """(rows, 256) integer frequency tables of discretised logistic mixtures (rows, K)."""
    kernel = _logistic_parallel if len(weights) >= 256 else _logistic_serial
    return kernel(weights, means, inv_scales, edges, sigmoid, shift, offset)


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
