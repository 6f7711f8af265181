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
    decoding step (one pixel of every image) run the same layers.
    """

    def __init__(self, hidden: int, blocks: int, n_params: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(blocks))
        for block in self.blocks:
            nn.init.zeros_(block[-1].weight)
            nn.init.zeros_(block[-1].bias)
        self.out = nn.Linear(hidden, n_params)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = h + block(h)
        with fp32():
            return self.out(F.silu(h.float()))


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

    def __init__(self, channels: int, hidden: int, blocks: int, n_params: int, rows: int, cols: int) -> None:
        super().__init__()
        if rows < 1 or cols < 1 or cols % 2 == 0 or (rows == 1 and cols == 1):
            raise ValueError(f"the causal window must have an odd width and see some pixel, got {rows}x{cols}")
        self.channels, self.hidden, self.rows, self.cols = channels, hidden, rows, cols
        self.window = nn.Conv2d(channels + 1, hidden, (rows, cols))
        self.register_buffer("window_mask", causal_mask(channels + 1, rows, cols))
        self.head = PixelHead(hidden, blocks, n_params)

    def masked_weight(self) -> torch.Tensor:
        return self.window.weight * self.window_mask

    def canvas(self, x_unit: torch.Tensor) -> torch.Tensor:
        return self.padded_canvas(x_unit, 1.0)

    def params(self, x_unit: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Parameters of every pixel at once (teacher forcing), shape (N, H, W, P)."""
        local = F.conv2d(self.canvas(x_unit), self.masked_weight(), self.window.bias)
        return self.head((local + cond).permute(0, 2, 3, 1))


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
        if self.sub_steps > 1:
            self._position.write(channel, values)
            self._canvas[:, channel, y, x] = self.to_unit(values.reshape(n))
        else:
            self._canvas[:, :c, y, x] = self.to_unit(values.reshape(n, c))


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
