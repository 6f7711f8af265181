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
from functools import lru_cache

import numpy as np
import torch

from bbcodec import codecs
from bbcodec.ans import Stack
from bbcodec.limits import LOSSY_STEP_UNIT, MAX_LOSSY_STEP_UNITS, MIN_LOSSY_STEP_UNITS
from bbcodec.contract import GaussianLatent, InferredLatent, LatentEvent, LatentModel, ObservationModel
from bbcodec.exact.distributions import LOG2_FRAC, frequency_log2, gaussian_frequencies
from bbcodec.exact.fixed import FRAC, ONE, round_div
from bbcodec.walk import walk

TAIL = 8.0  # prior standard deviations covered before clipping
STEP_UNIT = LOSSY_STEP_UNIT  # headers store step / STEP_UNIT as an integer
MIN_STEP, MAX_STEP = MIN_LOSSY_STEP_UNITS * STEP_UNIT, MAX_LOSSY_STEP_UNITS * STEP_UNIT
UNITS_PER_ONE = round(1 / STEP_UNIT)  # 256: a step of ``u`` units is u / 256


def snap_step(step: float) -> float:
    """The step as a header stores it (a multiple of :data:`STEP_UNIT`)."""
    if not MIN_STEP <= step <= MAX_STEP:
        raise ValueError(f"the quantisation step must lie in [{MIN_STEP}, {MAX_STEP}], got {step}")
    return round(step / STEP_UNIT) * STEP_UNIT


def step_units(step: float) -> int:
    """The step in header units (an integer): every computation below uses this."""
    return round(snap_step(step) / STEP_UNIT)


def symbol_range(step: float) -> int:
    """Quantised values run over ``[-m, m]``."""
    return math.ceil(TAIL * UNITS_PER_ONE / step_units(step))


def _grid_edges(step: float) -> torch.Tensor:
    """The 2m interior edges ``(k + ½) · step`` (k = −m … m − 1) on the activation grid."""
    m, units = symbol_range(step), step_units(step)
    return (2 * torch.arange(-m, m, dtype=torch.int64) + 1) * units * (ONE // (2 * UNITS_PER_ONE))


@lru_cache(maxsize=16)
def quantiser_frequencies(step: float) -> torch.Tensor:
    """(1, 2m + 1) frequencies of ``q = −m … m``: a standard normal discretised on the
    grid ``step · q`` (tails in the end bins), from the stored normal CDF."""
    return gaussian_frequencies(_grid_edges(step) << FRAC, torch.tensor(0), torch.tensor(ONE))


Sent = list[tuple[GaussianLatent, np.ndarray]]  # the integers of every prior event, in generative order


def _values(event: LatentEvent, q: np.ndarray, step: float) -> torch.Tensor:
    """Grid value of the integers ``q``: ``μ_p + σ_p · step · q`` (top-down layer) or
    ``step · q`` (an inferred latent's absolute grid)."""
    qt = torch.from_numpy(np.asarray(q, dtype=np.int64)).view(event.shape)
    units = step_units(step)
    if isinstance(event, InferredLatent) or event.inferred is not None:
        return qt * units * (ONE // UNITS_PER_ONE)
    return event.prior_mean + round_div(event.prior_std * qt * units, UNITS_PER_ONE)


def quantised_walk(model: LatentModel, x: torch.Tensor | None, shape: tuple[int, int, int, int], step: float,
                   choose: Callable[[LatentEvent], np.ndarray]) -> tuple[ObservationModel, Sent]:
    """Walk the prior top-down feeding back the quantised value of the integers ``q``
    that ``choose`` gives per event; returns p(x | ẑ) and what must be sent.

    A top-down layer's value is ``μ_p + σ_p · step · q``. An inferred latent (BIVA's
    bottom-up part) is quantised before its prior exists, so on the absolute grid
    ``step · q``; its prior event reuses that ``q`` (``choose`` is not asked again)
    and codes it under the prior discretised on the same grid.
    """
    out = walk(model, x, shape, choose, lambda event, q: _values(event, q, step))
    return out.observation, out.priors


def quantise_posterior(event: LatentEvent, step: float) -> np.ndarray:
    """The integers ``q`` of an event's posterior means (clipped to the symbol range):
    in units of the conditional prior's std, or of N(0, 1) for an inferred latent."""
    assert event.post_mean is not None, "quantising needs the posterior (encode with x)"
    limit, units = symbol_range(step), step_units(step)
    if isinstance(event, InferredLatent):
        q = round_div(event.post_mean * UNITS_PER_ONE, ONE * units)
    else:
        q = round_div((event.post_mean - event.prior_mean) * UNITS_PER_ONE, event.prior_std.clamp(min=1) * units)
    return q.clamp(-limit, limit).numpy().ravel()


def grid_prior_frequencies(event: GaussianLatent, step: float) -> torch.Tensor:
    """(dims, 2m+1) frequencies of ``q = −m … m`` under an inferred latent's prior N(μ, σ)
    discretised on the absolute grid ``step · q`` (tails in the end bins)."""
    return gaussian_frequencies(_grid_edges(step) << FRAC, event.prior_mean, event.prior_std)


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


def _run_frequencies(event: GaussianLatent | None, count: int, step: float) -> torch.Tensor:
    if event is None:
        return quantiser_frequencies(step).expand(count, -1)
    return grid_prior_frequencies(event, step)


def push_symbols(stack: Stack, sent: Sent, step: float) -> None:
    """Push every event's integers so that :func:`pop_layer` returns them in walk order."""
    m = symbol_range(step)
    for event, q in reversed(_runs(sent)):
        codecs.categorical(_run_frequencies(event, len(q), step)).push(stack, q + m)


def pop_layer(stack: Stack, event: GaussianLatent, step: float) -> np.ndarray:
    """Pop one prior event's integers (the decoder's ``choose``)."""
    m = symbol_range(step)
    freqs = _run_frequencies(event if event.inferred is not None else None, event.prior_mean.numel(), step)
    return codecs.categorical(freqs).pop(stack).astype(np.int64) - m


def sent_bits(sent: Sent, step: float) -> float:
    """Information content of everything :func:`push_symbols` would push, in bits (from
    the integer tables the coder uses)."""
    m = symbol_range(step)
    total = 0
    for event, q in _runs(sent):
        freqs = _run_frequencies(event, len(q), step)
        total -= int(frequency_log2(freqs, torch.from_numpy(q + m)).sum())
    return total / (1 << LOG2_FRAC)


def walk_posterior_means(model: LatentModel, x: torch.Tensor, step: float) -> tuple[ObservationModel, Sent]:
    """Quantise every posterior mean on the way down: p(x | ẑ) and what must be sent."""
    return quantised_walk(model, x, tuple(x.shape), step, lambda event: quantise_posterior(event, step))
