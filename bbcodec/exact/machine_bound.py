"""Coding a float model directly: its parameters rounded onto the integer grid by float code.

For experiments with a model that has no integer form yet (``examples/custom_model.py``).
Everything after the rounding is the exact integer path, but the rounding itself sees
the float model's outputs, which differ between machines in the last bits; a value
near a rounding boundary then lands on another grid point and the tables differ. So
such results decode only where the model computes alike: files made this way must say
so (the container's ``machine_bound`` field, shown by ``bbcodec info``). Export an
integer form (:func:`bbcodec.exact.export.integer_form`) for files that travel.
"""

from __future__ import annotations

import platform

import torch

from bbcodec.contract import (
    Autoregressive,
    Bernoulli,
    GaussianLatent,
    InferredLatent,
    LatentEvent,
    LatentModel,
    LatentSteps,
    LogisticMixture,
)
from bbcodec.exact.distributions import BernoulliPixels, Logistics
from bbcodec.exact.fixed import from_fixed, to_fixed


def machine_profile() -> str:
    """What a machine-bound file names: architecture and torch's kernel capability."""
    return f"float model, {platform.machine().lower()}/{torch.backends.cpu.get_cpu_capability().lower()}"


def _grid(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else to_fixed(t).to(torch.int64)


def _event(event: LatentEvent) -> LatentEvent:
    if isinstance(event, InferredLatent):
        return InferredLatent(event.key, _grid(event.post_mean), _grid(event.post_std).clamp(min=1))
    std = lambda t: None if t is None else _grid(t).clamp(min=1)  # noqa: E731
    return GaussianLatent(_grid(event.prior_mean), std(event.prior_std), _grid(event.post_mean),
                          std(event.post_std), event.static_bins, event.inferred)


def _pixels(dist: object) -> object:
    if isinstance(dist, LogisticMixture):  # (N, K, C, H, W) -> mixture axis last
        last = lambda t: to_fixed(t.movedim(1, -1))  # noqa: E731
        return Logistics.from_params(last(dist.logits), last(dist.means), last(dist.log_scales))
    if isinstance(dist, Bernoulli):
        return BernoulliPixels.from_logits(to_fixed(dist.logits))
    raise TypeError(f"no integer tables for {type(dist).__name__}")


class _Steps:
    """An autoregressive float observation with integer step tables."""

    def __init__(self, obs: Autoregressive) -> None:
        self.obs, self.shape, self.num_steps = obs, obs.shape, obs.num_steps

    def reset(self) -> None:
        self.obs.reset()

    def step_index(self, t: int):
        return self.obs.step_index(t)

    def step_distribution(self, t: int) -> object:
        return _pixels(self.obs.step_distribution(t))

    def write(self, t: int, values: torch.Tensor) -> None:
        self.obs.write(t, values)


class MachineBound:
    """A float :class:`~bbcodec.contract.LatentModel` seen through the integer contract."""

    def __init__(self, model: LatentModel) -> None:
        self.model = model

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        steps = self.model.latent_steps(x, shape)
        event = next(steps)
        try:
            while True:
                value = yield _event(event)
                event = steps.send(from_fixed(value))
        except StopIteration as stop:
            obs = stop.value
        return _Steps(obs) if isinstance(obs, Autoregressive) else _pixels(obs)
