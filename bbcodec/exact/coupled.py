"""RGB pixels under a PixelCNN++ mixture, in integers (:class:`bbcodec.nn.likelihoods.CoupledLogistics`).

One mixture component is shared by the three channels and each channel's mean is
shifted linearly by the channels before it. Channels are coded R, G, B: step ``t``
is a logistic mixture over channel ``t`` whose component weights are the posterior
responsibilities given the channels already coded, computed here as an integer
softmax over ``log2 π_k + Σ_{c<t} log2 P_k(x_c)`` with the component masses taken
from the very integer CDFs the coder uses.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import numpy as np
import torch

from bbcodec.ans import RawHead
from bbcodec.exact import kernels, tables
from bbcodec.exact.distributions import (
    LOG2_FRAC,
    LOG_SCALE_FLOOR,
    MEAN_LIMIT,
    SIGMOID_SHIFT,
    Logistics,
    inverse_scales,
    softmax2_weights,
)
from bbcodec.exact.fixed import ACT_LIMIT, FRAC, ONE, fixed_mul
from bbcodec.exact.local import FusedStep

LOG2_E = round(math.log2(math.e) * (1 << LOG2_FRAC))  # natural-log grid logits -> log2 in 2^-20 bits


class CoupledLogistics:
    """Integer parameters on the grid: ``logits`` (N, K, H, W); ``means``, ``log_scales``,
    ``coeffs`` (already tanh'd) (N, K, 3, H, W). An :class:`~bbcodec.contract.Autoregressive`
    model of three steps (R, G, B over every pixel); :meth:`parallel` gives the same
    three distributions at once from known pixels (teacher forcing)."""

    num_steps = 3

    def __init__(self, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor,
                 coeffs: torch.Tensor) -> None:
        last = lambda t: t.movedim(1, -1)  # noqa: E731  (N, [3,] H, W, K) after moving K last
        self.log2_pi = last((logits.to(torch.int64) * LOG2_E) >> FRAC)  # (N, H, W, K), unnormalised
        self.means = [last(means[:, :, t]) for t in range(3)]  # each (N, H, W, K), grid float64
        self.coeffs = [last(coeffs[:, :, c]) for c in range(3)]
        inv = inverse_scales(log_scales)
        self.inv_scales = [last(inv[:, :, t]) for t in range(3)]
        n, _, _, h, w = means.shape
        self.shape = (n, 3, h, w)
        k = logits.shape[1]
        rows = lambda ts: np.ascontiguousarray(torch.stack([t.reshape(-1, k) for t in ts]).numpy())  # noqa: E731
        self._steps = CoupledSteps(np.ascontiguousarray(self.log2_pi.reshape(-1, k).numpy()), rows(self.means),
                                   rows(self.coeffs), rows(self.inv_scales), self.shape)

    def _components(self, units: list[torch.Tensor], t: int) -> Logistics:
        """Channel ``t``'s components (weights left zero) given the grid values ``units`` of the
        channels before it, each (N, H, W)."""
        mean = self.means[t]
        for c in range(t):
            mean = mean + fixed_mul(self.coeffs[t * (t - 1) // 2 + c], units[c].unsqueeze(-1))
        means = mean.to(torch.int64).clamp(-MEAN_LIMIT, MEAN_LIMIT)
        return Logistics(torch.zeros_like(means), means, self.inv_scales[t])

    def _step(self, units: list[torch.Tensor], masses: list[torch.Tensor], t: int) -> Logistics:
        """Channel ``t`` with the responsibilities given the channels before it (their log2
        masses ``masses``): weights ∝ 2^(log2 π_k + Σ_c log2 P_k(x_c))."""
        comp = self._components(units, t)
        log2_weights = self.log2_pi
        for mass in masses[:t]:
            log2_weights = log2_weights + mass
        return Logistics(softmax2_weights(log2_weights), comp.means, comp.inv_scales)

    def parallel(self, x: torch.Tensor) -> list[Logistics]:
        """The three channels' distributions given the true pixels (teacher forcing)."""
        unit_table = tables.load().float["pixel_unit"]
        units = [unit_table[x[:, c].to(torch.int64)] for c in range(3)]
        masses = [self._components(units, c).component_log2_mass(x[:, c]) for c in range(2)]
        return [self._step(units, masses, t) for t in range(3)]

    # --- the Autoregressive contract (the decoder's order): CoupledSteps' ----------------
    def reset(self) -> None:
        self._steps.reset()

    def step_index(self, t: int) -> tuple[slice, slice]:
        return self._steps.step_index(t)

    def step_distribution(self, t: int) -> FusedStep:
        return self._steps.step_distribution(t)

    def write(self, t: int, values: torch.Tensor) -> None:
        self._steps.write(t, values)


class CoupledSteps:
    """The decoder's order of :class:`CoupledLogistics`: R, G, B, each step one fused kernel
    (:func:`bbcodec.exact.kernels.coupled_step`, the same integers as
    :meth:`CoupledLogistics._step` without a few dozen small tensor ops per step; tests
    compare the two). Made from the mixture's integer arrays: (rows, K) ``log2 π``, and
    (3, rows, K) means, tanh'd coefficients and inverse scales, one row per pixel."""

    num_steps = 3

    def __init__(self, log2_pi: np.ndarray, means: np.ndarray, coeffs: np.ndarray, inv: np.ndarray,
                 shape: tuple[int, int, int, int]) -> None:
        self._kernel_args = (log2_pi, means, coeffs, inv)
        self.shape = shape
        rows, k = log2_pi.shape
        self._units = np.zeros((rows, 3))
        self._masses = np.zeros((rows, 2, k), dtype=np.int64)
        self._current_means: np.ndarray | None = None

    @classmethod
    def from_packed(cls, params: np.ndarray, k: int) -> CoupledSteps:
        """One position of N images from a head's grid parameters (N, 10K), in one compiled
        pass (the integers of :class:`CoupledLogistics` made from the same parameters; a
        decoding step is short, and the tensors in between cost more than the step)."""
        return cls(*kernels.coupled_parameters(params, k, *_parameter_constants()), (len(params), 3, 1, 1))

    def reset(self) -> None:
        self._units[:] = 0
        self._masses[:] = 0
        self._current_means = None

    def step_index(self, t: int) -> tuple[slice, slice]:
        return slice(None), slice(t, t + 1)

    def step_distribution(self, t: int) -> FusedStep:
        """Channel ``t`` of every row: its tables when asked, or its values popped by a kernel."""
        return FusedStep(len(self._units), partial(self._tables, t), pops=partial(self._pops, t))

    def _tables(self, t: int) -> torch.Tensor:
        freqs, self._current_means = kernels.coupled_step(t, *self._kernel_args, self._units, self._masses,
                                                          *_step_constants())
        return torch.from_numpy(freqs)

    def _pops(self, t: int, raw: RawHead) -> np.ndarray:
        """Pop channel ``t`` of every row from ``raw`` (what popping :meth:`_tables` gives)."""
        constants = _step_constants()
        values, self._current_means = kernels.coupled_pop(t, *self._kernel_args, self._units, self._masses, raw.head,
                                                          raw.words, *constants)
        return values

    def write(self, t: int, values: torch.Tensor) -> None:
        """Record channel ``t``'s coded values: their grid value and, for the channels after
        it, their log2 mass under each of channel ``t``'s components."""
        assert self._current_means is not None
        v = values.numpy().reshape(-1).astype(np.int64)
        unit_table, *mass_constants = _write_constants()
        self._units[:, t] = unit_table[v]
        if t < 2:
            self._masses[:, t] = kernels.component_log2_mass(v, self._current_means, self._kernel_args[3][t],
                                                             *mass_constants)


@lru_cache(maxsize=1)
def _step_constants() -> tuple:
    """The stored tables and grid constants :func:`kernels.coupled_step` reads (made once)."""
    ti, grid = tables.load().int, tables.GRIDS["sigmoid"]
    return (ti["pixel_edges"].numpy(), ti["sigmoid"].numpy(), ti["exp2_neg"].numpy(), SIGMOID_SHIFT,
            -(grid.lo << grid.step), LOG2_FRAC - tables.GRIDS["exp2_neg"].step, MEAN_LIMIT, float(ONE),
            float(ACT_LIMIT))


@lru_cache(maxsize=1)
def _write_constants() -> tuple:
    """The pixel-value table, then what :func:`kernels.component_log2_mass` reads (made once)."""
    t, grid = tables.load(), tables.GRIDS["sigmoid"]
    return (t.float["pixel_unit"].numpy(), t.int["pixel_edges"].numpy(), t.int["sigmoid"].numpy(),
            t.int["log2_mantissa"].numpy(), SIGMOID_SHIFT, -(grid.lo << grid.step))


@lru_cache(maxsize=1)
def _parameter_constants() -> tuple:
    """What :func:`kernels.coupled_parameters` needs besides the parameters (made once)."""
    t, tanh_grid, exp_grid = tables.load(), tables.GRIDS["tanh"], tables.GRIDS["exp"]
    return (LOG2_E, FRAC, t.float["tanh"].numpy(), -(tanh_grid.lo << tanh_grid.step), t.int["exp"].numpy(),
            FRAC - exp_grid.step, -(exp_grid.lo << exp_grid.step), LOG_SCALE_FLOOR)
