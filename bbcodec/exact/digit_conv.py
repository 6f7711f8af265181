"""Convolutions of the wide integer form run on int8 digits.

Why: a hierarchical VAE's integer form (:mod:`bbcodec.exact.hvae`) carries its
activations as float64 whole numbers on the ``2^-FRAC`` grid and convolves them with
float64 products, which were most of its coding time. :class:`DigitConv2d` keeps
that interface (float64 grid values in, float64 grid values out), so the model's
structure, its latent and pixel arithmetic stay as they are, and changes only how
the sum is formed:

* the input is requantised onto a coarser power-of-two grid ``2^-in_frac`` chosen
  at export from calibration images (int16 codes, rounding half up, saturating:
  integer shifts, the same on every CPU);
* the codes are split into two int8 digits and convolved with 13-bit (two digit) or
  7-bit (one digit) weights in one ``torch._int_mm`` per block of rows
  (:class:`~bbcodec.exact.narrow.NarrowLinear`, whose load-time check proves every
  int32 sum exact);
* the sum is requantised by an integer multiplier and a rounding shift back onto
  the ``2^-FRAC`` grid, saturated to ``±ACT_LIMIT``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numba
import numpy as np
import torch
from torch import nn

from bbcodec.exact import int8_kernels as k8
from bbcodec.exact.fixed import ACT_LIMIT, FRAC
from bbcodec.exact.layers import SILU_OFFSET, IConv2d, silu_table
from bbcodec.exact.kernels import window_origin
from bbcodec.exact.narrow import Codes, NarrowLinear

ROWS_PER_BLOCK = 4096  # output rows per int8 product (whole images): fewer, longer kernel calls
NO_SILU = np.zeros(0, dtype=np.int64)
MIN_FAN_IN = 64  # narrower convolutions (the stem, a latent's 1×1 input) cost little and stay float64
PIXEL_HEAD = "out"  # the convolution that writes the pixel distributions' parameters

# A hierarchical VAE's digit forms by name: int8 weight digits of each convolution, given
# its name in the model. 7-bit weights halve the products' work. In ``mnist``'s
# validation digits 7-bit weights in the pixel head alone cost +0.24%, in any other one
# layer at most +0.012% (``python -m training.choose_form mnist --layers``,
# bench/results/layer_limbs_mnist.json), so "int8-w7-out13" keeps 13 bits there only.
DIGIT_FORMS: dict[str, Callable[[str], int]] = {
    "int8-w13": lambda _: 2,
    "int8-w7": lambda _: 1,
    "int8-w7-out13": lambda name: 2 if name == PIXEL_HEAD else 1,
}


@numba.njit(cache=True, inline="always")
def _silu_int(y: float, table: np.ndarray, offset: int) -> int:  # pragma: no cover - compiled
    """:func:`bbcodec.exact.kernels._silu` of a whole number ``y`` in int64 (``table`` as int64):
    ``floor(y / 4)`` is an arithmetic shift, and every sum is a whole number either way."""
    q = np.int64(y)
    return max(q, 0) + table[min(max((q >> 2) + offset, 0), table.shape[0] - 1)]


@numba.njit(cache=True, inline="always")
def _put_code(out: np.ndarray, i: int, r: int, col: int, ch: int, q: int, down: int, up: int,
              half: int) -> None:  # pragma: no cover - compiled
    v = min(max(((q + half) >> down) << up, k8.H_MIN), k8.H_MAX)
    high = (v + 128) >> 8
    out[0, i, r, col, ch] = high
    out[1, i, r, col, ch] = v - (high << 8)


@numba.njit(cache=True, inline="always")
def _pad_row(out: np.ndarray, i: int, r: int, pad: int, h: int, w: int) -> bool:  # pragma: no cover - compiled
    """Zero what padding row ``r`` of image ``i`` holds; True when the whole row is padding."""
    if r < pad or r >= h + pad:
        out[:, i, r] = 0
        return True
    out[:, i, r, :pad] = 0
    out[:, i, r, w + pad :] = 0
    return False


@numba.njit(cache=True, nogil=True, parallel=True)
def _digits(x: np.ndarray, down: int, up: int, pad: int, table: np.ndarray,
            offset: int) -> np.ndarray:  # pragma: no cover - compiled
    """The planes of ``x`` viewed as (N, H, W, C): a contiguous array (channels last) or
    the strided view of planes; numba compiles each layout on its own."""
    n, h, w, c = x.shape
    out = np.empty((2, n, h + 2 * pad, w + 2 * pad, c), dtype=np.int8)
    half = (np.int64(1) << (down - 1)) if down > 0 else np.int64(0)
    rows = h + 2 * pad
    for job in numba.prange(n * rows):  # one padded row of one image: parallel even for one image
        i, r = job // rows, job % rows
        if _pad_row(out, i, r, pad, h, w):
            continue
        for col in range(w):
            for ch in range(c):  # channels last: contiguous in and out (vectorised); planes: a few kB from L1
                y = x[i, r - pad, col, ch]
                q = _silu_int(y, table, offset) if table.shape[0] > 0 else np.int64(y)
                _put_code(out, i, r, col + pad, ch, q, down, up, half)
    return out


def grid_digits(x: np.ndarray, down: int, up: int, pad: int, silu_table: np.ndarray,
                silu_offset: int) -> np.ndarray:
    """The int8 digit planes (2, N, H+2p, W+2p, C), channels last and zero-padded by
    ``pad``, of the int16 codes of grid values ``x`` (N, C, H, W) float64 whole numbers
    (first through :func:`bbcodec.exact.layers.silu` when the int64 ``silu_table`` is not
    empty): code ``sat((q + 2^(down−1)) >> down)``, or ``sat(q << up)`` when the code grid
    is finer than the activation grid; planes ``high = (code + 128) >> 8``,
    ``low = code − 256·high``. ``x`` is read in its own memory order (channels last or planes)."""
    if not (x.flags.c_contiguous or x.transpose(0, 2, 3, 1).flags.c_contiguous):
        x = np.ascontiguousarray(x)
    return _digits(x.transpose(0, 2, 3, 1), down, up, pad, silu_table, silu_offset)


@lru_cache(maxsize=1)
def silu_table_int() -> np.ndarray:
    """The SiLU residual table as int64 (its entries are whole numbers on the activation grid)."""
    table = silu_table()
    out = table.astype(np.int64)
    assert np.array_equal(out, table), "the SiLU residual table holds whole numbers"
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def window_digits(planes: np.ndarray, first: int, count: int, k: int, stride: int, h_out: int,
                  w_out: int) -> np.ndarray:  # pragma: no cover - compiled
    """Rows for one int8 product over images ``first … first+count−1`` of ``planes``: the
    ``k × k`` windows (M of them) as (2·M, k·k·C), high-digit rows first, then low."""
    c = planes.shape[4]
    m = count * h_out * w_out
    out = np.empty((2 * m, k * k * c), dtype=np.int8)
    for row in numba.prange(m):
        img, top, left = window_origin(row, h_out, w_out, stride)
        for d in range(2):
            for di in range(k):
                for dj in range(k):
                    out[d * m + row, (di * k + dj) * c : (di * k + dj + 1) * c] = planes[d, first + img, top + di,
                                                                                         left + dj]
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def requant_rows(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int,
                 out: np.ndarray, first: int) -> None:  # pragma: no cover - compiled
    """``out[first + r, c] = clamp(rq(sum), ±limit)`` (float64 (rows, C)) from the int32 sums
    of digit rows ``acc`` (2·M, C) or, for 13-bit weights, (2·M, 2·C)."""
    rows, cols = acc.shape[0] // 2, bias.shape[0]
    two = acc.shape[1] == 2 * cols
    for r in numba.prange(rows):
        for c in range(cols):
            if two:
                v = ((np.int64(acc[r, c]) << 14) + (np.int64(acc[rows + r, c]) << 6)
                     + (np.int64(acc[r, cols + c]) << 8) + acc[rows + r, cols + c])
            else:
                v = (np.int64(acc[r, c]) << 8) + acc[rows + r, c]
            v = ((v + bias[c]) * mult[c] + (np.int64(1) << (shift[c] - 1))) >> shift[c]
            out[first + r, c] = min(max(v, -limit), limit)


def in_frac_for(largest: float, headroom: float) -> int:
    """The finest input grid ``2^-f`` on which int16 codes hold ``headroom ×`` the largest
    |value| seen in calibration (a value beyond it saturates)."""
    return int(math.floor(math.log2(k8.H_MAX / (headroom * max(largest, 1e-6)))))


class DigitConv2d(nn.Module):
    """A square-kernel :class:`~bbcodec.exact.layers.IConv2d` whose sums are int8 digit products."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0,
                 weight_limbs: int = 2) -> None:
        super().__init__()
        self.c_in, self.c_out, self.k, self.stride, self.padding = c_in, c_out, k, stride, padding
        self.linear = NarrowLinear(c_in * k * k, c_out, weight_limbs)
        self.register_buffer("in_frac", torch.zeros((), dtype=torch.int64))

    @classmethod
    def blank_like(cls, conv: IConv2d, weight_limbs: int) -> DigitConv2d:
        """An empty layer of ``conv``'s geometry (filled by ``load_state_dict``)."""
        c_out, c_in, k, _ = conv.weight.shape
        return cls(c_in, c_out, k, conv.stride, conv.padding[0], weight_limbs)

    @classmethod
    def of(cls, conv: IConv2d, in_frac: int, weight_limbs: int) -> DigitConv2d:
        """The digit form of ``conv``, reading its input on the grid ``2^-in_frac``. The
        weights start from ``conv``'s own (``w · 2^-shift`` is exact in float64), so the
        digit form approximates the wide integer form it replaces."""
        out = cls.blank_like(conv, weight_limbs)
        scale = torch.tensor([math.ldexp(1.0, -int(s)) for s in conv.shift.tolist()], dtype=torch.float64)
        weight = (conv.weight * scale.view(-1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(out.c_out, -1)
        bias = conv.bias * scale * math.ldexp(1.0, -FRAC)
        out.linear = NarrowLinear.quantise(weight, bias, Codes(math.ldexp(1.0, -in_frac)), math.ldexp(1.0, -FRAC),
                                           weight_limbs)
        out.in_frac.fill_(in_frac)
        return out

    def _shifts(self) -> tuple[int, int]:
        f = int(self.in_frac)
        return max(FRAC - f, 0), max(f - FRAC, 0)

    def _out_side(self, side: int) -> int:
        return (side + 2 * self.padding - self.k) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) grid values of any memory layout -> (N, C_out, H', W') grid values,
        stored channels last (what the next digit convolution reads fastest)."""
        return self._convolve(x, NO_SILU)

    def after_silu(self, x: torch.Tensor) -> torch.Tensor:
        """``self(silu(x))``, the SiLU applied as the input is read (no pass of its own)."""
        return self._convolve(x, silu_table_int())

    def _convolve(self, x: torch.Tensor, table: np.ndarray) -> torch.Tensor:
        n, _, h, w = x.shape
        planes = grid_digits(x.numpy(), *self._shifts(), self.padding, table, SILU_OFFSET)
        h_out, w_out = self._out_side(h), self._out_side(w)
        out = np.empty((n * h_out * w_out, self.c_out), dtype=np.float64)
        args = self.linear.kernel_args()
        per_block = max(1, ROWS_PER_BLOCK // (h_out * w_out))
        for lo in range(0, n, per_block):
            count = min(per_block, n - lo)
            rows = window_digits(planes, lo, count, self.k, self.stride, h_out, w_out)
            requant_rows(self.linear.accumulate(torch.from_numpy(rows)).numpy(), *args, ACT_LIMIT, out,
                         lo * h_out * w_out)
        return torch.from_numpy(out).view(n, h_out, w_out, self.c_out).permute(0, 3, 1, 2)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` in int64 torch ops (no digits, no compiled kernel): its definition."""
        down, up = self._shifts()
        q = x.to(torch.int64)
        q = (((q + ((1 << down) >> 1)) >> down) << up).clamp(k8.H_MIN, k8.H_MAX)
        p = self.padding
        q = torch.nn.functional.pad(q.permute(0, 2, 3, 1), (0, 0, p, p, p, p))
        windows = q.unfold(1, self.k, self.stride).unfold(2, self.k, self.stride)  # n, h', w', c, k, k
        n, h_out, w_out = windows.shape[:3]
        rows = windows.permute(0, 1, 2, 4, 5, 3).reshape(n * h_out * w_out, -1)
        layer = self.linear
        digits = layer.weight.to(torch.int64).view(layer.weight.shape[0], -1, self.c_out)
        weight = digits[:, 0] if digits.shape[1] == 1 else digits[:, 0] * 64 + digits[:, 1]
        v = k8.requantise_reference(rows @ weight, layer.bias, layer.mult, layer.shift).clamp(-ACT_LIMIT, ACT_LIMIT)
        return v.double().view(n, h_out, w_out, -1).permute(0, 3, 1, 2).contiguous()


def digit_convertible(conv: IConv2d) -> bool:
    """Whether ``conv`` takes the digit form: square kernel, equal padding, fan-in ≥ :data:`MIN_FAN_IN`."""
    c_out, c_in, kh, kw = conv.weight.shape
    return kh == kw and conv.padding[0] == conv.padding[1] and c_in * kh * kw >= MIN_FAN_IN


def replace_convs(model: nn.Module, make, where: Callable[[str], bool] = lambda _: True) -> None:  # noqa: ANN001
    """Swap every convertible :class:`IConv2d` of ``model`` whose name passes ``where`` for
    ``make(name, conv)`` (a :class:`DigitConv2d`), in place."""
    for name, conv in list(model.named_modules()):
        if isinstance(conv, IConv2d) and digit_convertible(conv) and where(name):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, make(name, conv))
