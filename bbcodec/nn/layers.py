"""Small building blocks shared by the architectures.

Everything here is per-sample: no batch statistics (BatchNorm) anywhere, because a
codec must compute the same distribution for an image whatever else is in its batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv(c_in: int, c_out: int, k: int = 3, zero_init: bool = False) -> nn.Conv2d:
    """A 'same' convolution; ``zero_init`` makes a residual branch start as identity."""
    layer = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    if zero_init:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


class ResBlock(nn.Module):
    """Pre-activation residual block whose last conv starts at zero.

    Zero-initialised residual branches keep a deep top-down stack near identity at
    the start of training, which is what keeps the early KL terms from exploding.
    """

    def __init__(self, width: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or width
        self.conv1 = conv(width, hidden)
        self.conv2 = conv(hidden, width, zero_init=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def bounded_softplus(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """A positive scale with a smooth floor: ``raw = 0`` maps to ``1 + floor``.

    A hard clamp on a log-std lets it sit at the bound with zero gradient (the KL
    then explodes when it leaves); a softplus floor keeps gradients alive.
    """
    return F.softplus(raw + 0.5413248546129181) + floor


def fp32() -> torch.autocast:
    """Leave bf16 autocast for layers that emit distribution parameters.

    bf16 rounds a logistic mean to about half a pixel bin; training those heads in
    fp32 keeps the trained likelihood equal to the one the coder uses.
    """
    return torch.autocast("cpu", enabled=False)
