"""A *local* PixelCNN decoder: each pixel's distribution from a small causal window of
already-coded pixels plus a conditioning feature map (from the latents).

Shared by the VLAE (global latent) and the hierarchical VAE (a latent map): the
latents carry what is global, the window what is texture.

Why this shape:

* **One masked convolution, then per-pixel layers.** The only spatial operation is a
  type-A masked ``rows × cols`` convolution over the canvas (rows above, pixels to
  the left; never the current pixel). Everything after it works per pixel, so a
  decoding step reads one small window slice of the canvas and runs a few small
  matrix products, whatever the image size: decoding cost is linear in pixels and
  batched across every image (or tile) of a group.
* **The inside-image flag.** The canvas carries a second plane that is 1 inside the
  image and 0 in the padding, so the network can tell a black pixel from the border.
* **RGB.** All channels of earlier positions are visible; the channels of the
  current position are coupled by :class:`~bbcodec.nn.likelihoods.CoupledLogistics`
  (PixelCNN++), coded as three sub-steps R, G, B per position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.contract import PixelDistribution
from bbcodec.nn.fake_quant import SiluCodes, fake_weight
from bbcodec.nn.layers import fp32
from bbcodec.nn.likelihoods import CoupledLogistics, observation_log_prob

PositionDistribution = PixelDistribution | CoupledLogistics


def causal_mask(channels: int, rows: int, cols: int) -> torch.Tensor:
    """Type-A mask of a ``rows × cols`` window: rows above, pixels left of the current one."""
    mask = torch.zeros(rows, cols)
    mask[: rows - 1, :] = 1.0
    mask[rows - 1, : cols // 2] = 1.0
    return mask.expand(channels, -1, -1).clone()


class PixelHead(nn.Module):
    """Per-pixel residual MLP from local features to distribution parameters.

    Works on the last dimension, so the training pass (all pixels at once) and a
    decoding step (one pixel of every image) run the same layers. ``code_bits`` = 8
    trains with the residual blocks' SiLU outputs on 8-bit code grids and ``weight_bits`` = 7
    with their weights on 7-bit grids (:mod:`bbcodec.nn.fake_quant`): what an
    int8 integer form of one product per weight computes. The window and the output
    layer stay float (their integer forms keep 13-bit weights).
    """

    def __init__(self, hidden: int, blocks: int, n_params: int, code_bits: int = 0, weight_bits: int = 0) -> None:
        super().__init__()
        if code_bits not in (0, 8) or weight_bits not in (0, 7):
            raise ValueError(f"quantisation-aware training knows 8-bit codes and 7-bit weights, "
                             f"got {code_bits} and {weight_bits}")
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(blocks))
        for block in self.blocks:
            nn.init.zeros_(block[-1].weight)
            nn.init.zeros_(block[-1].bias)
        self.out = nn.Linear(hidden, n_params)
        self.weight_bits = weight_bits
        self.codes = SiluCodes(2 * blocks) if code_bits else None  # sites: in_0, mid_0, in_1, mid_1, ...

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.codes is None and not self.weight_bits:
            for block in self.blocks:
                h = h + block(h)
            with fp32():
                return self.out(F.silu(h.float()))
        return self._quantised(h)

    def _quantised(self, h: torch.Tensor, calibrate: bool = False) -> torch.Tensor:
        for b, block in enumerate(self.blocks):
            inner = self.linear(block[1], self._coded_silu(h, 2 * b, calibrate))
            h = h + self.linear(block[3], self._coded_silu(inner, 2 * b + 1, calibrate))
        with fp32():  # the output layer's input keeps 16-bit codes: a pixel's means are finer than 8 bits
            return self.out(F.silu(h.float()))

    def _coded_silu(self, h: torch.Tensor, site: int, calibrate: bool) -> torch.Tensor:
        if self.codes is None:
            return F.silu(h)
        if calibrate:
            self.codes.calibrate(site, F.silu(h.float()))
        return self.codes(h, site)

    def site_silu(self, h: torch.Tensor, site: int) -> torch.Tensor:
        """The SiLU of code site ``site`` (in_0, mid_0, in_1, ...) as this head trains it."""
        return self._coded_silu(h, site, False)

    def linear(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """A residual block's layer with the weights this head trains (7-bit grids or float)."""
        weight = fake_weight(layer.weight, self.weight_bits) if self.weight_bits else layer.weight
        return F.linear(x, weight, layer.bias)

    @torch.no_grad()
    def calibrate_codes(self, h: torch.Tensor) -> None:
        """Set every code site's range from features ``h`` (N, ..., hidden): each site sees
        the codes of the sites before it, as in training."""
        if self.codes is not None:
            self._quantised(h, calibrate=True)


class CausalWindow:
    """The geometry of a ``rows × cols`` causal window (float and integer nets alike):
    how much padding lets every pixel's window fit, and the padded canvas."""

    rows: int
    cols: int

    @property
    def pad_top(self) -> int:
        return self.rows - 1

    @property
    def pad_side(self) -> int:
        return self.cols // 2

    def padded_canvas(self, x_unit: torch.Tensor, one: float) -> torch.Tensor:
        """Values plus the inside-image flag ``one``, padded so every window fits."""
        inside = torch.full_like(x_unit[:, :1], one)
        return F.pad(torch.cat([x_unit, inside], dim=1), (self.pad_side, self.pad_side, self.pad_top, 0))


class LocalPixelNet(CausalWindow, nn.Module):
    """The trainable part: masked window convolution and per-pixel head."""

    def __init__(self, channels: int, hidden: int, blocks: int, n_params: int, rows: int, cols: int,
                 code_bits: int = 0, weight_bits: int = 0) -> None:
        super().__init__()
        if rows < 1 or cols < 1 or cols % 2 == 0 or (rows == 1 and cols == 1):
            raise ValueError(f"the causal window must have an odd width and see some pixel, got {rows}x{cols}")
        self.channels, self.hidden, self.rows, self.cols = channels, hidden, rows, cols
        self.window = nn.Conv2d(channels + 1, hidden, (rows, cols))
        self.register_buffer("window_mask", causal_mask(channels + 1, rows, cols))
        self.head = PixelHead(hidden, blocks, n_params, code_bits, weight_bits)

    def masked_weight(self) -> torch.Tensor:
        return self.window.weight * self.window_mask

    def canvas(self, x_unit: torch.Tensor) -> torch.Tensor:
        return self.padded_canvas(x_unit, 1.0)

    def features(self, x_unit: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The head's input at every pixel (teacher forcing), shape (N, H, W, hidden)."""
        local = F.conv2d(self.canvas(x_unit), self.masked_weight(), self.window.bias)
        return (local + cond).permute(0, 2, 3, 1)

    def params(self, x_unit: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Parameters of every pixel at once (teacher forcing), shape (N, H, W, P)."""
        return self.head(self.features(x_unit, cond))

    def calibrate_codes(self, x_unit: torch.Tensor, cond: torch.Tensor) -> None:
        """Set the head's 8-bit code ranges from these images (:meth:`PixelHead.calibrate_codes`)."""
        self.head.calibrate_codes(self.features(x_unit, cond))


class RasterSteps:
    """Which pixels step ``t`` codes: raster positions, each split into one sub-step per
    channel when the channels are coupled. Shared by the float and the integer decoder."""

    shape: tuple[int, int, int, int]
    sub_steps: int
    net: nn.Module  # with pad_top and pad_side
    to_unit: Callable[[torch.Tensor], torch.Tensor]
    _canvas: torch.Tensor | None
    _position: object | None

    def _start(self, net: nn.Module, shape: tuple[int, int, int, int], distribution: Callable,
               to_unit: Callable[[torch.Tensor], torch.Tensor], coupled: bool) -> None:
        """The step bookkeeping both decoders share (their canvases start empty)."""
        self.net, self.shape = net, shape
        self.distribution, self.to_unit = distribution, to_unit
        _, c, h, w = shape
        self.sub_steps = c if coupled else 1
        self.num_steps = h * w * self.sub_steps
        self._canvas = None
        self._cond_steps: torch.Tensor | None = None
        self._position = None

    def _where(self, t: int) -> tuple[int, int, int, int]:
        position, channel = divmod(t, self.sub_steps)
        i, j = divmod(position, self.shape[3])
        return position, channel, i, j

    def step_index(self, t: int) -> tuple[slice, slice, int, int]:
        _, channel, i, j = self._where(t)
        channels = slice(None) if self.sub_steps == 1 else slice(channel, channel + 1)
        return slice(None), channels, i, j

    def write(self, t: int, values: torch.Tensor) -> None:
        """Place the coded values of step ``t`` on the canvas (a coupled position also
        records its channel, which the next channels' distributions depend on)."""
        assert self._canvas is not None
        _, channel, i, j = self._where(t)
        n, c = self.shape[:2]
        y, x = i + self.net.pad_top, j + self.net.pad_side
        canvas = self._canvas.numpy()  # numpy's strided assignment: a step writes only a few values
        if self.sub_steps > 1:
            self._position.write(channel, values)
            canvas[:, channel, y, x] = self.to_unit(values.reshape(n)).numpy()
        else:
            canvas[:, :c, y, x] = self.to_unit(values.reshape(n, c)).numpy()


class LocalPixelSteps(RasterSteps):
    """p(x | z) of a :class:`LocalPixelNet` as a :class:`~bbcodec.contract.Autoregressive` model.

    ``distribution`` turns parameters (..., P) into the distribution of one or many
    positions; ``to_unit`` maps pixel values to network inputs. The canvas holds the
    coded values (0 where nothing is coded yet, which the causal mask never reads).
    Encoder and decoder compute every step through :meth:`step_distribution` on
    identical canvases, so their parameters are bit-identical (DESIGN.md §4).
    """

    def __init__(self, net: LocalPixelNet, cond: torch.Tensor, shape: tuple[int, int, int, int],
                 distribution: Callable[[torch.Tensor], PositionDistribution],
                 to_unit: Callable[[torch.Tensor], torch.Tensor], coupled: bool) -> None:
        self._start(net, shape, distribution, to_unit, coupled)
        self.cond = cond
        self._weight: torch.Tensor | None = None

    # training and bounds: all pixels in parallel
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return observation_log_prob(self.distribution(self.net.params(self.to_unit(x), self.cond)), x)

    # coding: one raster position (and channel, when coupled) of every image per step
    def reset(self) -> None:
        n, c, h, w = self.shape
        net = self.net
        self._canvas = torch.zeros(n, c + 1, h + net.pad_top, w + 2 * net.pad_side)
        self._canvas[:, c, net.pad_top :, net.pad_side : net.pad_side + w] = 1.0
        self._cond_steps = self.cond.float().permute(2, 3, 0, 1).reshape(h * w, n, -1).contiguous()
        self._weight = net.masked_weight().reshape(net.hidden, -1).contiguous()
        self._position = None

    def step_distribution(self, t: int) -> PixelDistribution:
        assert self._canvas is not None and self._cond_steps is not None and self._weight is not None
        position, channel, i, j = self._where(t)
        if channel == 0:
            n = self.shape[0]
            window = self._canvas[:, :, i : i + self.net.rows, j : j + self.net.cols].reshape(n, -1)
            h = F.linear(window, self._weight, self.net.window.bias) + self._cond_steps[position]
            self._position = self.distribution(self.net.head(h).view(n, 1, 1, -1))
            if isinstance(self._position, CoupledLogistics):
                self._position.reset()
        assert self._position is not None
        if isinstance(self._position, CoupledLogistics):
            return self._position.step_distribution(channel)
        return self._position
