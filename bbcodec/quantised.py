"""Latents sent outright: quantised in the units of their conditional prior.

Bits-back can only return the posterior's bits when the receiver will know ``x``
and when bits are on the stack to borrow. Two places lack one or the other: a lossy
file (no ``x`` at the receiver) and the first image of a file (nothing to borrow
yet, see :mod:`bbcodec.bitsback`). There the latents are *sent*: each dimension's
posterior mean is expressed as ``ε = (μ_q − μ_p) / σ_p``, rounded to a multiple of
``step`` and coded under a standard normal discretised on the same grid. Both sides
walk the prior top-down with the same quantised values, so they see identical
conditional priors (the quantised latents are the only data).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack, models
from bbcodec.container import LOSSY_STEP_UNIT, MAX_LOSSY_STEP_UNITS, MIN_LOSSY_STEP_UNITS
from bbcodec.contract import GaussianLatent, InferredLatent, LatentEvent, LatentModel, ObservationModel

TAIL = 8.0  # prior standard deviations covered before clipping
STEP_UNIT = LOSSY_STEP_UNIT  # headers store step / STEP_UNIT as an integer
MIN_STEP, MAX_STEP = MIN_LOSSY_STEP_UNITS * STEP_UNIT, MAX_LOSSY_STEP_UNITS * STEP_UNIT


def snap_step(step: float) -> float:
    """The step as a header stores it (a multiple of :data:`STEP_UNIT`)."""
    if not MIN_STEP <= step <= MAX_STEP:
        raise ValueError(f"the quantisation step must lie in [{MIN_STEP}, {MAX_STEP}], got {step}")
    return round(step / STEP_UNIT) * STEP_UNIT


def symbol_range(step: float) -> int:
    """Quantised values run over ``[-m, m]``."""
    return math.ceil(TAIL / step)


def quantiser_masses(step: float) -> np.ndarray:
    """Masses of ``q = -m … m``: a standard normal discretised on the grid ``step · q``
    (tails in the end bins)."""
    m = symbol_range(step)
    edges = (torch.arange(-m, m, dtype=torch.float64) + 0.5) * step
    cdf = torch.special.ndtr(edges)
    return torch.cat([cdf[:1], cdf[1:] - cdf[:-1], 1.0 - cdf[-1:]]).clamp(min=1e-12).numpy()


def quantiser_model(step: float) -> object:
    """The entropy model of the integers ``q`` (see :func:`quantiser_masses`)."""
    return models.Categorical(quantiser_masses(step), perfect=False)


def quantiser_bits(q: np.ndarray, step: float) -> float:
    """Information content of the integers ``q`` under :func:`quantiser_model`, in bits."""
    masses = quantiser_masses(step)
    return float(-np.log2(masses[np.asarray(q) + symbol_range(step)] / masses.sum()).sum())


Sent = list[tuple[GaussianLatent, np.ndarray]]  # the integers of every prior event, in generative order


def quantised_walk(model: LatentModel, x: torch.Tensor | None, shape: tuple[int, int, int, int], step: float,
                   choose: Callable[[LatentEvent], np.ndarray]) -> tuple[ObservationModel, Sent]:
    """Walk the prior top-down feeding back the quantised value of the integers ``q``
    that ``choose`` gives per event; returns p(x | ẑ) and what must be sent.

    A top-down layer's value is ``μ_p + σ_p · step · q``. An inferred latent (BIVA's
    bottom-up part) is quantised before its prior exists, so on the absolute grid
    ``step · q``; its prior event reuses that ``q`` (``choose`` is not asked again)
    and codes it under the prior discretised on the same grid.
    """
    sent: Sent = []
    inferred: dict[str, np.ndarray] = {}
    steps = model.latent_steps(x, shape)
    event = next(steps)
    while True:
        if isinstance(event, InferredLatent):
            q = inferred[event.key] = choose(event)
            value = torch.from_numpy(np.asarray(q)).view(event.shape).float() * step
        else:
            q = inferred[event.inferred] if event.inferred in inferred else choose(event)
            sent.append((event, q))
            qf = torch.from_numpy(np.asarray(q)).view(event.shape).float()
            # written (σ · q) · step, as files were always made: the floats are the format
            value = qf * step if event.inferred is not None else event.prior_mean + event.prior_std * qf * step
        try:
            event = steps.send(value)
        except StopIteration as stop:
            return stop.value, sent


def quantise_posterior(event: LatentEvent, step: float) -> np.ndarray:
    """The integers ``q`` of an event's posterior means (clipped to the symbol range):
    in units of the conditional prior's std, or of N(0, 1) for an inferred latent."""
    assert event.post_mean is not None, "quantising needs the posterior (encode with x)"
    limit = symbol_range(step)
    if isinstance(event, InferredLatent):
        eps = event.post_mean
    else:
        eps = (event.post_mean - event.prior_mean) / event.prior_std
    return torch.clamp(torch.round(eps / step), -limit, limit).to(torch.int64).numpy().ravel()


def grid_prior_masses(event: GaussianLatent, step: float) -> torch.Tensor:
    """(dims, 2m+1) masses of ``q = -m … m`` under an inferred latent's prior N(μ, σ)
    discretised on the absolute grid ``step · q`` (tails in the end bins)."""
    m = symbol_range(step)
    edges = (torch.arange(-m, m, dtype=torch.float64) + 0.5) * step
    mean = event.prior_mean.double().reshape(-1, 1)
    std = event.prior_std.double().reshape(-1, 1)
    cdf = torch.special.ndtr((edges - mean) / std)
    masses = torch.cat([cdf[:, :1], cdf[:, 1:] - cdf[:, :-1], 1.0 - cdf[:, -1:]], dim=1)
    return masses.clamp(min=1e-12).float()


def _runs(sent: Sent) -> list[tuple[GaussianLatent | None, np.ndarray]]:
    """Consecutive top-down events merged into one run (one push, same bits), inferred
    latents' prior events alone (each has its own tables)."""
    runs: list[tuple[GaussianLatent | None, list[np.ndarray]]] = []
    for event, q in sent:
        if event.inferred is None and runs and runs[-1][0] is None:
            runs[-1][1].append(q)
        else:
            runs.append((event if event.inferred is not None else None, [q]))
    return [(event, np.concatenate(qs)) for event, qs in runs]


def push_symbols(stack: Stack, sent: Sent, step: float) -> None:
    """Push every event's integers so that :func:`pop_layer` returns them in walk order."""
    m = symbol_range(step)
    for event, q in reversed(_runs(sent)):
        if event is None:
            stack.push(q + m, quantiser_model(step))
        else:
            codecs.categorical(grid_prior_masses(event, step)).push(stack, q + m)


def pop_layer(stack: Stack, event: GaussianLatent, step: float) -> np.ndarray:
    """Pop one prior event's integers (the decoder's ``choose``)."""
    m = symbol_range(step)
    if event.inferred is not None:
        return codecs.categorical(grid_prior_masses(event, step)).pop(stack).astype(np.int64) - m
    return stack.pop(quantiser_model(step), count=event.prior_mean.numel()).astype(np.int64) - m


def sent_bits(sent: Sent, step: float) -> float:
    """Information content of everything :func:`push_symbols` would push, in bits."""
    m = symbol_range(step)
    bits = 0.0
    for event, q in _runs(sent):
        if event is None:
            bits += quantiser_bits(q, step)
        else:
            masses = grid_prior_masses(event, step).double()
            picked = masses[torch.arange(len(q)), torch.from_numpy(q + m)] / masses.sum(1)
            bits -= float(torch.log2(picked).sum())
    return bits


def walk_posterior_means(model: LatentModel, x: torch.Tensor, step: float) -> tuple[ObservationModel, Sent]:
    """Quantise every posterior mean on the way down: p(x | ẑ) and what must be sent."""
    return quantised_walk(model, x, tuple(x.shape), step, lambda event: quantise_posterior(event, step))
