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
the network work for the latents and K times the bits borrowed before any return,
which is why a chain warms up on plain groups until the stack can lend that much
(:mod:`bbcodec.bitsback`), and why K-sample groups stay smaller than plain ones.

Exactness: the weights are sums of log2 frequencies of the coder's own integer
tables (:func:`bbcodec.exact.bounds.log2_weights`) and the index's table is an
integer softmax of them, so encoder and decoder agree on every machine; the K
copies of image i are rows i·K … i·K+K−1 of one batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack
from bbcodec.contract import InferredLatent, LatentEvent, LatentModel
from bbcodec.exact.bounds import log2_weights
from bbcodec.exact.distributions import softmax2_frequencies
from bbcodec.walk import LatentWalk, replay

Walk = Callable[..., LatentWalk]


def restricted(event: LatentEvent, keep: torch.Tensor) -> LatentEvent:
    """The event restricted to the batch rows ``keep`` (a boolean mask)."""
    def sub(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[keep]

    if isinstance(event, InferredLatent):
        return InferredLatent(event.key, event.post_mean[keep], event.post_std[keep])
    return dataclasses.replace(event, prior_mean=event.prior_mean[keep], prior_std=event.prior_std[keep],
                               post_mean=sub(event.post_mean), post_std=sub(event.post_std))


class ImportanceWeighted:
    """Importance-weighted bits-back for one group (:func:`bbcodec.bbans.importance_weighted`)."""

    def __init__(self, model: LatentModel, walk: Walk, precision: int, samples: int) -> None:
        if samples < 2:
            raise ValueError("importance weighting needs at least 2 samples")
        self.model, self.walk, self.p, self.k = model, walk, precision, samples

    def _index_codec(self, xk: torch.Tensor, walk: LatentWalk) -> codecs.Codec:
        """The index j over each image's K copies, with frequencies ∝ the importance
        weights P(x, z_k) / Q(z_k) computed from the coder's own integer tables."""
        log_w = log2_weights(walk, xk, self.p).view(-1, self.k)
        return codecs.categorical(softmax2_frequencies(log_w))

    def _copies(self, x: np.ndarray) -> torch.Tensor:
        xt = torch.from_numpy(np.ascontiguousarray(x)).repeat_interleave(self.k, dim=0)
        return xt

    def _chosen(self, j: np.ndarray) -> np.ndarray:
        """Boolean mask over the N·K copies: the copy ``j[i]`` of every image ``i``."""
        chosen = np.zeros((len(j), self.k), dtype=bool)
        chosen[np.arange(len(j)), j.astype(np.int64)] = True
        return chosen.ravel()

    def encode(self, stack: Stack, x: np.ndarray) -> int:
        """Code the batch ``x`` (N, C, H, W); returns the bits popped."""
        n, p = len(x), self.p
        xk = self._copies(x)
        before = stack.num_bits()
        walk = self.walk(xk, tuple(xk.shape), lambda event: codecs.posterior_on_prior_bins(event, p).pop(stack))
        j = self._index_codec(xk, walk).pop(stack)
        stack.ensure_not_drained()
        popped = before - stack.num_bits()
        chosen = self._chosen(j)
        others = torch.from_numpy(~chosen)
        for event, idx in reversed(walk.posteriors):
            codecs.posterior_on_prior_bins(restricted(event, others), p).push(stack, idx.reshape(len(xk), -1)[~chosen])
        picked = iter([idx.reshape(len(xk), -1)[chosen].ravel() for _, idx in walk.posteriors])
        xt = torch.from_numpy(np.ascontiguousarray(x))
        selected = self.walk(xt, tuple(x.shape), lambda event: next(picked))
        codecs.pixels(selected.observation).push(stack, x)
        for event, idx in reversed(selected.priors):
            codecs.prior_bins(event, p).push(stack, idx)
        codecs.uniform(self.k, n).push(stack, j)
        return popped

    def decode(self, stack: Stack, shape: tuple[int, int, int, int]) -> np.ndarray:
        """Exact inverse of :meth:`encode`."""
        n, k, p = shape[0], self.k, self.p
        j = codecs.uniform(k, n).pop(stack).astype(np.int64)
        selected = self.walk(None, shape, lambda event: codecs.prior_bins(event, p).pop(stack))
        x = selected.pop_pixels(stack)
        xk = self._copies(x)
        chosen = self._chosen(j)
        others = torch.from_numpy(~chosen)
        known = replay(selected.priors)

        def pop_others(event: LatentEvent) -> np.ndarray:
            dims = event.shape[1:].numel()
            full = np.empty((n * k, dims), dtype=np.int64)
            full[chosen] = known(event).reshape(n, dims)
            full[~chosen] = codecs.posterior_on_prior_bins(restricted(event, others), p).pop(stack).reshape(-1, dims)
            return full.ravel()

        walk = self.walk(xk, tuple(xk.shape), pop_others)
        self._index_codec(xk, walk).push(stack, j)
        for event, idx in reversed(walk.posteriors):
            codecs.posterior_on_prior_bins(event, p).push(stack, idx)
        return x
