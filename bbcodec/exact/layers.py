"""Integer layers: the float architectures' building blocks in their exact coding form.

A layer holds integer weights ``w`` (at most :data:`~bbcodec.exact.fixed.WEIGHT_BITS`
bits) and one power-of-two scale ``2^-s_c`` per output channel, so the float weight
``W[c] ≈ w[c] · 2^-s_c``; the bias is an integer at the accumulator's scale
``2^-(FRAC + s_c)``. Forward: ``acc = bias + Σ w · a`` (exact in float64, proven at
load by :func:`~bbcodec.exact.fixed.check_accumulator_bound`), then
``round(acc · 2^-s_c)`` back onto the activation grid. Nothing here depends on the
order in which a kernel sums, on its instruction set, or on the thread count.

Nonlinearities read stored tables: ``silu(x) = relu(x) + r(x)`` and
``softplus(x) = relu(x) + r(x)`` with the residual ``r`` tabulated on [-16, 16)
(outside it ``r`` rounds to 0 on the activation grid).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.exact import kernels, tables
from bbcodec.exact.fixed import (
    ACT_LIMIT,
    FRAC,
    MAX_WEIGHT_SHIFT,
    ONE,
    WEIGHT_LIMIT,
    BoundError,
    check_accumulator_bound,
    saturate,
)

_TO_TABLE = 2.0 ** (tables.GRIDS["silu_residual"].step - FRAC)  # activation grid -> table grid (a power of two)
CONV_ROWS_PER_BLOCK = 1024  # im2col rows per product in IConv2d: float64 products run fastest at this size
POINTWISE_ROWS_PER_BLOCK = 1 << 15  # pixels per product of a 1x1 IConv2d (a few MB per block)
SILU_OFFSET = -(tables.GRIDS["silu_residual"].lo << tables.GRIDS["silu_residual"].step)
NO_TABLE = np.zeros(0, dtype=np.float64)  # "no SiLU" for the kernels that take one
assert _TO_TABLE == 0.25, "kernels.silu assumes the residual tables sample every 4th activation step"


def quantise_weight(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(integer weight, integer bias at accumulator scale, per-channel shift) of a float layer.

    The shift is the largest that keeps every weight of the channel within
    :data:`~bbcodec.exact.fixed.WEIGHT_LIMIT`: the channel's largest weight uses
    the full width (a power-of-two scale costs at most one bit of it).
    """
    w = weight.detach().double()
    largest = w.abs().flatten(1).amax(1)
    shift = torch.where(largest > 0, torch.floor(torch.log2(WEIGHT_LIMIT / largest.clamp(min=1e-30))),
                        torch.zeros_like(largest)).clamp(0, MAX_WEIGHT_SHIFT)
    view = (-1,) + (1,) * (w.ndim - 1)
    w_q = torch.round(w * torch.exp2(shift).view(view)).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
    b = torch.zeros(len(w), dtype=torch.float64) if bias is None else bias.detach().double()
    b_q = torch.round(b * torch.exp2(shift + FRAC))
    return w_q, b_q, shift


class _Quantised(nn.Module):
    """Integer weight, bias and per-channel shift as buffers (saved with the integer model)."""

    def __init__(self, weight_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(weight_shape, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(weight_shape[0], dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(weight_shape[0], dtype=torch.float64))
        self._scale: torch.Tensor | None = None

    def set_from_float(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        w_q, b_q, shift = quantise_weight(weight, bias)
        self.weight.copy_(w_q.view_as(self.weight))
        self.bias.copy_(b_q)
        self.shift.copy_(shift)
        self._scale = None

    def check(self, name: str) -> int:
        """Prove this layer exact (raises :class:`~bbcodec.exact.fixed.BoundError`)."""
        whole = all(bool((t == torch.round(t)).all()) for t in (self.weight, self.bias, self.shift))
        if not whole or bool((self.shift < 0).any()) or bool((self.shift > MAX_WEIGHT_SHIFT).any()):
            raise BoundError(f"{name}: weights, biases and shifts must be whole numbers in range")
        return check_accumulator_bound(name, self.weight, self.bias)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        """``bias + x · wᵀ`` for x (rows, fan-in), a convolution's weight flattened per
        output channel: exact integers in float64 (the bound is proven at load)."""
        return torch.addmm(self.bias, x, self.weight.view(len(self.weight), -1).t())

    def scale(self, ndim: int) -> torch.Tensor:
        """``2^-shift`` per channel, shaped to multiply the accumulator."""
        if self._scale is None:  # 2^-shift built exactly (math.ldexp), never by a libm exp2
            self._scale = torch.tensor([math.ldexp(1.0, -int(s)) for s in self.shift.tolist()], dtype=torch.float64)
        return self._scale.view(-1, 1, 1) if ndim == 4 else self._scale


class ILinear(_Quantised):
    """``nn.Linear`` on the activation grid (inputs (..., in), outputs (..., out))."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__((d_out, d_in))

    @classmethod
    def of(cls, layer: nn.Linear, weight: torch.Tensor | None = None) -> ILinear:
        """The integer form of ``layer`` (``weight`` overrides its weight, e.g. masked)."""
        out = cls(layer.in_features, layer.out_features)
        out.set_from_float(layer.weight if weight is None else weight, layer.bias)
        return out

    def part(self, outputs: torch.Tensor, inputs: torch.Tensor | None = None) -> ILinear:
        """The layer restricted to some ``outputs`` (indices) reading some ``inputs``: each
        output's integers are the whole layer's when the inputs left out carry zero weights."""
        ins = torch.arange(self.weight.shape[1]) if inputs is None else inputs
        out = ILinear(len(ins), len(outputs))
        out.weight.copy_(self.weight[outputs][:, ins])
        out.bias.copy_(self.bias[outputs])
        out.shift.copy_(self.shift[outputs])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = self.accumulate(x.reshape(-1, x.shape[-1]))  # requantised in one kernel: the same integers
        out = kernels.requant_rows(acc.numpy(), self.scale(2).numpy(), float(ACT_LIMIT))
        return torch.from_numpy(out).view(*x.shape[:-1], -1)


class IConv2d(_Quantised):
    """``nn.Conv2d`` on the activation grid (float64 convolution: no oneDNN, no Winograd)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], stride: int = 1,
                 padding: tuple[int, int] = (0, 0)) -> None:
        super().__init__((c_out, c_in, *kernel))
        self.stride, self.padding = stride, padding

    @classmethod
    def of(cls, layer: nn.Conv2d, weight: torch.Tensor | None = None) -> IConv2d:
        out = cls(layer.in_channels, layer.out_channels, tuple(layer.kernel_size), layer.stride[0],
                  tuple(layer.padding))
        out.set_from_float(layer.weight if weight is None else weight, layer.bias)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pointwise():
            return self._by_pixels(x)
        return self._by_rows(x)

    def after_silu(self, x: torch.Tensor) -> torch.Tensor:
        """``self(silu(x))``, the SiLU applied as the rows are gathered (the same integers).
        A layer with forward hooks (an export's calibration watching what it reads) is
        called on ``silu(x)``, so the hooks see that."""
        if self._forward_pre_hooks or self._forward_hooks:
            return self(silu(x))
        return self._by_pixels(x, activate=True) if self._pointwise() else self._by_rows(x, silu_table())

    def _pointwise(self) -> bool:
        return self.weight.shape[2:] == (1, 1) and self.stride == 1

    def _by_pixels(self, x: torch.Tensor, activate: bool = False) -> torch.Tensor:
        """A 1×1 convolution as one matrix product per pixel (channels last), a block of
        images at a time into one channels-last output (returned as a channels-first view),
        with the SiLU applied to each block first when ``activate``. Why blocks: at full
        resolution a whole group's transposed input, activated input and accumulator were
        each hundreds of MB at once (a photo's encoder peaked in this layer)."""
        n, c, h, w = x.shape
        out = np.empty((n, h, w, len(self.weight)), dtype=np.float64)
        scale = self.scale(2).numpy()
        step = max(1, POINTWISE_ROWS_PER_BLOCK // (h * w))
        for lo in range(0, n, step):
            part = silu(x[lo : lo + step]) if activate else x[lo : lo + step]
            rows = self.accumulate(part.permute(0, 2, 3, 1).reshape(-1, c))
            values = kernels.requant_rows(rows.numpy(), scale, float(ACT_LIMIT))
            out[lo : lo + step] = values.reshape(-1, h, w, out.shape[3])
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def _by_rows(self, x: torch.Tensor, table: np.ndarray = NO_TABLE) -> torch.Tensor:
        """The convolution as matrix products over im2col rows, a block of images at a time:
        float64 ``conv2d`` runs torch's slow generic loop, and the matrix product is exact
        for the same reason (every partial sum a whole number below 2^53, proven at load).
        The rows are gathered from the channels-first input with the padding (and a SiLU
        ``table``) applied on the way, and the sums land in a channels-first output: no
        padded, transposed or activated copy of the whole input or output is made."""
        n, c, h, w = x.shape
        (ph, pw), (kh, kw), s = self.padding, self.weight.shape[2:], self.stride
        h_out, w_out = (h + 2 * ph - kh) // s + 1, (w + 2 * pw - kw) // s + 1
        values = x.contiguous().numpy()
        weight = self.weight.permute(0, 2, 3, 1).reshape(len(self.weight), -1).t()  # (kh·kw·C, out)
        scale = self.scale(2).numpy()
        out = np.empty((n, len(self.weight), h_out, w_out), dtype=np.float64)
        planes = out.reshape(n, len(self.weight), h_out * w_out)
        step = max(1, CONV_ROWS_PER_BLOCK // (h_out * w_out))
        for lo in range(0, n, step):
            cols = kernels.conv_rows(values, lo, min(lo + step, n), kh, kw, s, ph, pw, h_out, w_out, table,
                                     SILU_OFFSET)
            kernels.requant_channels_first(torch.addmm(self.bias, torch.from_numpy(cols), weight).numpy(), scale,
                                           float(ACT_LIMIT), planes, lo)
        return torch.from_numpy(out)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same integers by float64 ``conv2d``: the definition :meth:`forward` matches."""
        acc = F.conv2d(x, self.weight, self.bias, self.stride, self.padding).contiguous()
        n, c, h, w = acc.shape
        out = kernels.requant_channels(acc.view(n, c, h * w).numpy(), self.scale(2).numpy(), float(ACT_LIMIT))
        return torch.from_numpy(out).view(n, c, h, w)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling of (N, C, H, W): a pure copy (``F.interpolate``'s
    float64 kernel is many times slower)."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def silu_table() -> np.ndarray:
    """The SiLU residual table as the compiled kernels read it (float64 grid values)."""
    return tables.load().float["silu_residual"].numpy()


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU on the activation grid: ``relu(x) + r(x)`` with ``r`` from the stored table
    (compiled kernel; :func:`silu_reference` is the same in torch ops)."""
    return torch.from_numpy(kernels.silu(x.contiguous().numpy(), silu_table(), SILU_OFFSET))


def conv_after_silu(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(silu(x))``; a digit convolution applies the SiLU as it reads its input."""
    after = getattr(conv, "after_silu", None)
    return after(x) if after is not None else conv(silu(x))


def silu_reference(x: torch.Tensor) -> torch.Tensor:
    return _relu_plus(x, "silu_residual")


def requantise_add(acc: torch.Tensor, scale: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``saturate(h + requantise(acc, scale))`` for (rows, channels), fused."""
    return torch.from_numpy(kernels.requant_add(acc.numpy(), scale.numpy(), h.contiguous().numpy(), float(ACT_LIMIT)))


def softplus(x: torch.Tensor) -> torch.Tensor:
    """Softplus on the activation grid, same construction as :func:`silu`."""
    return _relu_plus(x, "softplus_residual")


def _relu_plus(x: torch.Tensor, name: str) -> torch.Tensor:
    residual = tables.lookup(tables.load().float[name], torch.floor(x * _TO_TABLE), name)
    return torch.clamp(x, min=0.0).add_(residual)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh on the activation grid (saturated outside [-8, 8))."""
    return tables.lookup(tables.load().float["tanh"], torch.floor(x * _TO_TABLE), "tanh")


def bounded_softplus(raw: torch.Tensor, offset: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """:func:`bbcodec.nn.layers.bounded_softplus` on the grid: ``softplus(raw + offset) + floor``
    (``offset`` and ``floor`` are grid constants of the model)."""
    return saturate(softplus(saturate(raw + offset)) + floor)


def grid_constant(value: float) -> torch.Tensor:
    """A model constant on the activation grid (computed at export, stored as a buffer)."""
    return torch.tensor(float(round(value * ONE)), dtype=torch.float64)


class IResBlock(nn.Module):
    """:class:`bbcodec.nn.layers.ResBlock`: ``x + conv2(silu(conv1(silu(x))))``."""

    def __init__(self, width: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or width
        self.conv1 = IConv2d(width, hidden, (3, 3), padding=(1, 1))
        self.conv2 = IConv2d(hidden, width, (3, 3), padding=(1, 1))

    @classmethod
    def of(cls, block: nn.Module) -> IResBlock:
        out = cls(block.conv1.in_channels, block.conv1.out_channels)
        out.conv1 = IConv2d.of(block.conv1)
        out.conv2 = IConv2d.of(block.conv2)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return saturate(x + conv_after_silu(self.conv2, conv_after_silu(self.conv1, x)))


def check_layers(model: nn.Module) -> dict[str, int]:
    """Prove every quantised layer of ``model`` exact (the float64 ones and the int8 ones of
    :mod:`bbcodec.exact.narrow`); the worst accumulator per layer."""
    from bbcodec.exact.narrow import NarrowLinear

    return {name: m.check(name) for name, m in model.named_modules() if isinstance(m, (_Quantised, NarrowLinear))}
