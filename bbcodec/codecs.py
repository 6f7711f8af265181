"""Composable codecs: a codec is a pair of functions ``push(stack, symbols)`` and
``pop(stack) -> symbols`` (craystack's design, on constriction's exact coder).

Distribution codecs take per-symbol parameter arrays, so one call codes a whole
batch. All probabilities become fixed-point (24-bit) tables inside constriction;
every symbol of the alphabet keeps a nonzero probability, so any input can be coded.

Exactness: the encoder and the decoder must hand *bit-identical* floats to these
functions. They do when both compute them with the same calls (same batch, same
dtype, same memory format); the pixel CRC in the container catches anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from bbcodec.ans import Stack, models
from bbcodec.contract import (
    Autoregressive,
    Bernoulli,
    GaussianLatent,
    LatentEvent,
    ObservationModel,
    PixelDistribution,
)

# constriction's lazy categorical can drive the *last* symbol's quantised probability
# to zero when that symbol is very unlikely (float32 rounding of the running sum) and
# then panics. Each table therefore swaps its most probable symbol into the last slot:
# same distribution, same rate, and no tiny mass where the rounding collects.
TABLE_BUDGET = 1 << 22  # table entries built at once (16 MB of float32), whatever the image size


@dataclass(frozen=True)
class Codec:
    """A reversible pair: ``pop(stack)`` undoes ``push(stack, symbols)``."""

    push: Callable[[Stack, np.ndarray], None]
    pop: Callable[[Stack], np.ndarray]


def serial(codecs: Sequence[Codec], splits: Sequence[int]) -> Codec:
    """Code a flat array as consecutive pieces, each with its own codec."""
    bounds = np.cumsum([0, *splits])

    def push(stack: Stack, symbols: np.ndarray) -> None:
        for codec, lo, hi in reversed(list(zip(codecs, bounds[:-1], bounds[1:]))):
            codec.push(stack, symbols[lo:hi])

    def pop(stack: Stack) -> np.ndarray:
        return np.concatenate([codec.pop(stack) for codec in codecs])

    return Codec(push, pop)


def chunked(n: int, rows: int, make: Callable[[int, int], Codec]) -> Codec:
    """Code ``n`` symbols in pieces of ``rows``, building each piece's codec on demand.

    ``make(lo, hi)`` returns the codec of symbols ``lo:hi``. Pieces are pushed last
    first so that popping returns them in order; only one piece's probability tables
    exist at a time, so memory is bounded whatever the image size.
    """
    starts = list(range(0, n, max(1, rows)))

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != n:
            raise ValueError(f"expected {n} symbols, got {symbols.size}")
        for lo in reversed(starts):
            hi = min(lo + rows, n)
            make(lo, hi).push(stack, symbols[lo:hi])

    def pop(stack: Stack) -> np.ndarray:
        if not starts:
            return np.zeros(0, np.int64)
        return np.concatenate([make(lo, min(lo + rows, n)).pop(stack) for lo in starts])

    return Codec(push, pop)


def categorical(probs: np.ndarray | torch.Tensor) -> Codec:
    """One categorical per row of ``probs`` (N, K): nonnegative, any normalisation."""
    table = torch.as_tensor(probs, dtype=torch.float32)
    if table.ndim != 2:
        raise ValueError(f"probs must be (N, K), got shape {tuple(table.shape)}")
    n, k = table.shape
    totals = table.sum(dim=1)
    if n and (not bool(torch.isfinite(totals).all()) or bool((totals <= 0).any()) or float(table.min()) < 0):
        raise ValueError("probabilities must be finite and nonnegative, with a positive total per row")
    # Swap each row's most likely symbol with the last one (see the note above).
    rows = torch.arange(n)
    top = table.argmax(dim=1)
    swapped = table.clone()
    swapped[rows, k - 1] = table[rows, top]
    swapped[rows, top] = table[rows, k - 1]
    params = swapped.numpy()
    top_np = top.numpy()
    family = models.Categorical(perfect=False)

    def transpose(symbols: np.ndarray) -> np.ndarray:
        """The swap is its own inverse: top <-> k-1, everything else fixed."""
        return np.where(symbols == top_np, k - 1, np.where(symbols == k - 1, top_np, symbols))

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != n:
            raise ValueError(f"expected {n} symbols, got {symbols.size}")
        if symbols.size and (symbols.min() < 0 or symbols.max() >= k):
            raise ValueError(f"symbols must lie in [0, {k})")
        stack.push(transpose(symbols), family, params)

    def pop(stack: Stack) -> np.ndarray:
        return transpose(stack.pop(family, params))

    return Codec(push, pop)


def bernoulli(p_one: np.ndarray | torch.Tensor) -> Codec:
    """Binary symbols with P(1) = ``p_one`` per symbol (binarised images, flags)."""
    p = torch.as_tensor(p_one, dtype=torch.float32).reshape(-1)
    if p.numel() and (not bool(torch.isfinite(p).all()) or float(p.min()) < 0 or float(p.max()) > 1):
        raise ValueError("Bernoulli probabilities must lie in [0, 1]")
    return categorical(torch.stack([1.0 - p, p], dim=1))


def uniform(n_symbols: int, count: int) -> Codec:
    """``count`` i.i.d. uniform symbols over ``[0, n_symbols)``: exactly log2(n) bits each."""
    model = models.Uniform(n_symbols)

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != count:
            raise ValueError(f"expected {count} symbols, got {symbols.size}")
        if count:
            stack.push(symbols, model)

    def pop(stack: Stack) -> np.ndarray:
        return stack.pop(model, count=count)

    return Codec(push, pop)


# --- pixels: discretised logistic mixture -------------------------------------------


@lru_cache(maxsize=4)
def _pixel_edges(levels: int) -> torch.Tensor:
    """Interior bin edges of ``levels`` pixel values mapped to [-1, 1]."""
    j = torch.arange(levels - 1, dtype=torch.float32)
    return (2.0 * j + 1.0) / (levels - 1) - 1.0


def logistic_mixture_probs(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Probability tables (M, 256) for M pixels with K-component params (M, K).

    The first and last bins take the tails below and above, exactly like the
    training loss, so the table is the model's own distribution.
    """
    edges = _pixel_edges(256)
    weights = torch.softmax(logits.float(), dim=1)
    inv_scales = torch.exp(-log_scales.float())
    cdf = torch.sigmoid((edges - means.float()[:, :, None]) * inv_scales[:, :, None])  # (M, K, 255)
    return bin_masses(torch.einsum("mk,mke->me", weights, cdf))


def bin_masses(cdf: torch.Tensor) -> torch.Tensor:
    """Masses of n bins from the CDF at their n − 1 interior edges (tails in the end bins)."""
    out = torch.empty(cdf.shape[0], cdf.shape[1] + 1, dtype=cdf.dtype)
    out[:, 0] = cdf[:, 0]
    torch.sub(cdf[:, 1:], cdf[:, :-1], out=out[:, 1:-1])
    torch.sub(1.0, cdf[:, -1], out=out[:, -1])
    return out.clamp_(min=0.0)


def _table_rows(dist: PixelDistribution) -> tuple[tuple[int, ...], int, Callable[[int, int], torch.Tensor]]:
    """(pixel shape, table entries per pixel, ``rows(lo, hi)`` -> tables of pixels lo:hi).

    Pixels are taken image-major, then channel, row, column: the order of ``x.ravel()``.
    """
    if isinstance(dist, Bernoulli):
        p_one = torch.sigmoid(dist.logits.float()).reshape(-1)
        return tuple(dist.logits.shape), 2, lambda lo, hi: torch.stack([1.0 - p_one[lo:hi], p_one[lo:hi]], dim=1)
    n, k, c, h, w = dist.means.shape

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, 2, 3, 4, 1).reshape(-1, k)

    logits, means, log_scales = flat(dist.logits), flat(dist.means), flat(dist.log_scales)
    return (n, c, h, w), 256 * k, lambda lo, hi: logistic_mixture_probs(logits[lo:hi], means[lo:hi], log_scales[lo:hi])


def pixel_shape(dist: PixelDistribution) -> tuple[int, ...]:
    """(N, C, H, W) of the pixels ``dist`` describes."""
    return _table_rows(dist)[0]


def pixel_tables(dist: PixelDistribution) -> torch.Tensor:
    """Probability tables (M, levels) of all M pixels of ``dist``, in ``x.ravel()`` order."""
    shape, _, rows = _table_rows(dist)
    return rows(0, int(np.prod(shape)))


def pixels(obs: ObservationModel) -> Codec:
    """Codec for uint8 pixels (N, C, H, W) under any observation model of the contract."""
    if isinstance(obs, Autoregressive):
        return autoregressive_pixels(obs)
    shape, per_pixel, rows = _table_rows(obs)
    inner = chunked(int(np.prod(shape)), TABLE_BUDGET // per_pixel, lambda lo, hi: categorical(rows(lo, hi)))

    def push(stack: Stack, x: np.ndarray) -> None:
        inner.push(stack, np.asarray(x).reshape(-1))

    def pop(stack: Stack) -> np.ndarray:
        return inner.pop(stack).astype(np.uint8).reshape(shape)

    return Codec(push, pop)


def autoregressive_pixels(obs: Autoregressive) -> Codec:
    """Pixels of every image in lockstep, one step (e.g. a raster position) at a time.

    The decoder must pop step ``t`` before it can compute step ``t + 1``; the encoder
    therefore walks the steps exactly like the decoder (writing the true pixels, so
    both see identical inputs and compute identical parameters), keeps the small
    per-step parameters, and pushes the steps last-first in chunks whose tables fit
    :data:`TABLE_BUDGET`.
    """
    n, c, h, w = obs.shape

    def values_at(x: np.ndarray, t: int) -> np.ndarray:
        return x[obs.step_index(t)]

    def push(stack: Stack, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.shape != (n, c, h, w):
            raise ValueError(f"expected pixels of shape {(n, c, h, w)}, got {x.shape}")
        obs.reset()
        dists = []
        for t in range(obs.num_steps):
            dists.append(obs.step_distribution(t))
            obs.write(t, torch.from_numpy(np.ascontiguousarray(values_at(x, t))))
        per_step = values_at(x, 0).size * (_table_rows(dists[0])[1] if dists else 1)
        steps_per_chunk = max(1, TABLE_BUDGET // per_step)
        for lo in reversed(range(0, obs.num_steps, steps_per_chunk)):
            hi = min(lo + steps_per_chunk, obs.num_steps)
            tables = torch.cat([pixel_tables(d) for d in dists[lo:hi]])
            symbols = np.concatenate([values_at(x, t).reshape(-1) for t in range(lo, hi)])
            categorical(tables).push(stack, symbols)

    def pop(stack: Stack) -> np.ndarray:
        out = np.empty((n, c, h, w), dtype=np.uint8)
        obs.reset()
        for t in range(obs.num_steps):
            index = obs.step_index(t)
            values = categorical(pixel_tables(obs.step_distribution(t))).pop(stack).astype(np.uint8)
            out[index] = values.reshape(out[index].shape)
            obs.write(t, torch.from_numpy(out[index]))
        return out

    return Codec(push, pop)


# --- latents: Gaussians on bins of equal prior mass -----------------------------------


@lru_cache(maxsize=8)
def standard_quantiles(precision: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal quantiles at the 2^p − 1 interior bin edges and the 2^p centres."""
    n = 2**precision
    edges = torch.special.ndtri(torch.arange(1, n, dtype=torch.float64) / n).float()
    centres = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n).float()
    return edges, centres


def latent_values(layer: LatentEvent, indices: np.ndarray, precision: int) -> torch.Tensor:
    """The value fed to the network for bin ``indices``: the bin-centre quantile of the
    prior (dynamic bins) or of N(0, 1) (static bins)."""
    _, centres = standard_quantiles(precision)
    idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).view(layer.shape)
    if layer.static_bins:
        return centres[idx]
    return layer.prior_mean + layer.prior_std * centres[idx]


def gaussian_on_bins(mean: torch.Tensor, std: torch.Tensor, precision: int,
                     bin_mean: torch.Tensor | None = None, bin_std: torch.Tensor | None = None) -> Codec:
    """N(mean, std) per dimension, coded on the 2^p bins of equal mass under
    N(bin_mean, bin_std), or under N(0, 1) when no bin distribution is given."""
    mean, std = mean.reshape(-1, 1).float(), std.reshape(-1, 1).float()
    if bin_mean is not None and bin_std is not None:
        bin_mean, bin_std = bin_mean.reshape(-1, 1).float(), bin_std.reshape(-1, 1).float()

    def piece(lo: int, hi: int) -> Codec:
        if bin_mean is None:
            return categorical(gaussian_bin_masses(mean[lo:hi], std[lo:hi], precision))
        return categorical(gaussian_bin_masses(mean[lo:hi], std[lo:hi], precision, bin_mean[lo:hi], bin_std[lo:hi]))

    return chunked(len(mean), TABLE_BUDGET // 2**precision, piece)


def gaussian_bin_masses(mean: torch.Tensor, std: torch.Tensor, precision: int,
                        bin_mean: torch.Tensor | None = None, bin_std: torch.Tensor | None = None) -> torch.Tensor:
    """(rows, 2^p) masses of N(mean, std) in the 2^p bins of equal mass under
    N(bin_mean, bin_std), or under N(0, 1); every argument is a (rows, 1) float32 column.
    The coder's tables: anything that accounts for its bits must use this too."""
    edges, _ = standard_quantiles(precision)
    z_edges = edges if bin_mean is None or bin_std is None else bin_mean + bin_std * edges
    return bin_masses(torch.special.ndtr((z_edges - mean) / std))


def prior_bins(layer: GaussianLatent, precision: int) -> Codec:
    """The prior side of a layer. With dynamic bins every bin is equally likely under
    the layer's own (conditional) prior: exactly p bits per dim. Static bins carry the
    prior's mass in each N(0, 1) bin."""
    if layer.static_bins:
        return gaussian_on_bins(layer.prior_mean, layer.prior_std, precision)
    return uniform(2**precision, layer.prior_mean.numel())


def posterior_on_prior_bins(layer: LatentEvent, precision: int) -> Codec:
    """The posterior's mass in each of the layer's 2^p bins (the prior's, or static ones)."""
    if layer.post_mean is None or layer.post_std is None:
        raise ValueError("posterior parameters are needed (encode with x)")
    if layer.static_bins:
        return gaussian_on_bins(layer.post_mean, layer.post_std, precision)
    return gaussian_on_bins(layer.post_mean, layer.post_std, precision, layer.prior_mean, layer.prior_std)
