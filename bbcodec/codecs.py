"""Composable codecs: a codec is a pair of functions ``push(stack, symbols)`` and
``pop(stack) -> symbols`` (craystack's design, on constriction's exact coder).

Distribution codecs take per-symbol parameter arrays, so one call codes a whole
batch. Every table is an integer frequency table with total 2^24 and every symbol
≥ 1, built by :mod:`bbcodec.exact.distributions` from integer parameters, and handed
to constriction in a form it quantises to exactly those integers (see
:func:`categorical`). So encoder and decoder code with identical tables on any
machine; the pixel CRC in the container catches anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from bbcodec.ans import Stack, entropy_models
from bbcodec.contract import Autoregressive, GaussianLatent, LatentEvent, ObservationModel
from bbcodec.exact.distributions import BernoulliPixels, Logistics, bin_values, gaussian_bin_frequencies
from bbcodec.exact.fixed import PROB_BITS
from bbcodec.exact.kernels import categorical_params, interval_symbols

PixelTables = Logistics | BernoulliPixels

TABLE_BUDGET = 1 << 22  # table entries built at once (32 MB of int64), whatever the image size
INTERVAL_ROWS = 1 << 20  # pixels whose 3-entry encoding tables are built at once
# A decoding step of fewer images than this runs its small matrix products on one
# thread: starting threads costs more than it saves there, and on a busy machine far
# more (thread hand-offs stall). Results are exact integers either way.
ONE_THREAD_BELOW = 256


@contextmanager
def step_threads(rows: int) -> Iterator[None]:
    """Run the step loop of ``rows`` images on one torch thread when that is faster."""
    before = torch.get_num_threads()
    if rows < ONE_THREAD_BELOW and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


_CATEGORICAL = entropy_models.Categorical(perfect=False)  # a model family holds no state: one serves all


def categorical(freqs: torch.Tensor) -> Codec:
    """One categorical per row of integer ``freqs`` (N, K): total 2^24, every entry ≥ 1.

    constriction's lazy categorical quantises floats ``p`` to
    ``⌊cum_i · (2^24 − K) / Σp⌋ + i``; given ``p = freqs − 1`` (whole numbers, sum
    2^24 − K, exact in float32) that is exactly ``cum(freqs)``: the coder uses these
    integers and nothing a float rounding could change.
    """
    if freqs.ndim != 2:
        raise ValueError(f"frequencies must be (N, K), got shape {tuple(freqs.shape)}")
    n, k = freqs.shape
    valid, params = categorical_params(freqs.numpy())  # checked and converted in one compiled pass
    if n and not valid:
        raise ValueError(f"frequency tables must total 2^{PROB_BITS} with every entry at least 1")
    family = _CATEGORICAL

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != n:
            raise ValueError(f"expected {n} symbols, got {symbols.size}")
        if symbols.size and (symbols.min() < 0 or symbols.max() >= k):
            raise ValueError(f"symbols must lie in [0, {k})")
        stack.push(symbols, family, params)

    def pop(stack: Stack) -> np.ndarray:
        return stack.pop(family, params)

    return Codec(push, pop)


def uniform(n_symbols: int, count: int) -> Codec:
    """``count`` i.i.d. uniform symbols over ``[0, n_symbols)``: exactly log2(n) bits each."""
    model = entropy_models.Uniform(n_symbols)

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != count:
            raise ValueError(f"expected {count} symbols, got {symbols.size}")
        if count:
            stack.push(symbols, model)

    def pop(stack: Stack) -> np.ndarray:
        return stack.pop(model, count=count)

    return Codec(push, pop)


# --- pixels -------------------------------------------------------------------------


def pixel_frequencies(dist: PixelTables) -> torch.Tensor:
    """Frequency tables (M, levels) of all M pixels of ``dist``, in ``x.ravel()`` order."""
    return dist.frequencies()


def pixel_shape(dist: PixelTables) -> tuple[int, ...]:
    """(N, C, H, W) of the pixels ``dist`` describes."""
    return tuple(dist.p_one.shape) if isinstance(dist, BernoulliPixels) else tuple(dist.weights.shape[:-1])


def pixels(obs: ObservationModel) -> Codec:
    """Codec for uint8 pixels (N, C, H, W) under any observation model of the contract:
    an integer pixel distribution (:data:`PixelTables`) whose tables are in ``x.ravel()``
    order, or an :class:`~bbcodec.contract.Autoregressive` one."""
    if isinstance(obs, Autoregressive):
        return autoregressive_pixels(obs)
    shape = pixel_shape(obs)
    inner = _flat_pixels(obs.flat() if isinstance(obs, Logistics) else BernoulliPixels(obs.p_one.reshape(-1)))

    def push(stack: Stack, x: np.ndarray) -> None:
        inner.push(stack, np.asarray(x).reshape(-1))

    def pop(stack: Stack) -> np.ndarray:
        return inner.pop(stack).astype(np.uint8).reshape(shape)

    return Codec(push, pop)


def _flat_pixels(flat: PixelTables) -> Codec:
    """Pixels of a flat distribution (one table row per symbol), tables built a chunk at a
    time. A logistic mixture's encoder builds two CDF edges per pixel, not its table: the
    pixels are known, and :meth:`~bbcodec.exact.distributions.Logistics.intervals` gives
    each the interval (so the coder state) that its full table gives it."""
    if isinstance(flat, BernoulliPixels):
        count = int(flat.p_one.numel())
        return chunked(count, TABLE_BUDGET // 2, lambda lo, hi: categorical(_rows(flat, lo, hi)))
    count = len(flat.weights)
    decoding = chunked(count, TABLE_BUDGET // 256, lambda lo, hi: categorical(_rows(flat, lo, hi)))

    def push(stack: Stack, symbols: np.ndarray) -> None:
        symbols = np.asarray(symbols).ravel()
        if symbols.size != count:
            raise ValueError(f"expected {count} symbols, got {symbols.size}")
        if symbols.size and (symbols.min() < 0 or symbols.max() > 255):
            raise ValueError("pixel values must lie in [0, 256)")
        for lo in reversed(range(0, count, INTERVAL_ROWS)):
            hi = min(lo + INTERVAL_ROWS, count)
            part = Logistics(flat.weights[lo:hi], flat.means[lo:hi], flat.inv_scales[lo:hi])
            categorical(part.intervals(symbols[lo:hi])).push(stack, interval_symbols(symbols[lo:hi], 256))

    return Codec(push, decoding.pop)


def _rows(flat: PixelTables, lo: int, hi: int) -> torch.Tensor:
    """Tables of pixels ``lo:hi`` of a flattened distribution."""
    if isinstance(flat, BernoulliPixels):
        return BernoulliPixels(flat.p_one.reshape(-1)[lo:hi]).frequencies()
    return Logistics(flat.weights[lo:hi], flat.means[lo:hi], flat.inv_scales[lo:hi]).frequencies()


def autoregressive_pixels(obs: Autoregressive) -> Codec:
    """Pixels of every image in lockstep, one step (e.g. a raster position) at a time.

    The decoder must pop step ``t`` before it can compute step ``t + 1``; the encoder
    therefore walks the steps exactly like the decoder (writing the true pixels), keeps
    each step's frequency tables (small: one row per image) and pushes the steps
    last-first.
    """
    n, c, h, w = obs.shape

    def values_at(x: np.ndarray, t: int) -> np.ndarray:
        return x[obs.step_index(t)]

    def push(stack: Stack, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.shape != (n, c, h, w):
            raise ValueError(f"expected pixels of shape {(n, c, h, w)}, got {x.shape}")
        if hasattr(obs, "teacher_forced"):  # every step at once: see ExactPixelSteps.teacher_forced
            dist, symbols = obs.teacher_forced(torch.from_numpy(x))
            _flat_pixels(dist).push(stack, symbols.numpy())
            return
        obs.reset()
        freqs = []
        for t in range(obs.num_steps):
            freqs.append(pixel_frequencies(obs.step_distribution(t)))
            obs.write(t, torch.from_numpy(np.ascontiguousarray(values_at(x, t))))
        per_step = max(1, freqs[0].numel()) if freqs else 1
        steps_per_chunk = max(1, TABLE_BUDGET // per_step)
        for lo in reversed(range(0, obs.num_steps, steps_per_chunk)):
            hi = min(lo + steps_per_chunk, obs.num_steps)
            symbols = np.concatenate([values_at(x, t).reshape(-1) for t in range(lo, hi)])
            categorical(torch.cat(freqs[lo:hi])).push(stack, symbols)

    def pop(stack: Stack) -> np.ndarray:
        out = np.empty((n, c, h, w), dtype=np.uint8)
        obs.reset()
        whole = obs.whole_group() if hasattr(obs, "whole_group") else None
        with step_threads(n):
            if whole is not None:  # every step in one loop (bbcodec.exact.narrow_steps)
                out[:] = whole.pop(stack.raw()).reshape(out.shape)
                return out
            for t in range(obs.num_steps):
                index = obs.step_index(t)
                dist = obs.step_distribution(t)
                pops = getattr(dist, "pops", None)  # a fused step (bbcodec.exact.local.FusedStep) may pop itself
                if pops is not None:  # the kernel pops from the coder: no tables
                    values = pops(raw=stack.raw())
                else:
                    values = categorical(pixel_frequencies(dist)).pop(stack).astype(np.uint8)
                out[index] = values.reshape(out[index].shape)
                obs.write(t, torch.from_numpy(out[index]))
        return out

    return Codec(push, pop)


# --- latents: Gaussians on bins of equal prior mass -----------------------------------


def latent_values(layer: LatentEvent, indices: np.ndarray, precision: int) -> torch.Tensor:
    """The grid value fed to the network for bin ``indices``: the bin-centre quantile of
    the prior (dynamic bins) or of N(0, 1) (static bins)."""
    idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).view(layer.shape)
    if layer.static_bins:
        return bin_values(idx, precision)
    return bin_values(idx, precision, layer.prior_mean, layer.prior_std)


def gaussian_on_bins(mean: torch.Tensor, std: torch.Tensor, precision: int,
                     bin_mean: torch.Tensor | None = None, bin_std: torch.Tensor | None = None) -> Codec:
    """N(mean, std) per dimension, coded on the 2^p bins of equal mass under
    N(bin_mean, bin_std), or under N(0, 1) when no bin distribution is given."""
    mean, std = mean.reshape(-1, 1), std.reshape(-1, 1)
    if bin_mean is not None and bin_std is not None:
        bin_mean, bin_std = bin_mean.reshape(-1, 1), bin_std.reshape(-1, 1)

    def piece(lo: int, hi: int) -> Codec:
        if bin_mean is None or bin_std is None:
            return categorical(gaussian_bin_frequencies(mean[lo:hi], std[lo:hi], precision))
        return categorical(gaussian_bin_frequencies(mean[lo:hi], std[lo:hi], precision,
                                                    bin_mean[lo:hi], bin_std[lo:hi]))

    return chunked(len(mean), TABLE_BUDGET // 2**precision, piece)


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
