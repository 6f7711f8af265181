"""int8-digit convolutions and the VLAE's conditioning network on them.

The conditioning network turns a group's latents into the feature map every pixel
step reads; in float64 its full-resolution convolutions cost about a third of
decoding. Here it runs on the narrow form of :mod:`bbcodec.exact.narrow`: values are
int16 on power-of-two grids (channels last), every convolution reads int16 codes as
two int8 digits (im2col by a compiled kernel) in one ``torch._int_mm``, and its
output lands directly on the pixel net's residual grid. Its last layer, a 1×1
convolution, runs where the pixel net reads the rows (:class:`CondCodes`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from bbcodec.exact import int8_kernels as k8
from bbcodec.exact.fixed import FRAC
from bbcodec.exact.narrow import TABLE_SIZE, NarrowLinear

NO_TABLE = np.zeros(0, dtype=np.int16)
COND_LIMIT = 1 << 20  # |conditioning| on the pixel net's grid (it is added to an int16 sum and saturated)
IMAGES_PER_PASS = 64  # images the conditioning network runs at once (see NarrowConditioning.forward)


class NarrowConv2d(nn.Module):
    """A ``k × k`` convolution (padding ``k // 2``) over channels-last int16 codes."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, weight_limbs: int = 2) -> None:
        super().__init__()
        self.k, self.stride = k, stride
        self.linear = NarrowLinear(c_in * k * k, c_out, weight_limbs)
        self.register_buffer("pad_code", torch.zeros((), dtype=torch.int64))  # the code of value 0

    @classmethod
    def of(cls, conv: nn.Conv2d, codes, out_step: float, weight_limbs: int) -> NarrowConv2d:
        out = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], weight_limbs)
        weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # (out, k·k·in)
        out.linear = NarrowLinear.quantise(weight, conv.bias, codes, out_step, weight_limbs)
        out.pad_code.fill_(codes.zero)
        return out

    def accumulate(self, codes: torch.Tensor) -> tuple[np.ndarray, tuple[int, int, int]]:
        """int32 sums over digit rows of int16 ``codes`` (N, H, W, C), and the output's (N, H', W')."""
        n, h, w, c = codes.shape
        p = self.k // 2
        padded = torch.full((n, h + 2 * p, w + 2 * p, c), int(self.pad_code), dtype=torch.int16)
        padded[:, p : p + h, p : p + w] = codes
        h_out, w_out = (h + 2 * p - self.k) // self.stride + 1, (w + 2 * p - self.k) // self.stride + 1
        digits = k8.im2col_digits(padded.numpy(), self.k, self.stride, h_out, w_out)
        return self.linear.accumulate(torch.from_numpy(digits)).numpy(), (n, h_out, w_out)

    def values(self, codes: torch.Tensor, residual: torch.Tensor | None = None,
               table: torch.Tensor | None = None) -> torch.Tensor:
        """int16 ``table[sat(residual + conv(codes))]`` (N, H', W', C_out); no table: the values."""
        acc, (n, h, w) = self.accumulate(codes)
        res = k8.NO_RESIDUAL if residual is None else residual.reshape(n * h * w, -1).numpy()
        out = k8.requant_values(acc, *self.linear.kernel_args(), res, NO_TABLE if table is None else table.numpy())
        return torch.from_numpy(out).view(n, h, w, -1)


    def values_reference(self, codes: torch.Tensor, residual: torch.Tensor | None = None,
                         table: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`values` in int64 torch ops (no digits, no compiled kernel): its definition."""
        n, h, w, c = codes.shape
        p = self.k // 2
        padded = torch.full((n, h + 2 * p, w + 2 * p, c), int(self.pad_code), dtype=torch.int64)
        padded[:, p : p + h, p : p + w] = codes
        windows = padded.unfold(1, self.k, self.stride).unfold(2, self.k, self.stride)  # n, h', w', c, k, k
        h_out, w_out = windows.shape[1:3]
        rows = windows.permute(0, 1, 2, 4, 5, 3).reshape(n * h_out * w_out, -1)
        layer = self.linear
        digits = layer.weight.to(torch.int64).view(layer.weight.shape[0], -1, len(layer.bias))
        weight = digits[:, 0] if digits.shape[1] == 1 else digits[:, 0] * 64 + digits[:, 1]
        v = k8.requantise_reference(rows @ weight, layer.bias, layer.mult, layer.shift)
        if residual is not None:
            v = v + residual.reshape(len(v), -1).to(torch.int64)
        v = v.clamp(k8.H_MIN, k8.H_MAX)
        if table is not None:
            v = table.to(torch.int64)[v - k8.H_MIN]
        return v.to(torch.int16).view(n, h_out, w_out, -1)


class NarrowResBlock(nn.Module):
    """``x + conv2(silu(conv1(silu(x))))`` with int16 values and SiLU tables."""

    def __init__(self, width: int, weight_limbs: int = 2) -> None:
        super().__init__()
        self.conv1 = NarrowConv2d(width, width, 3, 1, weight_limbs)
        self.conv2 = NarrowConv2d(width, width, 3, 1, weight_limbs)
        self.register_buffer("tables", torch.zeros(2, TABLE_SIZE, dtype=torch.int16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.conv1.values(torch.from_numpy(k8.lookup16(x.numpy(), self.tables[0].numpy())),
                                  table=self.tables[1])
        return self.conv2.values(inner, residual=x)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 of channels-last (N, H, W, C)."""
    n, h, w, c = x.shape
    return x[:, :, None, :, None, :].expand(n, h, 2, w, 2, c).reshape(n, 2 * h, 2 * w, c)


class NarrowConditioning(nn.Module):
    """The VLAE's ``cond_low → ×2 → cond_mid → ×2 → silu → cond_high`` on int8 digits.

    Input: ``from_latent(z)`` (N, width, side, side) on the activation grid (the wide
    linear layer before it is tiny); output: :class:`CondCodes`, which give int32 rows
    on the pixel net's residual grid as :class:`~bbcodec.exact.narrow.NarrowPixelNet` reads them."""

    def __init__(self, width: int, hidden: int, weight_limbs: int = 2) -> None:
        super().__init__()
        self.low = NarrowResBlock(width, weight_limbs)
        self.mid_conv = NarrowConv2d(width, width, 3, 1, weight_limbs)
        self.mid_res = NarrowResBlock(width, weight_limbs)
        self.high = NarrowConv2d(width, hidden, 1, 1, weight_limbs)
        self.register_buffer("in_frac", torch.zeros((), dtype=torch.int64))
        self.register_buffer("high_table", torch.zeros(TABLE_SIZE, dtype=torch.int16))

    def forward(self, h0: torch.Tensor) -> CondCodes:
        """A few images at a time: every operation is per image, and a pass over a whole
        group's full-resolution rows runs its int8 products out of cache."""
        parts = [self._images(h0[lo : lo + IMAGES_PER_PASS]) for lo in range(0, len(h0), IMAGES_PER_PASS)]
        return CondCodes(parts[0] if len(parts) == 1 else np.concatenate(parts), self.high.linear)

    def _images(self, h0: torch.Tensor) -> np.ndarray:
        """The codes (N, H, W, C) int16 the last layer reads."""
        x = torch.round(h0 * math.ldexp(1.0, int(self.in_frac) - FRAC)).clamp(k8.H_MIN, k8.H_MAX)
        x = self.low(x.to(torch.int16).permute(0, 2, 3, 1).contiguous())
        x = self.mid_res(self.mid_conv.values(upsample2(x)))
        return k8.lookup16(upsample2(x).contiguous().numpy(), self.high_table.numpy())


class CondCodes:
    """The conditioning as the codes (N, H, W, C) its last layer, a 1×1 convolution, reads:
    the pixel net applies that layer to the rows it needs, a block at a time.

    Why: finished, the conditioning is ``hidden`` int32 numbers per pixel (the default
    model: 600 kB an image, 300 MB a group), and writing it whole, then laying it out
    in the order the steps read it, cost more than computing it. A block of rows stays
    in cache, and the integers are the same: a row's sums are its own, whichever rows
    share its product.
    """

    def __init__(self, codes: np.ndarray, layer: NarrowLinear, copies: int = 1) -> None:
        self.codes, self.layer, self.copies = codes, layer, copies
        self.hidden = len(layer.bias)
        self.steps = codes.shape[1] * codes.shape[2]  # positions per image

    def __len__(self) -> int:
        return self.codes.shape[0] * self.copies

    def __getitem__(self, images: slice) -> CondCodes:
        """The conditioning of a slice of the images."""
        codes = np.tile(self.codes, (self.copies, 1, 1, 1)) if self.copies > 1 else self.codes
        return CondCodes(codes[images], self.layer)

    def repeated(self, copies: int) -> CondCodes:
        """The conditioning of ``copies`` copies of the images (image ``s·N + n`` is image ``n``).
        The last layer still runs once per image: its rows are repeated, not its input (a
        lossy decoder's draws of one image share its conditioning)."""
        return CondCodes(self.codes, self.layer, self.copies * copies)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """int32 (hi − lo, hidden): rows ``lo:hi`` in image-major order (image, row, column)."""
        flat = self.codes.reshape(1, -1, self.codes.shape[-1])
        if self.copies == 1:
            return self._finish(flat[:, lo:hi])
        return self._finish(flat[:, np.arange(lo, hi) % flat.shape[1]])

    def positions(self, lo: int, hi: int) -> np.ndarray:
        """int32 (hi − lo, N, hidden): positions ``lo:hi`` (raster order) of every image."""
        n, h, w, c = self.codes.shape
        once = self._finish(self.codes.reshape(n, h * w, c)[:, lo:hi].transpose(1, 0, 2)).reshape(hi - lo, n, -1)
        return once if self.copies == 1 else np.tile(once, (1, self.copies, 1))

    def dense(self) -> torch.Tensor:
        """int32 (N, hidden, H, W): all of it at once (tests, and nets without blocks)."""
        _, h, w, _ = self.codes.shape
        return torch.from_numpy(self.rows(0, len(self) * h * w)).view(len(self), h, w, -1).permute(0, 3, 1, 2)

    def _finish(self, codes: np.ndarray) -> np.ndarray:
        """The last layer on (A, B, C) codes: (A·B, hidden) int32, clamped to ±COND_LIMIT."""
        m = codes.shape[0] * codes.shape[1]
        digits = np.empty((2 * m, codes.shape[2]), dtype=np.int8)
        k8.split_digits(codes, digits)
        acc = self.layer.accumulate(torch.from_numpy(digits)).numpy()
        return k8.requant_clamped(acc, *self.layer.kernel_args(), COND_LIMIT,
                                  np.empty((m, self.hidden), dtype=np.int32))
