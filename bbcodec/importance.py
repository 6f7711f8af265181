"""Importance-weighted (Monte Carlo) bits-back: pay about −log (1/K Σ_k w_k), the IWAE
bound, instead of the negative ELBO (Ruan et al. 2021, "Improving Lossless
Compression Rates via Monte Carlo Bits-Back Coding"; Burda et al. 2016).

With ``K`` posterior samples ``z_1..z_K`` and weights ``w_k = p(x, z_k) / q(z_k | x)``,
the coder works on the extended space (z_1..z_K, j):

    encode:  pop z_1..z_K ~ q(z | x)            (K × the bits plain bits-back borrows)
             pop j ~ Categorical(w / Σ w)        (borrows the index too)
             push z_k, k ≠ j, under q(z | x)     (returns what the others borrowed)
             push x | z_j;  push z_j under p(z); push j uniformly (log2 K bits)
    decode:  the same steps in reverse, each pop undoing a push.

Net cost per image: −log p(x, z_j) + log K − Σ_{k≠j} (−log q(z_k)) ... which in
expectation over the encoder's pops is −log (1/K Σ_k w_k): the IWAE bound −L_K,
tighter than −ELBO = −L_1 and tending to −log p(x) as K grows. The price is K times
the network work for the latents and K times the borrowed bits at the start of a
chain (the anchor image pays no borrowed bits at all; see :mod:`bbcodec.bitsback`).

Exactness: the K copies of a group are one batch of N·K (image-major: the K copies
of image i are rows i·K … i·K+K−1), walked with the same ``x`` by encoder and
decoder; ``z_j`` alone is walked as a batch of N on both sides. Every weight is
then computed by identical calls on identical inputs (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack
from bbcodec.contract import GaussianLatent, LatentModel
from bbcodec.nn.likelihoods import observation_log_prob

Walk = Callable[..., tuple[list[GaussianLatent], list[np.ndarray], object]]


def rows(layer: GaussianLatent, keep: torch.Tensor) -> GaussianLatent:
    """The layer restricted to the batch rows ``keep`` (a boolean mask)."""
    def sub(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[keep]

    return GaussianLatent(layer.prior_mean[keep], layer.prior_std[keep], sub(layer.post_mean), sub(layer.post_std),
                          layer.static_bins)


def bin_log_mass(mean: torch.Tensor, std: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """log of the N(mean, std) mass in [lower, upper), in float64 (tails kept accurate)."""
    a = ((lower.double() - mean.double()) / std.double())
    b = ((upper.double() - mean.double()) / std.double())
    # Upper tail: Φ(b) − Φ(a) = Φ(−a) − Φ(−b), which does not round to 0.
    flip = a > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    return torch.log((torch.special.ndtr(hi) - torch.special.ndtr(lo)).clamp(min=1e-300))


def layer_log_ratio(layer: GaussianLatent, indices: np.ndarray, precision: int) -> torch.Tensor:
    """Σ over a layer's dimensions of log P(bin) − log Q(bin), per batch row (float64)."""
    edges, _ = codecs.standard_quantiles(precision)
    inf = torch.tensor([float("inf")])
    padded = torch.cat([-inf, edges.double(), inf])
    idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).view(layer.prior_mean.shape)
    lower, upper = padded[idx], padded[idx + 1]  # standard-normal edges of each chosen bin
    if layer.static_bins:
        log_p = bin_log_mass(layer.prior_mean, layer.prior_std, lower, upper)
        zl, zu = lower, upper
    else:  # every bin of the prior's own equal-mass grid has mass 2^-p
        log_p = torch.full(idx.shape, -precision * np.log(2.0), dtype=torch.float64)
        zl = layer.prior_mean.double() + layer.prior_std.double() * lower
        zu = layer.prior_mean.double() + layer.prior_std.double() * upper
    assert layer.post_mean is not None and layer.post_std is not None
    log_q = bin_log_mass(layer.post_mean, layer.post_std, zl, zu)
    return (log_p - log_q).flatten(1).sum(1)


class ImportanceWeighted:
    """The importance-weighted group codec of a :class:`~bbcodec.bitsback.BitsBackCoder`."""

    def __init__(self, model: LatentModel, walk: Walk, precision: int, samples: int) -> None:
        if samples < 2:
            raise ValueError("importance weighting needs at least 2 samples")
        self.model, self.walk, self.p, self.k = model, walk, precision, samples

    def _log_weights(self, xk: torch.Tensor, layers: list[GaussianLatent], indices: list[np.ndarray], obs) -> torch.Tensor:
        """log w_k per copy, shape (N, K): log p(x | z_k) + Σ_l [log P(bin) − log Q(bin)]."""
        log_px = observation_log_prob(obs, xk).flatten(1).sum(1).double()
        ratio = sum(layer_log_ratio(layer, idx, self.p) for layer, idx in zip(layers, indices))
        return (log_px + ratio).view(-1, self.k)

    def _index_codec(self, log_w: torch.Tensor) -> codecs.Codec:
        return codecs.categorical(torch.softmax(log_w, dim=1).float())

    def _copies(self, x: np.ndarray) -> torch.Tensor:
        xt = torch.from_numpy(np.ascontiguousarray(x)).repeat_interleave(self.k, dim=0)
        return xt.contiguous(memory_format=torch.channels_last)

    def encode(self, stack: Stack, x: np.ndarray) -> int:
        """Code the batch ``x`` (N, C, H, W); returns the bits popped."""
        n, k, p = len(x), self.k, self.p
        xk = self._copies(x)
        before = stack.num_bits()
        layers, indices, obs = self.walk(xk, tuple(xk.shape), lambda layer: codecs.posterior_on_prior_bins(layer, p).pop(stack))
        j = self._index_codec(self._log_weights(xk, layers, indices, obs)).pop(stack)
        stack.ensure_not_drained()
        popped = before - stack.num_bits()
        chosen = torch.zeros(n, k, dtype=torch.bool)
        chosen[torch.arange(n), torch.from_numpy(j.astype(np.int64))] = True
        chosen = chosen.flatten()
        for layer, idx in zip(reversed(layers), reversed(indices)):
            codecs.posterior_on_prior_bins(rows(layer, ~chosen), p).push(stack, idx.reshape(len(xk), -1)[~chosen.numpy()])
        picked = [idx.reshape(len(xk), -1)[chosen.numpy()].ravel() for idx in indices]
        replay = iter(picked)
        xt = torch.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=torch.channels_last)
        sel_layers, _, sel_obs = self.walk(xt, tuple(x.shape), lambda layer: next(replay))
        codecs.pixels(sel_obs).push(stack, x)
        for layer, idx in zip(reversed(sel_layers), reversed(picked)):
            codecs.prior_bins(layer, p).push(stack, idx)
        codecs.uniform(k, n).push(stack, j)
        return popped

    def decode(self, stack: Stack, shape: tuple[int, int, int, int]) -> np.ndarray:
        """Exact inverse of :meth:`encode`."""
        n, k, p = shape[0], self.k, self.p
        j = codecs.uniform(k, n).pop(stack).astype(np.int64)
        picked: list[np.ndarray] = []

        def pop_prior(layer: GaussianLatent) -> np.ndarray:
            picked.append(codecs.prior_bins(layer, p).pop(stack))
            return picked[-1]

        _, _, sel_obs = self.walk(None, shape, pop_prior)
        x = codecs.pixels(sel_obs).pop(stack)
        xk = self._copies(x)
        chosen = torch.zeros(n, k, dtype=torch.bool)
        chosen[torch.arange(n), torch.from_numpy(j)] = True
        chosen = chosen.flatten()
        known = iter(picked)

        def pop_others(layer: GaussianLatent) -> np.ndarray:
            dims = layer.prior_mean[0].numel()
            full = np.empty((n * k, dims), dtype=np.int64)
            full[chosen.numpy()] = next(known).reshape(n, dims)
            full[~chosen.numpy()] = codecs.posterior_on_prior_bins(rows(layer, ~chosen), p).pop(stack).reshape(-1, dims)
            return full.ravel()

        layers, indices, obs = self.walk(xk, tuple(xk.shape), pop_others)
        self._index_codec(self._log_weights(xk, layers, indices, obs)).push(stack, j)
        for layer, idx in zip(reversed(layers), reversed(indices)):
            codecs.posterior_on_prior_bins(layer, p).push(stack, idx)
        return x
