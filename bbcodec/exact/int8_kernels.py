"""Compiled integer kernels of the narrow pixel network (:mod:`bbcodec.exact.narrow`).

Each kernel finishes one int8 matrix product: it adds the bias to the int32
accumulator, requantises by an integer multiplier and a rounding right shift
(``(v · m + 2^(s−1)) >> s``, gemmlowp's scheme, exact in int64), saturates to the
int16 residual grid and reads the next layer's int8 input codes from a stored
65,536-entry table (the SiLU). Integer arithmetic only, the same result
on every CPU; :func:`requantise_reference` is the definition in torch ops. Rows are
split across threads (each output element is computed by one thread, so the thread
count changes nothing); each kernel exists in this one threaded build only, so
numba's on-disk cache holds one entry per function.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from bbcodec.exact.kernels import (
    STEP_PARALLEL_ROWS,
    _logistic_parameters_row,
    _logistic_row,
    ans_advance,
    ans_quantile,
    logistic_value_at,
    logistic_value_interval,
    window_origin,
)

# The 16-bit grid of values and codes: int16, up to 127·256 + 127 so that every value
# splits into two signed int8 digits (high = (q + 128) >> 8, low = q − 256·high).
H_MIN, H_MAX = -(1 << 15), 127 * 256 + 127
NO_RESIDUAL = np.zeros((0, 0), dtype=np.int16)  # "no residual" for the kernels that take one


@numba.njit(cache=True, inline="always")
def _rq(acc: int, bias: int, mult: int, shift: int) -> int:  # pragma: no cover - compiled
    return ((np.int64(acc) + bias) * mult + (np.int64(1) << (shift - 1))) >> shift


@numba.njit(cache=True, inline="always")
def _h16(v: int) -> int:  # pragma: no cover - compiled
    return min(max(v, H_MIN), H_MAX)


@numba.njit(cache=True, inline="always")
def _acc(acc: np.ndarray, r: int, c: int, rows: int, limbs: int, cols: int,
         weight_limbs: int) -> int:  # pragma: no cover - compiled
    """Element (r, c) of a product whose inputs were split into ``limbs`` int8 digits
    (base 256, stacked by rows, high first: 1 or 2) and whose weights into
    ``weight_limbs`` digits (base 64, side by side in columns, high first: 1 or 2)."""
    if limbs == 1:
        v = np.int64(acc[r, c])
        if weight_limbs == 2:
            v = (v << 6) + acc[r, cols + c]
        return v
    v = (np.int64(acc[r, c]) << 8) + acc[rows + r, c]
    if weight_limbs == 2:
        v = (v << 6) + (np.int64(acc[r, cols + c]) << 8) + acc[rows + r, cols + c]
    return v


@numba.njit(cache=True, inline="always")
def _split(out: np.ndarray, r: int, c: int, rows: int, code: int) -> None:  # pragma: no cover - compiled
    """Write int16 ``code`` as two int8 digits (high, low) into rows ``r`` and ``rows + r``."""
    high = (code + 128) >> 8
    out[r, c] = high
    out[rows + r, c] = code - (high << 8)


@numba.njit(cache=True, inline="always")
def _put(out: np.ndarray, r: int, c: int, rows: int, limbs: int, code: int) -> None:  # pragma: no cover - compiled
    """Write ``code`` as ``limbs`` int8 digits: itself (an 8-bit code) or :func:`_split`'s two."""
    if limbs == 1:
        out[r, c] = code
    else:
        _split(out, r, c, rows, code)


@numba.njit(cache=True, nogil=True, parallel=True)
def window_codes_into(acc: np.ndarray, flag: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray,
                      cond: np.ndarray, table: np.ndarray, out_limbs: int, h: np.ndarray,
                      digits: np.ndarray) -> None:  # pragma: no cover - compiled
    """``h = sat(rq(acc + flag) + cond)`` (the window product plus its conditioning) and the
    ``out_limbs`` digits of ``table[h]`` (an 8-bit code: 1; an int16 code: 2), into ``h``
    and ``digits``. ``flag`` holds digit sums every row shares, added to each row's
    (the inside-image flags' part of the window, the same for every image of a step)."""
    rows, cols = acc.shape[0], bias.shape[0]
    wl = acc.shape[1] // cols
    for r in numba.prange(rows):
        for c in range(cols):
            v = np.int64(acc[r, c]) + flag[c]
            if wl == 2:
                v = (v << 6) + acc[r, cols + c] + flag[cols + c]
            v = _h16(_rq(v, bias[c], mult[c], shift[c]) + cond[r, c])
            h[r, c] = v
            _put(digits, r, c, rows, out_limbs, table[v - H_MIN])


def window_codes(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, cond: np.ndarray,
                 table: np.ndarray, out_limbs: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_codes_into` with no shared flag sums, into new arrays."""
    rows, cols = acc.shape[0], bias.shape[0]
    h = np.empty((rows, cols), dtype=np.int16)
    digits = np.empty((out_limbs * rows, cols), dtype=np.int8)
    window_codes_into(acc, np.zeros(acc.shape[1], dtype=np.int32), bias, mult, shift, cond, table, out_limbs, h,
                      digits)
    return h, digits


# A residual branch's two kernels are separate functions, not one with a "has a
# residual" flag: with the flag in its loop the end of a branch ran about nine times
# slower (measured: 512 rows × 192 channels, 254 µs against 38 µs for the inner kernel).
@numba.njit(cache=True, nogil=True, parallel=True)
def inner_codes_into(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, table: np.ndarray,
                     in_limbs: int, out_limbs: int, digits: np.ndarray) -> None:  # pragma: no cover - compiled
    """Digits of ``table[v]`` for a residual branch's inner activation ``v = sat(rq(acc))``,
    into ``digits``. The product read codes of ``in_limbs`` digits; the result has ``out_limbs``."""
    rows, cols = acc.shape[0] // in_limbs, bias.shape[0]
    wl = acc.shape[1] // cols
    for r in numba.prange(rows):
        for c in range(cols):
            v = _h16(_rq(_acc(acc, r, c, rows, in_limbs, cols, wl), bias[c], mult[c], shift[c]))
            _put(digits, r, c, rows, out_limbs, table[v - H_MIN])


def inner_codes(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, table: np.ndarray,
                in_limbs: int, out_limbs: int) -> np.ndarray:
    """:func:`inner_codes_into` into a new array."""
    digits = np.empty((out_limbs * (acc.shape[0] // in_limbs), bias.shape[0]), dtype=np.int8)
    inner_codes_into(acc, bias, mult, shift, table, in_limbs, out_limbs, digits)
    return digits


@numba.njit(cache=True, nogil=True, parallel=True)
def end_codes_into(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, h: np.ndarray,
                   table: np.ndarray, in_limbs: int, out_limbs: int,
                   digits: np.ndarray) -> None:  # pragma: no cover - compiled
    """Digits of ``table[v]`` at a residual branch's end ``v = sat(h + rq(acc))``, into
    ``digits``, with ``v`` written back into the residual stream ``h``."""
    rows, cols = acc.shape[0] // in_limbs, bias.shape[0]
    wl = acc.shape[1] // cols
    for r in numba.prange(rows):
        for c in range(cols):
            v = _h16(h[r, c] + _rq(_acc(acc, r, c, rows, in_limbs, cols, wl), bias[c], mult[c], shift[c]))
            h[r, c] = v
            _put(digits, r, c, rows, out_limbs, table[v - H_MIN])


def end_codes(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, h: np.ndarray,
              table: np.ndarray, in_limbs: int, out_limbs: int) -> np.ndarray:
    """:func:`end_codes_into` into a new array."""
    digits = np.empty((out_limbs * (acc.shape[0] // in_limbs), bias.shape[0]), dtype=np.int8)
    end_codes_into(acc, bias, mult, shift, h, table, in_limbs, out_limbs, digits)
    return digits


@numba.njit(cache=True, nogil=True, parallel=True)
def requant_clamped(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int,
                    out: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``out = clamp(rq(acc), ±limit)`` of a product over digit rows, no int16 saturation:
    distribution parameters (float64 ``out``) or conditioning (int32 ``out``)."""
    rows, cols = acc.shape[0] // 2, bias.shape[0]
    wl = acc.shape[1] // cols
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = min(max(_rq(_acc(acc, r, c, rows, 2, cols, wl), bias[c], mult[c], shift[c]), -limit), limit)
    return out


@numba.njit(cache=True, inline="always")
def _head_mixture_row(acc: np.ndarray, r: int, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int,
                      k: int, params: np.ndarray, weights: np.ndarray, means: np.ndarray, inv: np.ndarray,
                      exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int, exp_offset: int,
                      mean_limit: int, log_scale_floor: int) -> None:  # pragma: no cover - compiled
    """Row ``r``'s logistic mixture (``weights``, ``means``, ``inv``) from the head's digit
    sums: its parameters as :func:`requant_clamped` gives them, the mixture as
    :func:`bbcodec.exact.kernels.logistic_parameters` makes it."""
    rows, cols = acc.shape[0] // 2, bias.shape[0]
    wl = acc.shape[1] // cols
    for c in range(cols):
        params[r, c] = min(max(_rq(_acc(acc, r, c, rows, 2, cols, wl), bias[c], mult[c], shift[c]), -limit), limit)
    _logistic_parameters_row(params, r, k, weights, means, inv, exp_neg, exp_neg_shift, exp_table, exp_shift,
                             exp_offset, mean_limit, log_scale_floor)


@numba.njit(cache=True, inline="always")
def _head_tables_row(acc: np.ndarray, r: int, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int,
                     k: int, params: np.ndarray, weights: np.ndarray, means: np.ndarray, inv: np.ndarray,
                     exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int, exp_offset: int,
                     mean_limit: int, log_scale_floor: int, edges: np.ndarray, sigmoid: np.ndarray, sigmoid_shift: int,
                     sigmoid_offset: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Row ``r`` of :func:`head_logistic_tables`: its mixture, then its table as
    :func:`bbcodec.exact.kernels.logistic_frequencies` makes it."""
    _head_mixture_row(acc, r, bias, mult, shift, limit, k, params, weights, means, inv, exp_neg, exp_neg_shift,
                      exp_table, exp_shift, exp_offset, mean_limit, log_scale_floor)
    _logistic_row(out, r, weights, means, inv, edges, sigmoid, sigmoid_shift, sigmoid_offset)


@numba.njit(cache=True, nogil=True, parallel=True)
def _head_tables_parallel(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                          exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int,
                          exp_offset: int, mean_limit: int, log_scale_floor: int, edges: np.ndarray,
                          sigmoid: np.ndarray, sigmoid_shift: int,
                          sigmoid_offset: int) -> np.ndarray:  # pragma: no cover - compiled
    rows = acc.shape[0] // 2
    params = np.empty((rows, bias.shape[0]), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    means = np.empty((rows, k), dtype=np.int64)
    inv = np.empty((rows, k), dtype=np.int64)
    out = np.empty((rows, edges.shape[0] + 1), dtype=np.int64)
    for r in numba.prange(rows):
        _head_tables_row(acc, r, bias, mult, shift, limit, k, params, weights, means, inv, exp_neg, exp_neg_shift,
                         exp_table, exp_shift, exp_offset, mean_limit, log_scale_floor, edges, sigmoid,
                         sigmoid_shift, sigmoid_offset, out)
    return out


@numba.njit(cache=True, nogil=True)
def _head_tables_serial(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                        exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int,
                        exp_offset: int, mean_limit: int, log_scale_floor: int, edges: np.ndarray,
                        sigmoid: np.ndarray, sigmoid_shift: int,
                        sigmoid_offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """Few rows: no thread start-up (a separate function: see kernels._logistic_serial)."""
    rows = acc.shape[0] // 2
    params = np.empty((rows, bias.shape[0]), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    means = np.empty((rows, k), dtype=np.int64)
    inv = np.empty((rows, k), dtype=np.int64)
    out = np.empty((rows, edges.shape[0] + 1), dtype=np.int64)
    for r in range(rows):
        _head_tables_row(acc, r, bias, mult, shift, limit, k, params, weights, means, inv, exp_neg, exp_neg_shift,
                         exp_table, exp_shift, exp_offset, mean_limit, log_scale_floor, edges, sigmoid,
                         sigmoid_shift, sigmoid_offset, out)
    return out


def head_logistic_tables(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                         logistic_tables: tuple) -> np.ndarray:
    """(rows, 256) frequency tables of the pixel head's logistic mixtures straight from its
    int32 digit sums (``acc``, as :func:`requant_clamped` takes them): one pass per row
    instead of four kernels and their tensors, the same integers (a decoding step is short).
    ``logistic_tables`` is :func:`bbcodec.exact.distributions.logistic_kernel_tables`."""
    kernel = _head_tables_parallel if acc.shape[0] // 2 >= STEP_PARALLEL_ROWS else _head_tables_serial
    return kernel(acc, bias, mult, shift, limit, k, *logistic_tables)


@numba.njit(cache=True, nogil=True, parallel=True)
def _head_mixtures(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                   exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int, exp_offset: int,
                   mean_limit: int, log_scale_floor: int) -> tuple:  # pragma: no cover - compiled
    """Every row's logistic mixture (weights, means, inverse scales), rows across threads."""
    rows = acc.shape[0] // 2
    params = np.empty((rows, bias.shape[0]), dtype=np.int64)
    weights = np.empty((rows, k), dtype=np.int64)
    means = np.empty((rows, k), dtype=np.int64)
    inv = np.empty((rows, k), dtype=np.int64)
    for r in numba.prange(rows):
        _head_mixture_row(acc, r, bias, mult, shift, limit, k, params, weights, means, inv, exp_neg, exp_neg_shift,
                          exp_table, exp_shift, exp_offset, mean_limit, log_scale_floor)
    return weights, means, inv


@numba.njit(cache=True, nogil=True, parallel=True)
def head_logistic_draws(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                        uniforms: np.ndarray, exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray,
                        exp_shift: int, exp_offset: int, mean_limit: int, log_scale_floor: int, edges: np.ndarray,
                        sigmoid: np.ndarray, sigmoid_shift: int,
                        sigmoid_offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """Each row's inverse-CDF draw at its 24-bit ``uniforms`` from the pixel head's logistic
    mixture, without its table (:func:`bbcodec.exact.random.sample` of
    :func:`head_logistic_tables` is the same)."""
    weights, means, inv = _head_mixtures(acc, bias, mult, shift, limit, k, exp_neg, exp_neg_shift, exp_table,
                                         exp_shift, exp_offset, mean_limit, log_scale_floor)
    out = np.empty(weights.shape[0], dtype=np.uint8)
    for r in numba.prange(weights.shape[0]):
        out[r] = logistic_value_at(r, uniforms[r], weights, means, inv, edges, sigmoid, sigmoid_shift, sigmoid_offset)
    return out


@numba.njit(cache=True, inline="always")
def pop_mixture_rows(head: np.ndarray, words: np.ndarray, weights: np.ndarray, means: np.ndarray, inv: np.ndarray,
                     edges: np.ndarray, sigmoid: np.ndarray, sigmoid_shift: int, sigmoid_offset: int,
                     out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Pop each row's value into ``out``, first row first, under its logistic mixture from
    the coder (``head``, ``words``): each pop needs the state the one before left."""
    for r in range(weights.shape[0]):
        quantile = ans_quantile(head)
        value, start, freq = logistic_value_interval(r, quantile, weights, means, inv, edges, sigmoid, sigmoid_shift,
                                                     sigmoid_offset)
        ans_advance(head, words, start, freq, quantile)
        out[r] = value


@numba.njit(cache=True, nogil=True)
def head_logistic_pop(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
                      head: np.ndarray, words: np.ndarray, exp_neg: np.ndarray, exp_neg_shift: int,
                      exp_table: np.ndarray, exp_shift: int, exp_offset: int, mean_limit: int, log_scale_floor: int,
                      edges: np.ndarray, sigmoid: np.ndarray, sigmoid_shift: int,
                      sigmoid_offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """Pop each row's pixel, first row first, from the ANS coder's ``head`` and ``words``
    (:class:`bbcodec.ans.RawHead`) under the pixel head's logistic mixture, without its
    table: the value whose interval holds the state's quantile (bisection over the table's
    edges), then that interval's state update. The same symbols and coder state as
    constriction's pop with :func:`head_logistic_tables`' tables, in ten CDF evaluations
    a row instead of 256 and a table; the rows' mixtures are computed across threads,
    the pops (each needs the state the one before left) on one."""
    weights, means, inv = _head_mixtures(acc, bias, mult, shift, limit, k, exp_neg, exp_neg_shift, exp_table,
                                         exp_shift, exp_offset, mean_limit, log_scale_floor)
    out = np.empty(weights.shape[0], dtype=np.uint8)
    pop_mixture_rows(head, words, weights, means, inv, edges, sigmoid, sigmoid_shift, sigmoid_offset, out)
    return out


def requantise_reference(acc: torch.Tensor, bias: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The definition of the kernels' ``rq`` in torch ops (int64)."""
    v = (acc.to(torch.int64) + bias.to(torch.int64)) * mult.to(torch.int64)
    return (v + (torch.ones_like(shift, dtype=torch.int64) << (shift.to(torch.int64) - 1))) >> shift.to(torch.int64)


@numba.njit(cache=True, nogil=True, parallel=True)
def im2col_digits(padded: np.ndarray, k: int, stride: int, h_out: int,
                  w_out: int) -> np.ndarray:  # pragma: no cover - compiled
    """The ``k × k`` windows of channels-last int16 codes (N, Hp, Wp, C) as int8 digit
    rows for one product: (2·M, k·k·C), high digits of the M windows first, then low."""
    n, _, _, c = padded.shape
    m = n * h_out * w_out
    out = np.empty((2 * m, k * k * c), dtype=np.int8)
    for row in numba.prange(m):
        img, top, left = window_origin(row, h_out, w_out, stride)
        for di in range(k):
            for dj in range(k):
                base = (di * k + dj) * c
                for ch in range(c):
                    _split(out, row, base + ch, m, np.int64(padded[img, top + di, left + dj, ch]))
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def requant_values(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray,
                   residual: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """int16 ``table[sat(residual + rq(acc))]`` of a product over digit rows (acc (2·M, ·)).
    ``residual`` (M, C) or (0, 0) for none; ``table`` (65,536,) or (0,) for the identity."""
    rows, cols = acc.shape[0] // 2, bias.shape[0]
    wl = acc.shape[1] // cols
    add = residual.shape[0] > 0
    look = table.shape[0] > 0
    out = np.empty((rows, cols), dtype=np.int16)
    for r in numba.prange(rows):
        for c in range(cols):
            v = _rq(_acc(acc, r, c, rows, 2, cols, wl), bias[c], mult[c], shift[c])
            if add:
                v += residual[r, c]
            v = _h16(v)
            out[r, c] = table[v - H_MIN] if look else v
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def lookup16(values: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """int16 ``table[values]`` elementwise (a SiLU on codes)."""
    flat = values.ravel()
    out = np.empty_like(flat)
    for i in numba.prange(flat.shape[0]):
        out[i] = table[flat[i] - H_MIN]
    return out.reshape(values.shape)


@numba.njit(cache=True, nogil=True, parallel=True)
def split_digits(codes: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """int16 ``codes`` (A, B, C), any strides, as int8 digit rows of one product into ``out``
    (2·A·B, C): row ``a·B + b`` high digits, then every low one (:func:`_split`)."""
    a_len, b_len, c_len = codes.shape
    rows = a_len * b_len
    for a in numba.prange(a_len):
        for b in range(b_len):
            for c in range(c_len):
                _split(out, a * b_len + b, c, rows, np.int64(codes[a, b, c]))


@numba.njit(cache=True, nogil=True, parallel=True)
def position_major(values: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(N, C, H, W) -> (H·W, N, C), images across threads: a decoding step reads one
    position of every image (torch's strided permute of a group's conditioning took
    longer than a fifth of a lossy group's draws)."""
    n, c, h, w = values.shape
    flat = values.reshape(n, c, h * w)
    out = np.empty((h * w, n, c), dtype=values.dtype)
    for img in numba.prange(n):
        for p0 in range(0, h * w, 16):  # a tile of positions: its reads stay in cache, its writes run along C
            for p in range(p0, min(p0 + 16, h * w)):
                for ch in range(c):
                    out[p, img, ch] = flat[img, ch, p]
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def window_rows(pixels: np.ndarray, lo: int, hi: int, h: int, w: int, rows: int, cols: int,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Rows ``lo … hi−1`` (image-major: image, then raster position) of every pixel's
    ``rows × cols`` window of the padded code planes ``pixels`` (N, H + pad, W + 2·pad), into
    ``out[: hi − lo]``: the teacher-forced window product's input, a block at a time."""
    for r in numba.prange(hi - lo):
        img, pos = divmod(lo + r, h * w)
        i, j = divmod(pos, w)
        for di in range(rows):
            for dj in range(cols):
                out[r, di * cols + dj] = pixels[img, i + di, j + dj]


@numba.njit(cache=True, nogil=True)
def add_position_rows(sums: np.ndarray, per_position: np.ndarray, lo: int) -> None:  # pragma: no cover - compiled
    """``sums[r] += per_position[(lo + r) mod P]`` (int32 digit sums, P positions): a part of a
    product that every image shares at a position, added to image-major rows from ``lo``."""
    positions = per_position.shape[0]
    for r in range(sums.shape[0]):
        p = (lo + r) % positions
        for c in range(sums.shape[1]):
            sums[r, c] += per_position[p, c]
