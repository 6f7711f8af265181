"""Training objective and likelihood bounds, driven through the coder's contract.

Both the ELBO and the IWAE bound walk the model with :func:`bbcodec.walk.walk`, like the
bits-back coder does, so what training optimises is what the coder pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bbcodec.contract import GaussianLatent, InferredLatent, LatentEvent, LatentModel
from bbcodec.nn.likelihoods import gaussian_kl, gaussian_log_prob, observation_log_prob
from bbcodec.walk import identity, walk

LN2 = math.log(2.0)


@dataclass
class ElboTerms:
    """Per-image terms in nats: reconstruction NLL and KL of every latent layer."""

    nll: torch.Tensor  # (N,)
    kl_per_layer: list[torch.Tensor]  # each (N, C, H, W), per dimension

    def negative_elbo(self) -> torch.Tensor:
        """−ELBO per image in nats, shape (N,)."""
        total = self.nll
        for kl in self.kl_per_layer:
            total = total + kl.flatten(1).sum(1)
        return total


def inferred_kl_estimate(posterior: InferredLatent, prior: GaussianLatent, z: torch.Tensor) -> torch.Tensor:
    """Unbiased one-sample estimate of an inferred latent's KL term, per dimension, in nats.

    Why not the closed-form KL: the layers between the inference pass and this
    latent's prior (BIVA's top-down latents above it) read the *sampled* value
    through the bottom-up features, so the prior p(z | z_above) is correlated with
    the very noise that drew z. The closed form KL(q || p(. | z_above)) treats z as a
    fresh draw and underestimates the ELBO's term; a model trained on it learns to
    exploit the gap (biva-mnist: 1.061 bits/dim claimed against 1.092 paid by the
    coder on 200 digits, all of it in the bottom-up parts). The coder pays
    ``log q(z) − log p(z | z_above)`` at the value it actually sent, so that is
    what is estimated here: q's own log density by its closed-form expectation
    (nothing downstream touches q), the prior's at the sample.
    """
    neg_entropy = -torch.log(posterior.post_std) - 0.5 * math.log(2 * math.pi * math.e)
    return neg_entropy - gaussian_log_prob(z, prior.prior_mean, prior.prior_std)


def elbo_terms(model: LatentModel, x: torch.Tensor, sample: bool = True) -> ElboTerms:
    """One reparameterised pass (``sample=False`` uses posterior means).

    An inferred latent (:class:`~bbcodec.contract.InferredLatent`) is sampled where
    it is yielded; its KL term is taken at its prior event, at the sample (see
    :func:`inferred_kl_estimate`).
    """
    def choose(event: LatentEvent) -> torch.Tensor:
        assert event.post_mean is not None and event.post_std is not None
        return event.post_mean + event.post_std * torch.randn_like(event.post_mean) if sample else event.post_mean

    out = walk(model, x, tuple(x.shape), choose, identity)
    posterior_of = {event.key: event for event, _ in out.posteriors if isinstance(event, InferredLatent)}
    kls = [inferred_kl_estimate(posterior_of[event.inferred], event, z) if event.inferred is not None
           else gaussian_kl(event) for event, z in out.priors]
    nll = -observation_log_prob(out.observation, x).flatten(1).sum(1)
    return ElboTerms(nll=nll, kl_per_layer=kls)


def _posterior_sample(event: LatentEvent) -> torch.Tensor:
    return event.post_mean + event.post_std * torch.randn_like(event.post_mean)


@torch.no_grad()
def iwae_bound(model: LatentModel, x: torch.Tensor, k: int, chunk: int = 16) -> torch.Tensor:
    """−L_k per image in nats (Burda et al.): −log mean_k p(x, z_k) / q(z_k | x)."""
    log_weights = []
    for start in range(0, k, chunk):
        reps = min(chunk, k - start)
        xr = x.repeat_interleave(reps, dim=0)
        out = walk(model, xr, tuple(xr.shape), _posterior_sample, identity)
        log_w = observation_log_prob(out.observation, xr).flatten(1).sum(1).double()
        for event, z in out.posteriors:
            log_w -= gaussian_log_prob(z, event.post_mean, event.post_std).flatten(1).sum(1).double()
        for event, z in out.priors:
            log_w += gaussian_log_prob(z, event.prior_mean, event.prior_std).flatten(1).sum(1).double()
        log_weights.append(log_w.view(x.shape[0], reps))
    all_w = torch.cat(log_weights, dim=1)
    return -(torch.logsumexp(all_w, dim=1) - math.log(k))
