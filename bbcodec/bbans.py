"""One group's codecs: each a push/pop pair over the ANS stack for a batch of images.

Built on the one walk of the model contract (:mod:`bbcodec.walk`), in craystack's
BBANS shape (Townsend et al. 2019)::

    bits_back            push: pop z ~ Q(z | x); push x ~ P(x | z); push z ~ P(z)
    anchor               push: push x ~ P(x | ẑ); push ẑ outright (quantised posterior means)
    importance_weighted  bits-back over K posterior samples (bbcodec.importance)
    lossy_latents        a lossy file's group: the quantised latent code alone (bbcodec.lossy)

``push(stack, x)`` codes ``x`` (N, C, H, W) uint8 and returns the bits it borrowed
from the stack (the chain scheduler budgets the next group with it);
``pop(stack, shape)`` is its exact inverse. The lossy latent code pushes the
quantised integers themselves and pops them back with p(x | ẑ), from which
:mod:`bbcodec.lossy` draws the picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack
from bbcodec.contract import LatentModel, ObservationModel
from bbcodec.exact.bounds import observation_log2
from bbcodec.exact.distributions import LOG2_FRAC
from bbcodec.importance import ImportanceWeighted
from bbcodec.quantised import Sent, pop_layer, push_symbols, quantised_walk, sent_bits, walk_posterior_means
from bbcodec.walk import Choose, LatentWalk, replay, walk_latents

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class GroupCodec:
    """A push/pop pair for one group of images (see the module docstring)."""

    push: Callable[[Stack, np.ndarray], int]
    pop: Callable[[Stack, Shape], np.ndarray]


def as_input(x: np.ndarray) -> torch.Tensor:
    """uint8 pixels as a tensor (a copy: torch wants writable memory)."""
    return torch.from_numpy(np.array(x))


def _walker(model: LatentModel, precision: int) -> Callable[..., LatentWalk]:
    def walk(x: torch.Tensor | None, shape: Shape, choose: Choose, n_priors: int | None = None,
             known: list[torch.Tensor] | None = None) -> LatentWalk:
        return walk_latents(model, x, shape, precision, choose, n_priors, known)

    return walk


def bits_back(model: LatentModel, precision: int) -> GroupCodec:
    """Plain bits-back on the prior's 2^precision equal-mass bins per latent dimension."""
    walk = _walker(model, precision)

    @torch.no_grad()
    def push(stack: Stack, x: np.ndarray) -> int:
        before = stack.num_bits()
        inferred = walk(as_input(x), tuple(x.shape),
                        lambda event: codecs.posterior_on_prior_bins(event, precision).pop(stack))
        stack.ensure_not_drained()
        popped = before - stack.num_bits()
        codecs.pixels(inferred.observation).push(stack, x)
        for layer, idx in reversed(inferred.priors):
            codecs.prior_bins(layer, precision).push(stack, idx)
        return popped

    @torch.no_grad()
    def pop(stack: Stack, shape: Shape) -> np.ndarray:
        decoded = walk(None, shape, lambda layer: codecs.prior_bins(layer, precision).pop(stack))
        x = decoded.pop_pixels(stack)
        again = walk(torch.from_numpy(x), shape, replay(decoded.priors), n_priors=len(decoded.priors),
                     known=decoded.values)
        for event, idx in reversed(again.posteriors):
            codecs.posterior_on_prior_bins(event, precision).push(stack, idx)
        return x

    return GroupCodec(push, pop)


def anchor(model: LatentModel, step: float) -> GroupCodec:
    """Latents sent outright (quantised posterior means, :mod:`bbcodec.quantised`), then
    ``x`` given them: borrows nothing, so it can start a chain on an empty stack."""

    @torch.no_grad()
    def push(stack: Stack, x: np.ndarray) -> int:
        obs, sent = walk_posterior_means(model, as_input(x), step)
        codecs.pixels(obs).push(stack, x)
        push_symbols(stack, sent, step)
        return 0

    @torch.no_grad()
    def pop(stack: Stack, shape: Shape) -> np.ndarray:
        obs, _ = quantised_walk(model, None, shape, step, lambda layer: pop_layer(stack, layer, step))
        return codecs.pixels(obs).pop(stack)

    return GroupCodec(push, pop)


@torch.no_grad()
def anchor_bits(model: LatentModel, x: np.ndarray, step: float) -> float:
    """What :func:`anchor` would push for ``x`` at ``step``, in bits, from the model's own
    probabilities (one parallel pass, even for an autoregressive decoder)."""
    xt = as_input(x)
    obs, sent = walk_posterior_means(model, xt, step)
    pixel_bits = -int(observation_log2(obs, xt).sum()) / (1 << LOG2_FRAC)
    return pixel_bits + sent_bits(sent, step)


def importance_weighted(model: LatentModel, precision: int, samples: int) -> GroupCodec:
    """Bits-back with ``samples`` posterior samples per image (:mod:`bbcodec.importance`)."""
    weighted = ImportanceWeighted(model, _walker(model, precision), precision, samples)
    return GroupCodec(torch.no_grad()(weighted.encode), torch.no_grad()(weighted.decode))


@dataclass(frozen=True)
class LatentCodec:
    """A push/pop pair for one group's quantised latent code (a lossy file sends no ``x``)."""

    push: Callable[[Stack, Sent], None]
    pop: Callable[[Stack, Shape], tuple[ObservationModel, Sent]]


def lossy_latents(model: LatentModel, step: float) -> LatentCodec:
    """The integers of every latent event under its prior discretised at ``step``
    (:mod:`bbcodec.quantised`); pop returns them with p(x | ẑ)."""

    def push(stack: Stack, sent: Sent) -> None:
        push_symbols(stack, sent, step)

    @torch.no_grad()
    def pop(stack: Stack, shape: Shape) -> tuple[ObservationModel, Sent]:
        return quantised_walk(model, None, shape, step, lambda layer: pop_layer(stack, layer, step))

    return LatentCodec(push, pop)
