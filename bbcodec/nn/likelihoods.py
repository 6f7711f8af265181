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


def logistic_mixture_log_prob(obs: LogisticMixture, x: torch.Tensor) -> torch.Tensor:
    """log p(x) per pixel, shape (N, C, H, W), with tail mass in the edge bins."""
    xs = pixels_to_unit(x).unsqueeze(1)
    means = obs.means.float()
    log_scales = obs.log_scales.float().clamp(min=LOG_SCALE_FLOOR)
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
    log_probs = torch.where(
        xs < -0.999, log_cdf_plus, torch.where(xs > 0.999, log_one_minus_cdf_min, log_mid)
    )
    return torch.logsumexp(log_probs + F.log_softmax(obs.logits.float(), dim=1), dim=1)


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
