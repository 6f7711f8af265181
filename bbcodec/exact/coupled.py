"""RGB pixels under a PixelCNN++ mixture, in integers (:class:`bbcodec.nn.likelihoods.CoupledLogistics`).

One mixture component is shared by the three channels and each channel's mean is
shifted linearly by the channels before it. Channels are coded R, G, B: step ``t``
is a logistic mixture over channel ``t`` whose component weights are the posterior
responsibilities given the channels already coded, computed here as an integer
softmax over ``log2 π_k + Σ_{c<t} log2 P_k(x_c)`` with the component masses taken
from the very integer CDFs the coder uses.
"""

from __future__ import annotations

import math

import torch

from bbcodec.exact import tables
from bbcodec.exact.distributions import LOG2_FRAC, MEAN_LIMIT, Logistics, inverse_scales, softmax2_weights
from bbcodec.exact.fixed import FRAC, fixed_mul

LOG2_E = round(math.log2(math.e) * (1 << LOG2_FRAC))  # natural-log grid logits -> log2 in 2^-20 bits


class CoupledLogistics:
    """Integer parameters on the grid: ``logits`` (N, K, H, W); ``means``, ``log_scales``,
    ``coeffs`` (already tanh'd) (N, K, 3, H, W). An :class:`~bbcodec.contract.Autoregressive`
    model of three steps (R, G, B over every pixel)."""

    num_steps = 3

    def __init__(self, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor,
                 coeffs: torch.Tensor) -> None:
        self.log2_pi = (logits.to(torch.int64) * LOG2_E) >> FRAC  # unnormalised log2 weights
        self.means, self.coeffs = means, coeffs
        self.inv_scales = inverse_scales(log_scales)
        n, _, _, h, w = means.shape
        self.shape = (n, 3, h, w)
        self._x: torch.Tensor | None = None

    def _channel(self, x: torch.Tensor, t: int) -> Logistics:
        """Channel ``t``'s components given the pixels ``x`` (N, 3, H, W) before it, with
        the mixture weights left to the caller: layout (N, H, W, K)."""
        u = tables.load().float["pixel_unit"][x.to(torch.int64)].unsqueeze(1)  # (N, 1, 3, H, W)
        mean = self.means[:, :, t]
        for c in range(t):
            mean = mean + fixed_mul(self.coeffs[:, :, t * (t - 1) // 2 + c], u[:, :, c])
        means = mean.to(torch.int64).clamp(-MEAN_LIMIT, MEAN_LIMIT).permute(0, 2, 3, 1)
        inv = self.inv_scales[:, :, t].permute(0, 2, 3, 1)
        return Logistics(torch.zeros_like(means), means, inv)

    def _log2_weights(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """(N, H, W, K): log2 π_k plus the log2 mass of every channel before ``t``."""
        total = self.log2_pi.permute(0, 2, 3, 1)
        for c in range(t):
            total = total + self._channel(x, c).component_log2_mass(x[:, c])
        return total

    def step(self, x: torch.Tensor, t: int) -> Logistics:
        comp = self._channel(x, t)
        return Logistics(softmax2_weights(self._log2_weights(x, t)), comp.means, comp.inv_scales)

    def parallel(self, x: torch.Tensor) -> list[Logistics]:
        """The three channels' distributions given the true pixels (teacher forcing)."""
        return [self.step(x, t) for t in range(3)]

    # --- the Autoregressive contract ---------------------------------------------------
    def reset(self) -> None:
        self._x = torch.zeros(self.shape, dtype=torch.uint8)

    def step_index(self, t: int) -> tuple[slice, slice]:
        return slice(None), slice(t, t + 1)

    def step_distribution(self, t: int) -> Logistics:
        assert self._x is not None
        return self.step(self._x, t)

    def write(self, t: int, values: torch.Tensor) -> None:
        assert self._x is not None
        self._x[:, t : t + 1] = values.view(self._x[:, t : t + 1].shape)
