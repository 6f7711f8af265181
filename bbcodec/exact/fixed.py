"""Fixed-point numbers for coding: the grids, the bounds and the few primitive ops.

Every quantity that decides a probability handed to the coder is an integer. Inside
the networks those integers travel as float64 tensors holding whole numbers (the
fastest exact kernels torch has on every CPU, see ``docs/EXACTNESS.md``); outside
them, as int64 tensors. Either way an op is allowed only when its result is the
exact integer (or exact dyadic rational) that integer arithmetic would give:

* sums and products of integers whose every partial sum stays below 2^53
  (:data:`EXACT_LIMIT`), which :func:`check_accumulator_bound` proves per layer;
* multiplication by a power of two, ``round`` (half to even), ``floor``, ``clamp``;
* table look-ups (:mod:`bbcodec.exact.tables`) at integer indices.

Activations live on one grid, ``value = q · 2^-FRAC`` with ``|q| ≤ ACT_LIMIT``;
weights are integers of at most :data:`WEIGHT_BITS` bits with a power-of-two scale
per output channel, so every requantisation is a multiplication by a power of two
followed by ``round``: exact in float64 and identical on every machine.
"""

from __future__ import annotations

import torch

FRAC = 14  # fractional bits of every activation and distribution parameter
ONE = 1 << FRAC
ACT_LIMIT = (1 << 27) - 1  # |q| of an activation: values within ±8192
WEIGHT_BITS = 12
WEIGHT_LIMIT = (1 << (WEIGHT_BITS - 1)) - 1  # |w| of a quantised weight
MAX_WEIGHT_SHIFT = 40  # a channel scale is 2^-shift, shift in [0, MAX_WEIGHT_SHIFT]
EXACT_LIMIT = 1 << 53  # float64 holds every integer below this exactly
PROB_BITS = 24  # constriction's categorical precision: tables total 2^24
PROB_TOTAL = 1 << PROB_BITS
WEIGHT_TOTAL_BITS = 15  # mixture weights are normalised to total 2^15


class BoundError(ValueError):
    """An integer model whose sums could leave the exactly representable range."""


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """Float values onto the activation grid (float64 whole numbers). Only for export
    and for float models that are coded machine-bound: float rounding decides here."""
    return torch.round(x.double() * ONE).clamp_(-ACT_LIMIT, ACT_LIMIT)


def from_fixed(q: torch.Tensor) -> torch.Tensor:
    """Grid values back to float32 (for float models and reports; never for coding)."""
    return (q.double() / ONE).float()


def requantise(acc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``round(acc · scale)`` clamped to the activation range; ``scale`` holds powers of two."""
    return torch.round(acc * scale).clamp_(-ACT_LIMIT, ACT_LIMIT)


def saturate(q: torch.Tensor) -> torch.Tensor:
    """Clamp a sum of activations back into the activation range (in place)."""
    return q.clamp_(-ACT_LIMIT, ACT_LIMIT)


def fixed_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of two grid values on the grid: ``round(a · b · 2^-FRAC)``.

    Exact while ``|a · b| < 2^53``: callers pass a factor bounded by the model
    (a standard deviation, a coefficient in [-1, 1]) and an activation.
    """
    return torch.round(a * b * (1.0 / ONE)).clamp_(-ACT_LIMIT, ACT_LIMIT)


def check_accumulator_bound(name: str, weight: torch.Tensor, bias: torch.Tensor) -> int:
    """Prove that a layer's accumulators stay exact: per output channel,
    ``Σ|w| · ACT_LIMIT + |b| < 2^53``. Returns the largest bound (for reports)."""
    per_channel = weight.abs().flatten(1).sum(1).to(torch.int64) * ACT_LIMIT + bias.abs().to(torch.int64)
    worst = int(per_channel.max()) if per_channel.numel() else 0
    if worst >= EXACT_LIMIT:
        raise BoundError(f"{name}: an accumulator may reach {worst} >= 2^53, so float64 sums would round")
    if weight.numel() and int(weight.abs().max()) > WEIGHT_LIMIT:
        raise BoundError(f"{name}: weights exceed {WEIGHT_BITS} bits")
    return worst


def cdf_to_frequencies(cdf: torch.Tensor, cdf_bits: int = PROB_BITS) -> torch.Tensor:
    """Frequencies (rows, n) with total 2^24 and every symbol ≥ 1 from a nondecreasing
    integer CDF (rows, n − 1) in [0, 2^cdf_bits] at the n − 1 interior edges.

    Edge bins take the tails. ``c'_e = ⌊cdf_e · (2^24 − n) / 2^cdf_bits⌋`` stays
    nondecreasing, so ``f = Δc' + 1`` is positive and sums to exactly 2^24.
    """
    rows, edges = cdf.shape
    n = edges + 1
    scaled = torch.empty(rows, n + 1, dtype=torch.int64)
    scaled[:, 0] = 0
    scaled[:, n] = PROB_TOTAL - n
    scaled[:, 1:n] = (cdf.to(torch.int64) * (PROB_TOTAL - n)) >> cdf_bits
    return scaled.diff(dim=1) + 1


def weights_to_frequencies(weights: torch.Tensor) -> torch.Tensor:
    """Frequencies (rows, n), total 2^24, every symbol ≥ 1, proportional to nonnegative
    integer ``weights`` (rows, n) whose row sums are positive and below 2^38."""
    rows, n = weights.shape
    cum = torch.zeros(rows, n + 1, dtype=torch.int64)
    torch.cumsum(weights.to(torch.int64), dim=1, out=cum[:, 1:])
    total = cum[:, n : n + 1]
    scaled = torch.div(cum * (PROB_TOTAL - n), total, rounding_mode="floor")
    return scaled.diff(dim=1) + 1


def floor_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact integer ⌊a / b⌋ for int64 tensors (b > 0)."""
    return torch.div(a, b, rounding_mode="floor")


def round_div(a: torch.Tensor, b: torch.Tensor | int) -> torch.Tensor:
    """Exact integer a / b rounded half up, for int64 tensors (b > 0)."""
    return torch.div(2 * a + b, 2 * b, rounding_mode="floor")
