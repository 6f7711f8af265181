"""Quantisation-aware training of the local pixel net: the float net computes what its
int8 integer form will.

Why: a decoding step's cost is the pixel net's matrix products, and an int8 product
of 8-bit codes by 7-bit weights is one int8 multiply per weight, where 16-bit codes
by 13-bit weights are four. Quantised after training, 8-bit codes and 7-bit weights
cost several percent of rate (``vlae-mnist-large``, validation digits: 7-bit weights
in every layer +2.8%, with 8-bit SiLU codes clipped at the 99.9th percentile +3.5%).
Trained with them in the forward pass, the network learns weights and code ranges
that the integer form reproduces.

Two rounding rules, both the export's own (:mod:`bbcodec.exact.narrow_export`):

* **weights**, per output channel: ``w ≈ s_c · q`` with ``s_c = max|w_c| / (2^(b−1) − 1)``
  and ``q`` a whole number (:func:`fake_weight`);
* **SiLU outputs**, per site: a grid of 256 steps ``s = (top − SILU_MIN) / 255`` that
  holds zero, ``a ≈ s · clamp(round(a / s), q_min, q_min + 255)`` with
  ``q_min = floor(SILU_MIN / s)``; ``top`` is set from training images when training
  starts (:class:`SiluCodes`).

The output layer's input keeps 16-bit codes: 8-bit codes there cost most of the
rate (a pixel's logistic means need finer steps than 8 bits give), and that product
has 15 outputs, so its cost is small.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.nn.layers import fp32

SILU_MIN = -0.2784645427610738  # min over x of x·σ(x): the lowest value a SiLU code stands for
CODE_LEVELS = 256  # 8-bit codes
CALIBRATION_QUANTILE = 0.999  # where an uncalibrated site's top starts (measured: the best of 1, 0.99999, 0.9999, 0.999)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def fake_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` rounded to ``bits``-bit whole multiples of its per-output-channel step."""
    limit = (1 << (bits - 1)) - 1
    step = weight.detach().abs().flatten(1).amax(1).clamp(min=1e-12) / limit
    step = step.view(-1, *([1] * (weight.ndim - 1)))
    return _round_ste(weight / step).clamp(-limit, limit) * step


def code_grid(top: float) -> tuple[float, int]:
    """(step, q_min) of the 8-bit SiLU code grid whose codes reach ``top``."""
    step = (top - SILU_MIN) / (CODE_LEVELS - 1)
    return step, math.floor(SILU_MIN / step)


class SiluCodes(nn.Module):
    """``silu`` followed by the 8-bit code grid of each of ``sites`` places in a net.

    The grids' ranges are fixed when training starts (:meth:`calibrate`) and stored
    with the weights, which learn to fit them; the rounding's gradient passes straight
    through. Fixed ranges keep the rounding outside autograd (a learned range trained
    three times slower per step, measured on ``vlae-mnist-large``).
    """

    def __init__(self, sites: int) -> None:
        super().__init__()
        self.register_buffer("top", torch.zeros(sites))  # <= 0: not yet calibrated

    @property
    def calibrated(self) -> bool:
        return bool((self.top > 0).all())

    def forward(self, h: torch.Tensor, site: int) -> torch.Tensor:
        with fp32():
            a = F.silu(h.float())
            with torch.no_grad():
                step, q_min = code_grid(float(self.top[site]))
                error = a.div(step).round_().clamp_(q_min, q_min + CODE_LEVELS - 1).mul_(step).sub_(a)
            return a + error

    @torch.no_grad()
    def calibrate(self, site: int, values: torch.Tensor) -> None:
        """Set ``site``'s top at a high quantile of its float SiLU outputs."""
        sample = values.detach().float().flatten()
        sample = sample[:: max(1, len(sample) // 4_000_000)]  # torch.quantile's input limit
        self.top[site] = float(torch.quantile(sample, CALIBRATION_QUANTILE))
