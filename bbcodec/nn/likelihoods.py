"""Log-likelihoods used for training; the coder's fixed-point tables mirror them.

Kept in float32 on purpose: under bf16 autocast a logistic mean is rounded to about
half a pixel bin, which silently costs rate (DESIGN.md §7).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from bbcodec.contract import Autoregressive, Bernoulli, GaussianLatent, LogisticMixture, ObservationModel

BIN_HALF_WIDTH = 1.0 / 255.0
LOG_SCALE_FLOOR = -7.0


def pixels_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float in [-1, 1], bin centres."""
    return x.float() * (2.0 / 255.0) - 1.0


def logistic_component_log_probs(means: torch.Tensor, log_scales: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p_k(x) of every mixture component, (N, K, C, H, W), tail mass in the edge bins."""
    xs = pixels_to_unit(x).unsqueeze(1)
    means = means.float()
    log_scales = log_scales.float().clamp(min=LOG_SCALE_FLOOR)
    inv_s = torch.exp(-log_scales)
    centered = xs - means
    plus_in = inv_s * (centered + BIN_HALF_WIDTH)
    min_in = inv_s * (centered - BIN_HALF_WIDTH)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): bin of value 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid(min_in)): bin of 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    # Where the bin mass underflows float32 use the density at the bin centre.
    log_mid = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid - math.log(127.5),
    )
    return torch.where(xs < -0.999, log_cdf_plus, torch.where(xs > 0.999, log_one_minus_cdf_min, log_mid))


def logistic_mixture_log_prob(obs: LogisticMixture, x: torch.Tensor) -> torch.Tensor:
    """log p(x) per pixel, shape (N, C, H, W), with tail mass in the edge bins."""
    log_probs = logistic_component_log_probs(obs.means, obs.log_scales, x)
    return torch.logsumexp(log_probs + F.log_softmax(obs.logits.float(), dim=1), dim=1)


class CoupledLogistics:
    """RGB pixels under a PixelCNN++ mixture: one mixture component shared by the
    three channels, and each channel's mean shifted linearly by the channels before it.

    Channels are *coded* in order R, G, B (an :class:`~bbcodec.contract.Autoregressive`
    model with three steps): step c is a logistic mixture over channel c of every
    pixel whose component weights are the posterior responsibilities given the
    channels already coded, so the three steps multiply to the joint mixture exactly.
    Shapes: ``logits`` (N, K, H, W); ``means``, ``log_scales``, ``coeffs`` (N, K, 3, H, W).
    """

    num_steps = 3

    def __init__(self, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, coeffs: torch.Tensor) -> None:
        self.logits, self.means, self.log_scales = logits.float(), means.float(), log_scales.float()
        self.coeffs = torch.tanh(coeffs.float())
        n, _, _, h, w = means.shape
        self.shape = (n, 3, h, w)
        self._x: torch.Tensor | None = None

    def _channel_means(self, x: torch.Tensor) -> torch.Tensor:
        """Means of R, G, B given the (known) channels before each: (N, K, 3, H, W)."""
        u = pixels_to_unit(x).unsqueeze(1)  # (N, 1, 3, H, W)
        m = self.means
        g = m[:, :, 1] + self.coeffs[:, :, 0] * u[:, :, 0]
        b = m[:, :, 2] + self.coeffs[:, :, 1] * u[:, :, 0] + self.coeffs[:, :, 2] * u[:, :, 1]
        return torch.stack([m[:, :, 0], g, b], dim=2)

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        return logistic_component_log_probs(self._channel_means(x), self.log_scales, x)  # (N, K, 3, H, W)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(r, g, b) per pixel, (N, 1, H, W)."""
        joint = self._component_log_probs(x).sum(dim=2) + F.log_softmax(self.logits, dim=1)
        return torch.logsumexp(joint, dim=1).unsqueeze(1)

    def reset(self) -> None:
        self._x = torch.zeros(self.shape, dtype=torch.uint8)

    def step_index(self, t: int) -> tuple[slice, slice]:
        return slice(None), slice(t, t + 1)

    def step_distribution(self, t: int) -> LogisticMixture:
        assert self._x is not None
        means = self._channel_means(self._x)[:, :, t : t + 1]
        weights = F.log_softmax(self.logits, dim=1)
        if t > 0:  # responsibilities of the components given the channels already coded
            weights = weights + self._component_log_probs(self._x)[:, :, :t].sum(dim=2)
        return LogisticMixture(weights.unsqueeze(2), means, self.log_scales[:, :, t : t + 1])

    def write(self, t: int, values: torch.Tensor) -> None:
        assert self._x is not None
        self._x[:, t : t + 1] = values.view(self._x[:, t : t + 1].shape)


def bernoulli_log_prob(obs: Bernoulli, x: torch.Tensor) -> torch.Tensor:
    """log p(x) per pixel for binary x (uint8 0/1)."""
    return -F.binary_cross_entropy_with_logits(obs.logits.float(), x.float(), reduction="none")


def observation_log_prob(obs: ObservationModel, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) per pixel (N, C, H, W) for any observation model of the contract."""
    if isinstance(obs, LogisticMixture):
        return logistic_mixture_log_prob(obs, x)
    if isinstance(obs, Bernoulli):
        return bernoulli_log_prob(obs, x)
    if isinstance(obs, Autoregressive):
        return obs.log_prob(x)
    raise TypeError(f"unknown observation model {type(obs).__name__}")


def gaussian_kl(layer: GaussianLatent) -> torch.Tensor:
    """KL(q || p) per latent dimension for diagonal Gaussians, in nats."""
    assert layer.post_mean is not None and layer.post_std is not None
    var_ratio = (layer.post_std / layer.prior_std) ** 2
    mean_term = ((layer.post_mean - layer.prior_mean) / layer.prior_std) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio))


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, std) per dimension (used by the IWAE bound)."""
    return -0.5 * (((z - mean) / std) ** 2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
