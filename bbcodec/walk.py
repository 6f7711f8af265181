"""Walking a model's latent events for a coder: which bins were chosen, in which order.

Bits-back is an ordering discipline. The encoder pops every posterior in the order
the model yields them, pushes ``x``, then pushes every prior in reverse; the decoder
pops the priors in the model's generative order, pops ``x``, and pushes the
posteriors back in reverse. A plain top-down model yields one event per layer that
carries both. A model with an inference pass (BIVA's bottom-up latents, see
:class:`~bbcodec.contract.InferredLatent`) yields posteriors whose priors come
later, so a walk keeps the two orders apart: :attr:`LatentWalk.posteriors` and
:attr:`LatentWalk.priors`. Every coder (plain, anchored, importance-weighted) builds
on this one walk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack
from bbcodec.contract import GaussianLatent, InferredLatent, LatentEvent, LatentModel, ObservationModel

Pick = TypeVar("Pick")  # what a walk chooses per event: bin indices, quantised integers, a float sample
Choose = Callable[[LatentEvent], np.ndarray]


@dataclass
class LatentWalk(Generic[Pick]):
    """What a walk chose per event, in the two orders bits-back needs."""

    posteriors: list[tuple[LatentEvent, Pick]] = field(default_factory=list)  # pop order (encoder)
    priors: list[tuple[GaussianLatent, Pick]] = field(default_factory=list)  # generative order
    observation: ObservationModel | None = None  # None when the walk stopped early
    values: list[torch.Tensor] = field(default_factory=list)  # handed back at each prior event, in order

    def pop_pixels(self, stack: Stack) -> np.ndarray:
        """The pixels popped from ``stack`` under this walk's p(x | z), which is then let go:
        a decoder walks back with the pixels and no longer needs it, and its conditioning
        (hundreds of MB for a group of photo tiles) was the decoder's peak memory."""
        x = codecs.pixels(self.observation).pop(stack)
        self.observation = None
        return x


def walk(model: LatentModel, x: torch.Tensor | None, shape: tuple[int, int, int, int],
         choose: Callable[[LatentEvent], Pick], value_of: Callable[[LatentEvent, Pick], torch.Tensor],
         n_priors: int | None = None, known: list[torch.Tensor] | None = None) -> LatentWalk[Pick]:
    """Walk ``model``'s events; ``choose`` picks each event's value, ``value_of`` turns a
    pick into the latent value handed back to the model.

    ``choose`` is asked for every inferred latent and every top-down layer. The prior
    event of a latent inferred earlier in the same walk reuses that latent's pick
    (its value is fixed); when nothing was inferred (decoding, ``x`` is None) it is
    asked like any layer. With ``n_priors`` the walk stops after that many prior
    events, skipping the rest of the network (a decoder's second pass needs only
    the posteriors). ``known``: the values an earlier walk handed back at its prior
    events (its :attr:`LatentWalk.values`), when this walk will hand back the same: a
    model that can (``takes_known_latents``) then computes its priors in one pass
    instead of one event at a time. Coding, the bounds, lossy quantisation and the
    tests all walk here.
    """
    out: LatentWalk[Pick] = LatentWalk()
    inferred: dict[str, Pick] = {}
    if known is not None and getattr(model, "takes_known_latents", False):
        steps = model.latent_steps(x, shape, known=known)
    else:
        steps = model.latent_steps(x, shape)
    event = next(steps)
    while True:
        if isinstance(event, InferredLatent):
            pick = inferred[event.key] = choose(event)
            out.posteriors.append((event, pick))
            value = value_of(event, pick)
        else:
            if event.inferred is not None and event.inferred in inferred:
                pick = inferred[event.inferred]
            else:
                pick = choose(event)
                if event.post_mean is not None:
                    out.posteriors.append((event, pick))
            out.priors.append((event, pick))
            value = value_of(event, pick)
            out.values.append(value)
            if n_priors is not None and len(out.priors) == n_priors:
                steps.close()
                return out
        try:
            event = steps.send(value)
        except StopIteration as stop:
            out.observation = stop.value
            return out


def walk_latents(model: LatentModel, x: torch.Tensor | None, shape: tuple[int, int, int, int], precision: int,
                 choose: Choose, n_priors: int | None = None,
                 known: list[torch.Tensor] | None = None) -> LatentWalk[np.ndarray]:
    """:func:`walk` with bin indices of the coder's latent bins (``precision`` bits)."""
    return walk(model, x, shape, choose, lambda event, idx: codecs.latent_values(event, idx, precision), n_priors,
                known)


def identity(event: LatentEvent, value: torch.Tensor) -> torch.Tensor:
    """A ``value_of`` for walks that choose latent values themselves (bounds, tests)."""
    return value


def replay(priors: list[tuple[GaussianLatent, np.ndarray]]) -> Choose:
    """A ``choose`` that re-walks with ``x`` known and hands back what a walk without
    ``x`` decoded: inferred latents by key, top-down layers in order."""
    by_key = {event.inferred: idx for event, idx in priors if event.inferred is not None}
    in_order = iter([idx for event, idx in priors if event.inferred is None])

    def choose(event: LatentEvent) -> np.ndarray:
        if isinstance(event, InferredLatent):
            return by_key[event.key]
        return next(in_order)

    return choose
