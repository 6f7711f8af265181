"""Integer probability tables: from integer distribution parameters to frequencies.

Every function here maps int64 tensors to int64 frequency tables with total 2^24
and every symbol ≥ 1 (the form constriction codes exactly), using only integer
arithmetic and the stored tables of :mod:`bbcodec.exact.tables`. Parameters come
from an integer network on the activation grid (``value · 2^-FRAC``), so encoder
and decoder build bit-identical tables on any machine.

Pixels (discretised logistic mixture, PixelCNN++'s parameterisation in [-1, 1]):
a component's CDF at the 255 interior bin edges is ``σ((e − μ) · s⁻¹)``; ``s⁻¹``
comes from the stored ``exp`` table at ``−log s`` (so a scale is in effect an index
into a table of scales), ``σ`` from the ``sigmoid`` table. Mixture weights are an
integer softmax (stored ``exp(−t)``) normalised to 2^15.

Latents (Gaussians on 2^p bins of equal mass under another Gaussian): the edges are
stored normal quantiles, mapped through the bin Gaussian and standardised by the
coded Gaussian with exact integer division; the CDF is the stored ``ndtr`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from bbcodec.exact import kernels, tables
from bbcodec.exact.fixed import (
    FRAC,
    ONE,
    PROB_BITS,
    PROB_TOTAL,
    WEIGHT_TOTAL_BITS,
    cdf_to_frequencies,
    floor_div,
    weights_to_frequencies,
)

LOG_SCALE_FLOOR = -7 * ONE  # as in training (bbcodec.nn.likelihoods.LOG_SCALE_FLOOR)
MEAN_LIMIT = 4 * ONE  # logistic means beyond ±4 (pixel units ±510) are clamped: every bin is a tail there
INV_SCALE_BITS = tables.UNITS["exp"]  # s⁻¹ carries 16 fractional bits
SIGMOID_SHIFT = FRAC + INV_SCALE_BITS - tables.GRIDS["sigmoid"].step  # (e − μ)·s⁻¹ to the sigmoid grid
_NDTR_STEP = tables.GRIDS["ndtr"].step
LOG2_FRAC = tables.UNITS["log2_mantissa"]  # log2 values carry 20 fractional bits


def softmax_weights(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """Integer softmax of grid logits along ``dim``: nonnegative, summing to at most 2^15."""
    logits = logits.to(torch.int64)
    top = logits.amax(dim=dim, keepdim=True)
    t = (top - logits) >> (FRAC - tables.GRIDS["exp_neg"].step)
    e = tables.lookup(tables.load().int["exp_neg"], t, "exp_neg")
    return floor_div(e << WEIGHT_TOTAL_BITS, e.sum(dim=dim, keepdim=True))


def inverse_scales(log_scales: torch.Tensor) -> torch.Tensor:
    """``exp(−log s)`` with 16 fractional bits from grid log-scales (floored as in training)."""
    ls = log_scales.to(torch.int64).clamp(min=LOG_SCALE_FLOOR)
    return tables.lookup(tables.load().int["exp"], (-ls) >> (FRAC - tables.GRIDS["exp"].step), "exp")


@lru_cache(maxsize=1)
def _parameter_tables() -> tuple:
    """The stored tables and grid constants :func:`kernels.logistic_parameters` reads
    (made once: a decoding step calls it for a handful of pixels)."""
    t, exp_grid = tables.load().int, tables.GRIDS["exp"]
    if tables.GRIDS["exp_neg"].lo != 0:
        raise AssertionError("the exp_neg table starts at 0")
    return (t["exp_neg"].numpy(), FRAC - tables.GRIDS["exp_neg"].step, t["exp"].numpy(), FRAC - exp_grid.step,
            -(exp_grid.lo << exp_grid.step), MEAN_LIMIT, LOG_SCALE_FLOOR)


@lru_cache(maxsize=1)
def logistic_kernel_tables() -> tuple:
    """Everything after the parameters that a fused kernel needs to go from packed grid
    parameters to pixel tables (:func:`bbcodec.exact.int8_kernels.head_logistic_tables`):
    :func:`_parameter_tables`, then the bin edges, the sigmoid table and its grid constants
    as :meth:`Logistics.frequencies` passes them."""
    t, grid = tables.load().int, tables.GRIDS["sigmoid"]
    return (*_parameter_tables(), t["pixel_edges"].numpy(), t["sigmoid"].numpy(), SIGMOID_SHIFT,
            -(grid.lo << grid.step))


@dataclass(frozen=True)
class Logistics:
    """A discretised logistic mixture with integer parameters, all (..., K) with the
    mixture axis last: weights (sum ≤ 2^15), means (grid, clamped), inverse scales."""

    weights: torch.Tensor
    means: torch.Tensor
    inv_scales: torch.Tensor

    @classmethod
    def from_params(cls, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> Logistics:
        """From grid parameters (..., K) as a network emits them (logits, means, log-scales)."""
        return cls(softmax_weights(logits, -1), means.to(torch.int64).clamp(-MEAN_LIMIT, MEAN_LIMIT),
                   inverse_scales(log_scales))

    @classmethod
    def from_packed(cls, params: torch.Tensor, k: int) -> Logistics:
        """:meth:`from_params` of grid parameters packed (..., 3K) as logits, means and
        log-scales (a pixel head's layout), in one compiled pass (the same integers)."""
        packed = params.to(torch.int64).reshape(-1, 3 * k).contiguous()
        w, m, inv = kernels.logistic_parameters(packed.numpy(), k, *_parameter_tables())
        shape = (*params.shape[:-1], k)
        return cls(*(torch.from_numpy(v).view(shape) for v in (w, m, inv)))

    def flat(self) -> Logistics:
        k = self.weights.shape[-1]
        return Logistics(self.weights.reshape(-1, k), self.means.reshape(-1, k), self.inv_scales.reshape(-1, k))

    def component_cdf(self, edges: torch.Tensor) -> torch.Tensor:
        """(M, K, E) CDF of every component at ``edges`` (grid, broadcast (E,) or (M, 1, E)), 2^-24 units."""
        u = (edges - self.means.unsqueeze(-1)) * self.inv_scales.unsqueeze(-1)
        return tables.lookup(tables.load().int["sigmoid"], u >> SIGMOID_SHIFT, "sigmoid")

    def frequencies(self) -> torch.Tensor:
        """(M, 256) frequency tables of the M = prod(shape[:-1]) pixels, in their order
        (compiled kernel; :meth:`frequencies_reference` is the same in torch ops)."""
        flat = self.flat()
        return torch.from_numpy(kernels.logistic_frequencies(
            flat.weights.contiguous().numpy(), flat.means.contiguous().numpy(), flat.inv_scales.contiguous().numpy(),
            *logistic_kernel_tables()[-4:]))

    def intervals(self, symbols: np.ndarray) -> torch.Tensor:
        """(M, 3) tables that code each pixel's known value exactly as :meth:`frequencies`'
        row would (:func:`bbcodec.exact.kernels.logistic_intervals`): an encoder's tables,
        two CDF edges per pixel instead of 256."""
        flat = self.flat()
        return torch.from_numpy(kernels.logistic_intervals(
            flat.weights.contiguous().numpy(), flat.means.contiguous().numpy(), flat.inv_scales.contiguous().numpy(),
            *logistic_kernel_tables()[-4:], np.ascontiguousarray(symbols, dtype=np.int64).ravel()))

    def frequencies_reference(self) -> torch.Tensor:
        flat = self.flat()
        cdf = flat.component_cdf(tables.load().int["pixel_edges"])  # (M, K, 255)
        mixed = (flat.weights.unsqueeze(-1) * cdf).sum(dim=1) >> WEIGHT_TOTAL_BITS
        return cdf_to_frequencies(mixed)

    def component_log2_mass(self, x: torch.Tensor) -> torch.Tensor:
        """log2 of each component's (integer) mass in the bin of the pixels ``x`` (shape[:-1]),
        in 2^-20 bits units: (..., K). Tails fall in the edge bins."""
        edges = tables.load().int["pixel_edges"]
        lo_edge = edges[(x.to(torch.int64) - 1).clamp(0, 254)].unsqueeze(-1).unsqueeze(-1)
        hi_edge = edges[x.to(torch.int64).clamp(0, 254)].unsqueeze(-1).unsqueeze(-1)
        lower = self.component_cdf(lo_edge).squeeze(-1)
        upper = self.component_cdf(hi_edge).squeeze(-1)
        xs = x.to(torch.int64).unsqueeze(-1)
        lower = torch.where(xs == 0, torch.zeros_like(lower), lower)
        upper = torch.where(xs == 255, torch.full_like(upper, PROB_TOTAL), upper)
        return log2_fixed((upper - lower).clamp(min=1)) - (PROB_BITS << LOG2_FRAC)


@dataclass(frozen=True)
class FrequencyTable:
    """Pixel tables a fused kernel already built (one row per pixel)."""

    table: torch.Tensor

    def frequencies(self) -> torch.Tensor:
        return self.table


@dataclass(frozen=True)
class BernoulliPixels:
    """Binary pixels with ``P(1) = p_one · 2^-24`` (integer, in [1, 2^24 − 1])."""

    p_one: torch.Tensor

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> BernoulliPixels:
        u = logits.to(torch.int64) >> (FRAC - tables.GRIDS["sigmoid"].step)
        p = tables.lookup(tables.load().int["sigmoid"], u, "sigmoid")
        return cls(p.clamp(1, PROB_TOTAL - 1))

    def frequencies(self) -> torch.Tensor:
        p = self.p_one.reshape(-1)
        return torch.stack([PROB_TOTAL - p, p], dim=1)


def normal_cdf(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """Φ(numerator / denominator) in 2^-24 units from the stored table; both int64,
    ``denominator > 0`` in the same units as ``numerator`` · 2^-12 (see callers)."""
    u = floor_div(numerator, denominator)
    return tables.lookup(tables.load().int["ndtr"], u, "ndtr")


def gaussian_bin_frequencies(mean: torch.Tensor, std: torch.Tensor, precision: int,
                             bin_mean: torch.Tensor | None = None, bin_std: torch.Tensor | None = None
                             ) -> torch.Tensor:
    """(rows, 2^p) frequencies of N(mean, std) in the 2^p bins of equal mass under
    N(bin_mean, bin_std), or under N(0, 1); arguments are grid int64 columns (rows, 1).

    Edge ``e`` of the bins is ``bin_mean + bin_std · Φ⁻¹(e / 2^p)`` (stored quantile);
    its standardised position ``(edge − mean) / std`` is an exact integer quotient.
    """
    q = tables.load().normal_edges(precision)  # (2^p − 1,) grid
    if bin_mean is None or bin_std is None:
        return gaussian_frequencies(q << FRAC, mean, std)
    return gaussian_frequencies(q, mean, std, bin_mean.reshape(-1).to(torch.int64) << FRAC,
                                bin_std.reshape(-1).to(torch.int64))


def gaussian_frequencies(base: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                         edge_shift: torch.Tensor | None = None, edge_scale: torch.Tensor | None = None
                         ) -> torch.Tensor:
    """(rows, E + 1) frequencies of N(mean, std) in the bins between the edges (the end
    bins take the tails): the one place a Gaussian's bin masses are computed.

    The edges are ``edge_shift + edge_scale · base`` per row (``base`` (E,), shift and
    scale (rows,) or absent: ``base`` itself for every row), on the square grid 2^-2·FRAC
    (an edge ``bin_std · q`` of two grid numbers is exact there); ``mean`` and ``std``
    are grid numbers of any shape with ``rows`` elements. Each edge's standardised
    position ``(edge − mean) / std`` is one exact integer quotient on the stored Φ
    table's grid. The kernel makes each row's edges as it goes (no (rows, E) array).
    """
    mean, std = mean.reshape(-1, 1).to(torch.int64), std.reshape(-1, 1).to(torch.int64).clamp(min=1)
    # u = (edge − mean) / std on the ndtr grid of 2^-12: edges carry 2^FRAC more, so
    # divide by std · 2^(FRAC − 12).
    grid = tables.GRIDS["ndtr"]
    shift = torch.zeros(1, dtype=torch.int64) if edge_shift is None else edge_shift.to(torch.int64).reshape(-1)
    scale = torch.ones(1, dtype=torch.int64) if edge_scale is None else edge_scale.to(torch.int64).reshape(-1)
    return torch.from_numpy(kernels.gaussian_frequencies(
        base.to(torch.int64).reshape(-1).contiguous().numpy(), shift.contiguous().numpy(),
        scale.contiguous().numpy(),
        (mean << FRAC).view(-1).contiguous().numpy(), (std << (FRAC - _NDTR_STEP)).view(-1).numpy(),
        tables.load().int["ndtr"].numpy(), -(grid.lo << grid.step)))


def gaussian_frequencies_reference(base: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                                   edge_shift: torch.Tensor | None = None,
                                   edge_scale: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`gaussian_frequencies` in torch ops: the definition the compiled kernel matches."""
    edges = base.to(torch.int64).view(1, -1)
    if edge_shift is not None and edge_scale is not None:
        edges = edge_shift.to(torch.int64).view(-1, 1) + edge_scale.to(torch.int64).view(-1, 1) * edges
    mean, std = mean.reshape(-1, 1).to(torch.int64), std.reshape(-1, 1).to(torch.int64).clamp(min=1)
    cdf = normal_cdf(edges - (mean << FRAC), std << (FRAC - _NDTR_STEP))
    return cdf_to_frequencies(cdf)


def bin_values(indices: torch.Tensor, precision: int, mean: torch.Tensor | None = None,
               std: torch.Tensor | None = None) -> torch.Tensor:
    """Grid value of bin ``indices``: the centre quantile of N(mean, std), or of N(0, 1)."""
    centres = tables.load().normal_centres(precision)[indices.to(torch.int64)]
    if mean is None or std is None:
        return centres
    return mean.to(torch.int64) + ((std.to(torch.int64) * centres + (ONE >> 1)) >> FRAC)


def log2_fixed(values: torch.Tensor) -> torch.Tensor:
    """log2 of positive integers (< 2^52) with 20 fractional bits, from the stored
    mantissa table: exponent exactly (``frexp`` is bit manipulation), mantissa by
    its top 16 bits."""
    mantissa, exponent = torch.frexp(values.to(torch.float64))  # values = mantissa · 2^exponent, mantissa in [½, 1)
    idx = torch.floor((mantissa * 2.0 - 1.0) * (1 << 16)).to(torch.int64)
    return ((exponent.to(torch.int64) - 1) << LOG2_FRAC) + tables.load().int["log2_mantissa"][idx]


def frequency_log2(freqs: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
    """log2 P(symbol) (≤ 0) in 2^-20 bits of each row of ``freqs`` at ``symbols``."""
    picked = freqs.gather(1, symbols.reshape(-1, 1).to(torch.int64)).squeeze(1)
    return log2_fixed(picked) - (PROB_BITS << LOG2_FRAC)


def _exp2_weights(log2_weights: torch.Tensor, dim: int) -> torch.Tensor:
    """``2^(w − max)`` in 2^-30 units from the stored table (log2-weights in 2^-20 bits)."""
    top = log2_weights.amax(dim=dim, keepdim=True)
    t = (top - log2_weights) >> (LOG2_FRAC - tables.GRIDS["exp2_neg"].step)
    return tables.lookup(tables.load().int["exp2_neg"], t, "exp2_neg")


def softmax2_weights(log2_weights: torch.Tensor) -> torch.Tensor:
    """Mixture weights (summing to at most 2^15) ∝ 2^(log2_weights) along the last axis."""
    e = _exp2_weights(log2_weights, -1)
    return floor_div(e << WEIGHT_TOTAL_BITS, e.sum(dim=-1, keepdim=True))


def softmax2_frequencies(log2_weights: torch.Tensor) -> torch.Tensor:
    """Frequencies (rows, K) ∝ 2^(log2_weights) for log2-weights in 2^-20 bits (importance weights)."""
    return weights_to_frequencies(_exp2_weights(log2_weights, 1))
