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

from bbcodec.ans import Stack, models
from bbcodec.container import LOSSY_STEP_UNIT, MAX_LOSSY_STEP_UNITS, MIN_LOSSY_STEP_UNITS
from bbcodec.contract import GaussianLatent, LatentModel, ObservationModel

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


def quantised_walk(model: LatentModel, x: torch.Tensor | None, shape: tuple[int, int, int, int], step: float,
                   choose: Callable[[GaussianLatent], np.ndarray]) -> ObservationModel:
    """Walk the prior top-down feeding back ``μ_p + σ_p · step · q`` for the integers
    ``q`` that ``choose`` gives per layer; returns p(x | ẑ)."""
    steps = model.latent_steps(x, shape)
    layer = next(steps)
    while True:
        q = torch.from_numpy(choose(layer)).view(layer.prior_mean.shape).float()
        try:
            layer = steps.send(layer.prior_mean + layer.prior_std * q * step)
        except StopIteration as stop:
            return stop.value


def quantise_posterior(layer: GaussianLatent, step: float) -> np.ndarray:
    """The integers ``q`` of a layer's posterior means (clipped to the symbol range)."""
    assert layer.post_mean is not None, "quantising needs the posterior (encode with x)"
    limit = symbol_range(step)
    eps = (layer.post_mean - layer.prior_mean) / layer.prior_std
    return torch.clamp(torch.round(eps / step), -limit, limit).to(torch.int64).numpy().ravel()


def push_symbols(stack: Stack, layers_q: list[np.ndarray], step: float) -> None:
    """Push every layer's integers so that :func:`pop_layer` returns them top-down."""
    if layers_q:
        stack.push(np.concatenate(layers_q) + symbol_range(step), quantiser_model(step))


def pop_layer(stack: Stack, layer: GaussianLatent, step: float) -> np.ndarray:
    """Pop one layer's integers (the decoder's ``choose``)."""
    return stack.pop(quantiser_model(step), count=layer.prior_mean.numel()).astype(np.int64) - symbol_range(step)


def walk_posterior_means(model: LatentModel, x: torch.Tensor, step: float) -> tuple[ObservationModel, list[np.ndarray]]:
    """Quantise every layer's posterior mean on the way down: p(x | ẑ) and the integers per layer."""
    symbols: list[np.ndarray] = []

    def quantise(layer: GaussianLatent) -> np.ndarray:
        symbols.append(quantise_posterior(layer, step))
        return symbols[-1]

    return quantised_walk(model, x, tuple(x.shape), step, quantise), symbols
