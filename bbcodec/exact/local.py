"""The integer form of the local PixelCNN decoder (:mod:`bbcodec.nn.local_pixelcnn`).

Same structure as the float module: a masked window convolution, then a per-pixel
residual MLP. Because every sum is exact, the teacher-forced pass over all pixels
(bounds, importance weights) and the step-by-step pass of the coder give the very
same integers, whatever batch, kernel or memory layout computes them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from bbcodec.ans import RawHead
from bbcodec.exact import kernels, tables
from bbcodec.exact.distributions import BernoulliPixels, Logistics
from bbcodec.exact.fixed import ACT_LIMIT, ONE
from bbcodec.exact.random import sample
from bbcodec.exact.layers import SILU_OFFSET, IConv2d, ILinear, requantise_add
from bbcodec.nn.local_pixelcnn import CausalWindow, RasterSteps


class IPixelHead(nn.Module):
    """:class:`bbcodec.nn.local_pixelcnn.PixelHead` on the activation grid."""

    def __init__(self, hidden: int, blocks: int, n_params: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleList([ILinear(hidden, hidden), ILinear(hidden, hidden)])
                                    for _ in range(blocks))
        self.out = ILinear(hidden, n_params)

    @classmethod
    def of(cls, head: nn.Module) -> IPixelHead:
        hidden = head.out.in_features
        out = cls(hidden, len(head.blocks), head.out.out_features)
        for mine, theirs in zip(out.blocks, head.blocks):
            mine[0], mine[1] = ILinear.of(theirs[1]), ILinear.of(theirs[3])
        out.out = ILinear.of(head.out)
        return out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., hidden) -> parameters (..., n_params); residual branches fused (same integers
        as ``h + second(silu(first(silu(h))))``)."""
        shape = h.shape
        return torch.from_numpy(self.rows(h.reshape(-1, shape[-1]).numpy())).view(*shape[:-1], -1)

    def rows(self, h: np.ndarray) -> np.ndarray:
        """:meth:`forward` of (rows, hidden) grid values as numpy arrays between the kernels:
        a decoding step's products are small, and tensor wrappers around each would cost
        about as much as the products."""
        table = tables.load().float["silu_residual"].numpy()
        h = np.ascontiguousarray(h)
        act = kernels.silu(h, table, SILU_OFFSET)
        blocks, out = self._kernel_plan()
        for first, second in blocks:
            inner = kernels.requant_silu(_product(act, first), first[2], table, SILU_OFFSET, float(ACT_LIMIT))
            h, act = kernels.requant_add_silu(_product(inner, second), second[2], h, table, SILU_OFFSET,
                                              float(ACT_LIMIT))
        return kernels.requant_rows(_product(act, out), out[2], float(ACT_LIMIT))

    def _kernel_plan(self) -> tuple[list[tuple[tuple, tuple]], tuple]:
        """Each block's (bias, weightᵀ, scale) pairs and the output layer's, made once: a
        decoding step of a small group costs little more than fetching them."""
        if getattr(self, "_plan", None) is None:
            self._plan = ([(_layer_arrays(first), _layer_arrays(second)) for first, second in self.blocks],
                          _layer_arrays(self.out))
        return self._plan

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self._plan = None  # new weights: the plan is made again from them
        super()._load_from_state_dict(*args, **kwargs)


def _layer_arrays(layer: ILinear) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(bias, weightᵀ contiguous, scale) of an integer linear layer (or a convolution, its
    weight flattened per output channel), as :func:`_product` and the kernels take them."""
    weight = layer.weight.reshape(len(layer.weight), -1).t().contiguous()
    return layer.bias, weight, layer.scale(2).numpy()


def _product(x: np.ndarray, layer: tuple[torch.Tensor, torch.Tensor, np.ndarray]) -> np.ndarray:
    """``bias + x · wᵀ`` of whole numbers (exact: the layer's bound is proven at load), on
    torch's threads like every other product (a second BLAS's spinning threads would
    slow both)."""
    return torch.addmm(layer[0], torch.from_numpy(x), layer[1]).numpy()


class ILocalPixelNet(CausalWindow, nn.Module):
    """:class:`bbcodec.nn.local_pixelcnn.LocalPixelNet`: masked window conv + per-pixel head."""

    one = float(ONE)  # the inside-image flag on the activation grid

    def __init__(self, channels: int, hidden: int, blocks: int, n_params: int, rows: int, cols: int) -> None:
        super().__init__()
        self.channels, self.hidden, self.rows, self.cols = channels, hidden, rows, cols
        self.window = IConv2d(channels + 1, hidden, (rows, cols))
        self.head = IPixelHead(hidden, blocks, n_params)

    @classmethod
    def of(cls, net: nn.Module) -> ILocalPixelNet:
        out = cls(net.channels, net.hidden, len(net.head.blocks), net.head.out.out_features, net.rows, net.cols)
        out.window = IConv2d.of(net.window, weight=net.masked_weight())
        out.head = IPixelHead.of(net.head)
        return out

    def canvas(self, x_unit: torch.Tensor) -> torch.Tensor:
        """The padded canvas with the inside-image flag on the grid."""
        return self.padded_canvas(x_unit, self.one)

    def empty_canvas(self, n: int, h: int, w: int) -> torch.Tensor:
        canvas = torch.zeros(n, self.channels + 1, h + self.pad_top, w + 2 * self.pad_side, dtype=torch.float64)
        canvas[:, self.channels, self.pad_top :, self.pad_side : self.pad_side + w] = self.one
        return canvas

    def cond_rows(self, cond: torch.Tensor) -> PositionRows:
        """Conditioning (N, hidden, H, W) as one row block (N, hidden) per position."""
        return PositionRows(cond)

    def step_params(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor) -> torch.Tensor:
        """Parameters (N, P) of position (i, j) of every image, from the canvas coded so far."""
        window = canvas.numpy()[:, :, i : i + self.rows, j : j + self.cols]
        window = np.ascontiguousarray(window).reshape(len(canvas), -1)
        if getattr(self, "_window_plan", None) is None:  # made once (weights never change after loading)
            self._window_plan = _layer_arrays(self.window)
        local = kernels.requant_add(_product(window, self._window_plan), self._window_plan[2], cond_row.numpy(),
                                    float(ACT_LIMIT))
        return torch.from_numpy(self.head.rows(local))

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self._window_plan = None  # new weights: the window's arrays are made again from them
        super()._load_from_state_dict(*args, **kwargs)

    def params(self, x_unit: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Parameters of every pixel at once (teacher forcing), (N, H, W, P) on the grid.

        The window convolution runs as one matrix product over every window (the
        same sums as each coding step's product; float64's convolution is slower)."""
        canvas = self.canvas(x_unit)
        n, c, hp, wp = canvas.shape
        h, w = hp - self.pad_top, wp - 2 * self.pad_side
        s = canvas.stride()
        windows = canvas.as_strided((n, h, w, c, self.rows, self.cols), (s[0], s[2], s[3], s[1], s[2], s[3]))
        acc = self.window.accumulate(windows.reshape(n * h * w, -1))
        cond_rows = cond.permute(0, 2, 3, 1).reshape(n * h * w, -1)
        local = requantise_add(acc, self.window.scale(2), cond_rows)
        return self.head(local).view(n, h, w, -1)


def repeat_images(cond: torch.Tensor | object, copies: int) -> torch.Tensor | object:
    """Conditioning of N images -> of ``copies`` copies of them, row ``s·N + n`` image ``n``: a
    tensor (N, ...) or :class:`~bbcodec.exact.narrow_conv.CondCodes`."""
    if isinstance(cond, torch.Tensor):
        return cond.repeat(copies, *[1] * (cond.dim() - 1))
    return cond.repeated(copies)


class PositionRows:
    """Conditioning (N, hidden, H, W) read one position of every image at a time: ``[t]`` is
    position ``t``'s rows (N, hidden), copied when asked. Why not a position-major copy
    of the whole: for a group of photo tiles it is hundreds of MB beside the conditioning
    itself, where the decoder's peak memory was, and a step copies only its own rows."""

    def __init__(self, cond: torch.Tensor) -> None:
        self.by_pixel = cond.permute(0, 2, 3, 1)  # (N, H, W, hidden): a view, contiguous when cond is channels-last
        self.width = cond.shape[3]

    def __len__(self) -> int:
        return self.by_pixel.shape[1] * self.width

    def __getitem__(self, t: int) -> torch.Tensor:
        i, j = divmod(t, self.width)
        return self.by_pixel[:, i, j].contiguous()


class ExactPixelSteps(RasterSteps):
    """p(x | z) of an integer local pixel net (:class:`ILocalPixelNet` or
    :class:`~bbcodec.exact.narrow.NarrowPixelNet`) as a :class:`~bbcodec.contract.Autoregressive`
    model whose step distributions carry integer frequency tables.

    ``distribution`` maps grid parameters (..., P) to a distribution of
    :mod:`bbcodec.exact.distributions` (or a coupled one with its own steps);
    ``to_unit`` maps uint8 pixels to the net's canvas values.
    """

    def __init__(self, net: nn.Module, cond: torch.Tensor | Callable[[], torch.Tensor],
                 shape: tuple[int, int, int, int], distribution: Callable[[torch.Tensor], object],
                 to_unit: Callable[[torch.Tensor], torch.Tensor], coupled: bool,
                 step_tables: Callable[..., torch.Tensor] | None = None,
                 position: Callable[[torch.Tensor], object] | None = None,
                 step_draws: Callable[..., np.ndarray] | None = None,
                 step_pops: Callable[..., np.ndarray] | None = None,
                 group_steps: Callable[[torch.Tensor, torch.Tensor], object] | None = None) -> None:
        self._start(net, shape, distribution, to_unit, coupled)
        self._cond = cond  # or a function computing it when first needed (a lossy encoder never is)
        # where fused kernels serve the decoder's steps: (canvas, i, j, cond row) -> a step's
        # tables (or its draws, or its pops), or one position's parameters (N, P) -> its (coupled) steps
        self.step_tables, self.position = step_tables, position
        self.step_draws, self.step_pops = step_draws, step_pops
        # (canvas, conditioning rows) -> every step of the group in one loop
        # (:class:`bbcodec.exact.narrow_steps.NarrowGroup`), where the net has one
        self.group_steps = group_steps

    @property
    def cond(self) -> torch.Tensor:
        """The conditioning features (N, hidden, H, W) of every pixel."""
        if callable(self._cond):
            self._cond = self._cond()
        return self._cond

    def replicated(self, copies: int) -> ExactPixelSteps:
        """This p(x | z) for ``copies`` copies of every image (row ``s·N + n`` is image ``n``),
        its conditioning computed once and repeated. Why: a lossy decoder draws several
        pictures of one latent code, and walking the model for every copy computed the
        same conditioning ``copies`` times (each image's rows are its own integers, so a
        copy's conditioning is its image's)."""
        out = copy.copy(self)
        out._start(self.net, (self.shape[0] * copies, *self.shape[1:]), self.distribution, self.to_unit,
                   self.sub_steps > 1)
        out._cond = lambda: repeat_images(self.cond, copies)
        return out

    def parallel_distribution(self, x: torch.Tensor) -> object:
        """The distribution of every pixel given the true pixels before it (teacher forcing)."""
        params = self.net.params(self.to_unit(x), self.cond)  # (N, H, W, P)
        return self.distribution(params)

    def teacher_forced(self, x: torch.Tensor, images_at_once: int = 32) -> tuple[object, torch.Tensor]:
        """Every step's distribution at once, given the true pixels: a flat pixel
        distribution and the symbols, both in coding order (step-major, then image).

        The integer network computes each step's parameters identically whether it
        runs one step of every image or every step of a few images, so the encoder
        can take this parallel pass while the decoder steps (DESIGN.md §4).
        """
        order = StepMajor(x, self.sub_steps > 1)
        for lo in range(0, x.shape[0], images_at_once):
            hi = min(lo + images_at_once, x.shape[0])
            sub = ExactPixelSteps(self.net, self.cond[lo:hi], (hi - lo, *self.shape[1:]), self.distribution,
                                  self.to_unit, self.sub_steps > 1)
            dist = sub.parallel_distribution(x[lo:hi])
            order.put(lo, dist.parallel(x[lo:hi]) if self.sub_steps > 1 else dist)
        return order.result()

    def reset(self) -> None:
        n, _, h, w = self.shape
        self._canvas = self.net.empty_canvas(n, h, w)
        self._cond_steps = self.net.cond_rows(self.cond)
        self._position = None

    def whole_group(self) -> object | None:
        """After :meth:`reset`: every step of the group in one loop, with ``pop(raw)`` and
        ``draw(uniforms)`` giving all (N, H, W) pixels, or None where the net has no such loop."""
        if self.group_steps is None or self.sub_steps > 1:
            return None
        return self.group_steps(self._canvas, self._cond_steps)

    def step_distribution(self, t: int) -> object:
        assert self._canvas is not None and self._cond_steps is not None
        position, channel, i, j = self._where(t)
        if self.step_tables is not None and self.sub_steps == 1:
            where = (self._canvas, i, j, self._cond_steps[position])
            draws = None if self.step_draws is None else partial(self.step_draws, *where)
            pops = None if self.step_pops is None else partial(self.step_pops, *where)
            return FusedStep(self.shape[0], partial(self.step_tables, *where), draws, pops)
        if channel == 0:
            params = self.net.step_params(self._canvas, i, j, self._cond_steps[position])
            if self.position is not None:
                self._position = self.position(params)
            else:
                self._position = self.distribution(params.view(self.shape[0], 1, 1, -1))
            if self.sub_steps > 1:
                self._position.reset()
        if self.sub_steps > 1:
            return self._position.step_distribution(channel)
        return self._position


@dataclass(frozen=True)
class FusedStep:
    """One step's pixels as the fused kernels serve them, made when asked: the frequency
    tables a coder needs, seeded draws a lossy decoder needs, or the pixels popped from
    a coder by the kernel itself (no tables either way)."""

    rows: int
    tables: Callable[[], torch.Tensor]
    draws: Callable[[np.ndarray], np.ndarray] | None = None
    pops: Callable[[RawHead], np.ndarray] | None = None  # -> the step's (rows,) uint8 pixels

    def frequencies(self) -> torch.Tensor:
        return self.tables()

    def draw(self, uniforms: np.ndarray) -> np.ndarray:
        """uint8 draws at 24-bit ``uniforms``: the tables' inverse-CDF draws
        (:func:`bbcodec.exact.random.sample`), by the draw kernel when there is one."""
        if self.draws is not None:
            return self.draws(uniforms=uniforms)
        return sample(self.tables(), uniforms).to(torch.uint8).numpy()


FIELDS = ("weights", "means", "inv_scales")


class StepMajor:
    """Per-image-chunk distributions of (N, [C,] H, W) pixels joined into coding order:
    position, then channel when coupled (one step each), then image, then channel.

    Each chunk is written into place as it comes (:meth:`put`), so a group's chunks,
    their concatenation and its reordered copy never exist at once: at a photo's full
    resolution each was hundreds of MB, and the encoder's peak memory was there."""

    def __init__(self, x: torch.Tensor, coupled: bool) -> None:
        self.x, self.coupled = x, coupled
        self.out: list[torch.Tensor] | None = None
        self.bernoulli = False

    def put(self, lo: int, part: object) -> None:
        """The distribution of images ``lo …`` (a chunk, in image order)."""
        _, _, h, w = self.x.shape
        if isinstance(part, BernoulliPixels):  # (n, C, H, W) -> (H, W, n, C)
            self.bernoulli = True
            p = part.p_one.reshape(part.p_one.shape[0], -1, h, w)
            self._place([p.permute(2, 3, 0, 1)], lo, axis=2)
        elif self.coupled:  # three Logistics (n, H, W, K): channel t is step 3·position + t -> (H, W, 3, n, K)
            self._place([torch.stack([getattr(ch, f) for ch in part], dim=3).permute(1, 2, 3, 0, 4)
                         for f in FIELDS], lo, axis=3)
        else:  # (n, C, H, W, K) -> (H, W, n, C, K)
            fields = [getattr(part, f) for f in FIELDS]
            self._place([t.reshape(t.shape[0], -1, h, w, t.shape[-1]).permute(2, 3, 0, 1, 4) for t in fields], lo,
                        axis=2)

    def _place(self, chunks: list[torch.Tensor], lo: int, axis: int) -> None:
        if self.out is None:
            self.out = [torch.empty((*t.shape[:axis], len(self.x), *t.shape[axis + 1 :]), dtype=t.dtype)
                        for t in chunks]
        for out, t in zip(self.out, chunks):
            out.narrow(axis, lo, t.shape[axis]).copy_(t)

    def result(self) -> tuple[object, torch.Tensor]:
        """(a flat pixel distribution, the symbols), both in coding order."""
        assert self.out is not None, "no chunk was put"
        x = self.x
        if self.bernoulli:
            return BernoulliPixels(self.out[0].reshape(-1)), x.permute(2, 3, 0, 1).reshape(-1)
        k = self.out[0].shape[-1]
        order = (2, 3, 1, 0) if self.coupled else (2, 3, 0, 1)
        return Logistics(*[t.reshape(-1, k) for t in self.out]), x.permute(*order).reshape(-1)
