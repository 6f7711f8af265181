"""The integer model's own rate: −ELBO in bits, computed by the coding path's tables.

Bits-back's expected net cost per image is exactly
``E_{z ~ Q}[−log2 P(x | z) − log2 P(z) + log2 Q(z)]`` with P and Q the integer
frequency tables the coder uses (latents on their 2^p bins). This module estimates
it with one draw of ``z`` per image from the format's random stream, so it is the
number a model's card states and the file rate is measured against.
"""

from __future__ import annotations

import numpy as np
import torch

from bbcodec.contract import Autoregressive, GaussianLatent, LatentEvent, LatentModel
from bbcodec.exact.coupled import CoupledLogistics
from bbcodec.exact.distributions import LOG2_FRAC, BernoulliPixels, Logistics, frequency_log2, gaussian_bin_frequencies
from bbcodec.exact.local import ExactPixelSteps
from bbcodec.exact.random import Stream, sample
from bbcodec.walk import LatentWalk, walk_latents

ROWS_AT_ONCE = 1 << 14  # pixels whose tables are built together (bounds memory)
BOUND_STREAM = 0x454C424F  # the stream the bound's latent draws come from


def _per_image(log2: torch.Tensor, n: int) -> torch.Tensor:
    return log2.view(n, -1).sum(1)


def pixel_log2(dist: Logistics | BernoulliPixels, x: torch.Tensor) -> torch.Tensor:
    """log2 P(x) per image (2^-20 bits, int64) of a factorised distribution of ``x``'s pixels."""
    flat = dist.flat() if isinstance(dist, Logistics) else BernoulliPixels(dist.p_one.reshape(-1))
    symbols = x.reshape(-1).to(torch.int64)
    out = torch.empty(len(symbols), dtype=torch.int64)
    for lo in range(0, len(symbols), ROWS_AT_ONCE):
        hi = min(lo + ROWS_AT_ONCE, len(symbols))
        rows = (Logistics(flat.weights[lo:hi], flat.means[lo:hi], flat.inv_scales[lo:hi])
                if isinstance(flat, Logistics) else BernoulliPixels(flat.p_one[lo:hi]))
        out[lo:hi] = frequency_log2(rows.frequencies(), symbols[lo:hi])
    return _per_image(out, x.shape[0])


def observation_log2(obs: object, x: torch.Tensor) -> torch.Tensor:
    """log2 P(x | z) per image (2^-20 bits) under any integer observation model."""
    n = x.shape[0]
    if isinstance(obs, ExactPixelSteps):
        obs = obs.parallel_distribution(x)
    if isinstance(obs, CoupledLogistics):
        return sum(pixel_log2(dist, x[:, t]) for t, dist in enumerate(obs.parallel(x)))
    if isinstance(obs, Autoregressive):
        raise TypeError(f"{type(obs).__name__} has no teacher-forced pass")
    # channels-last layouts (N, H, W, K) and (N, C, H, W, K) both follow x's pixel order per image
    return pixel_log2(obs, x.reshape(n, -1))


def posterior_frequencies(event: LatentEvent, precision: int) -> torch.Tensor:
    """(dims, 2^p) the posterior's frequencies on the event's bins (the prior's, or static ones)."""
    if event.static_bins:
        return gaussian_bin_frequencies(event.post_mean, event.post_std, precision)
    return gaussian_bin_frequencies(event.post_mean, event.post_std, precision, event.prior_mean, event.prior_std)


def posterior_log2(event: LatentEvent, indices: torch.Tensor, precision: int) -> torch.Tensor:
    """log2 Q(bin) (2^-20 bits) of the chosen bins under the posterior's table, per image."""
    return _per_image(frequency_log2(posterior_frequencies(event, precision), indices), event.shape[0])


def prior_log2(event: GaussianLatent, indices: torch.Tensor, precision: int) -> torch.Tensor:
    """log2 P(bin) (2^-20 bits) of the chosen bins under the prior's table, per image: exactly
    −p bits per dimension on the prior's own equal-mass bins."""
    n = event.shape[0]
    if not event.static_bins:
        return torch.full((n,), -precision * (event.prior_mean[0].numel() << LOG2_FRAC), dtype=torch.int64)
    freqs = gaussian_bin_frequencies(event.prior_mean, event.prior_std, precision)
    return _per_image(frequency_log2(freqs, indices), n)


def log2_weights(walk: LatentWalk, x: torch.Tensor, precision: int) -> torch.Tensor:
    """log2 [P(x | z) P(z) / Q(z)] per image (2^-20 bits) of a walk with ``x`` known: the
    negative of what bits-back pays for it (importance weights, bounds)."""
    total = observation_log2(walk.observation, x)
    for event, idx in walk.priors:
        total = total + prior_log2(event, torch.from_numpy(np.asarray(idx)), precision)
    for event, idx in walk.posteriors:
        total = total - posterior_log2(event, torch.from_numpy(np.asarray(idx)), precision)
    return total


def negative_elbo_bits(model: LatentModel, x: np.ndarray, precision: int, key: int = BOUND_STREAM) -> np.ndarray:
    """One-draw −ELBO per image in bits under the integer tables (``x`` uint8 (N, C, H, W))."""
    xt = torch.from_numpy(np.array(x))
    stream = Stream(key)

    def draw(event: LatentEvent) -> np.ndarray:
        freqs = posterior_frequencies(event, precision)
        return sample(freqs, stream.next(len(freqs))).numpy()

    walk = walk_latents(model, xt, tuple(x.shape), precision, draw)
    return (-log2_weights(walk, xt, precision).double() / (1 << LOG2_FRAC)).numpy()


