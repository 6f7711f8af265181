"""Every codec and the stack round-trip exactly, for random and extreme integer parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bbcodec import codecs
from bbcodec.ans import Stack, StackUnderflowError
from bbcodec.contract import GaussianLatent
from bbcodec.exact import tables
from bbcodec.exact.distributions import BernoulliPixels, Logistics, logistic_kernel_tables
from bbcodec.exact.fixed import FRAC, ONE, PROB_TOTAL, weights_to_frequencies
from bbcodec.exact.kernels import interval_symbols, logistic_value_interval


@st.composite
def frequency_tables(draw):
    """Integer tables from extreme weights: one-hot, tiny masses, mostly zeros."""
    n = draw(st.integers(1, 40))
    k = draw(st.integers(2, 300))
    style = draw(st.sampled_from(["random", "onehot", "tiny", "zeros"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "random":
        w = rng.integers(0, 2**30, (n, k))
    elif style == "onehot":
        w = np.eye(k, dtype=np.int64)[rng.integers(0, k, n)] * 2**30
    elif style == "tiny":
        w = rng.integers(0, 3, (n, k))
        w[:, 0] = 2**37
    else:
        w = np.where(rng.random((n, k)) < 0.9, 0, rng.integers(1, 2**20, (n, k)))
        w[:, -1] += 1
    return weights_to_frequencies(torch.from_numpy(w)), rng.integers(0, k, n)


@settings(max_examples=200, deadline=None)
@given(frequency_tables())
def test_categorical_round_trip_any_table(table):
    freqs, symbols = table
    assert bool((freqs.sum(1) == PROB_TOTAL).all()) and int(freqs.min()) >= 1
    codec = codecs.categorical(freqs)
    stack = Stack()
    stack.push(np.array([7]), codecs.entropy_models.Uniform(16))  # something below, must survive
    codec.push(stack, symbols)
    np.testing.assert_array_equal(codec.pop(stack), symbols)
    assert stack.pop(codecs.entropy_models.Uniform(16), count=1)[0] == 7


def test_categorical_codes_exactly_the_integer_frequencies():
    """constriction's quantisation of ``freqs − 1`` is the identity: a symbol of frequency f
    costs exactly 24 − log2 f bits (measured on the stack over many pushes)."""
    freqs = torch.tensor([[1, 2**20, PROB_TOTAL - 2**20 - 1]] * 4000)
    stack = Stack(np.random.default_rng(0).integers(1, 2**32, 8, dtype=np.uint64).astype(np.uint32))
    before = stack.num_valid_bits()
    codecs.categorical(freqs).push(stack, np.full(4000, 1))
    assert abs(stack.num_valid_bits() - before - 4000 * 4.0) <= 32
    codecs.categorical(freqs[:100]).push(stack, np.zeros(100))  # frequency 1: 24 bits each
    assert abs(stack.num_valid_bits() - before - 4000 * 4.0 - 100 * 24.0) <= 64


def test_categorical_rejects_bad_tables():
    wraps = torch.tensor([[2**62, 2**62, 2**62, 2**62 + PROB_TOTAL]])  # sums to 2^24 modulo 2^64
    many = torch.full((300, 2), PROB_TOTAL // 2)  # enough rows for the threaded check
    many[257, 0] += 1
    for bad in (torch.tensor([[0, PROB_TOTAL]]), torch.tensor([[1, 1]]), torch.ones(3, dtype=torch.int64), wraps,
                many):
        with pytest.raises(ValueError):
            codecs.categorical(bad)
    codec = codecs.categorical(torch.tensor([[PROB_TOTAL // 2] * 2] * 2))
    with pytest.raises(ValueError):
        codec.push(Stack(), np.array([0, 2]))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 2000), st.integers(2, 1 << 16), st.integers(0, 2**32 - 1))
def test_uniform_round_trip(count, n, seed):
    symbols = np.random.default_rng(seed).integers(0, n, count)
    codec = codecs.uniform(n, count)
    stack = Stack()
    codec.push(stack, symbols)
    np.testing.assert_array_equal(codec.pop(stack), symbols)
    assert stack.is_empty()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.floats(-30, 30), st.floats(-7, 5), st.integers(0, 2**32 - 1))
def test_logistic_mixture_pixels_round_trip(k, c, mean_scale, log_scale, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, c, 3, 5, k)
    grid = lambda t: torch.round(t * ONE)  # noqa: E731
    obs = Logistics.from_params(grid(torch.randn(shape, generator=gen) * 5),
                                grid(torch.randn(shape, generator=gen) * mean_scale),
                                grid(torch.full(shape, log_scale) + torch.rand(shape, generator=gen)))
    x = torch.randint(0, 256, (2, c, 3, 5), generator=gen).to(torch.uint8).numpy()
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0, 255  # edge bins carry the tails
    stack = Stack()
    codecs.pixels(obs).push(stack, x)
    np.testing.assert_array_equal(codecs.pixels(obs).pop(stack), x)


def test_pixel_tables_match_the_float_likelihood():
    """The integer table is the model's distribution: −log2 f/2^24 equals the float
    discretised logistic's −log2 p(x) to 0.02 bits + 0.5% where p(x) > 1e-4."""
    from bbcodec.contract import LogisticMixture
    from bbcodec.nn.likelihoods import logistic_mixture_log_prob

    gen = torch.Generator().manual_seed(0)
    shape = (4, 3, 1, 6, 6)
    logits, means, log_scales = (torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) * 0.8,
                                 torch.randn(shape, generator=gen) - 3)
    x = torch.randint(0, 256, (4, 1, 6, 6), generator=gen).to(torch.uint8)
    last = lambda t: torch.round(t.permute(0, 2, 3, 4, 1) * ONE)  # noqa: E731
    freqs = Logistics.from_params(last(logits), last(means), last(log_scales)).frequencies()
    from_table = np.log2(freqs[torch.arange(len(freqs)), x.reshape(-1).long()].numpy() / PROB_TOTAL)
    from_loss = logistic_mixture_log_prob(LogisticMixture(logits, means, log_scales), x).numpy().ravel() / math.log(2)
    mask = from_loss > np.log2(1e-4)
    np.testing.assert_allclose(from_table[mask], from_loss[mask], atol=0.02, rtol=0.005)


def test_compiled_pixel_tables_equal_the_torch_definition():
    gen = torch.Generator().manual_seed(3)
    shape = (50, 1, 4, 4, 5)
    d = Logistics.from_params(torch.round(torch.randn(shape, generator=gen) * 3 * ONE),
                              torch.round(torch.randn(shape, generator=gen) * ONE),
                              torch.round((torch.randn(shape, generator=gen) * 2 - 3) * ONE))
    assert torch.equal(d.frequencies(), d.frequencies_reference())


def test_compiled_pixel_tables_equal_the_torch_definition_at_the_extremes():
    """Components far sharper and far broader than the bins, zero weights and clamped
    means: every clamp of the compiled tables' look-up ranges is crossed."""
    d = _extreme_mixtures(400, torch.Generator().manual_seed(4))
    assert torch.equal(d.frequencies(), d.frequencies_reference())


def _extreme_mixtures(m: int, gen: torch.Generator, k: int = 5) -> Logistics:
    """``m`` mixtures whose components are far sharper and far broader than the bins,
    with zero weights and clamped means."""
    weights = torch.randint(0, 2**15 // k, (m, k), generator=gen)
    weights[torch.rand(m, k, generator=gen) < 0.3] = 0
    means = torch.randint(-5 * ONE, 5 * ONE, (m, k), generator=gen).clamp(-4 * ONE, 4 * ONE)
    inv_scales = torch.exp2(torch.randint(0, 40, (m, k), generator=gen).double()).long()
    return Logistics(weights, means, inv_scales)


def test_encoder_intervals_are_the_full_tables_own():
    """The encoder's 3-entry tables give every pixel the start and frequency its full
    256-entry table gives it, so pushing them leaves the same stack (extremes included:
    sharp and broad components, zero weights, clamped means, values 0 and 255)."""
    gen, m = torch.Generator().manual_seed(5), 600
    d = _extreme_mixtures(m, gen)
    x = torch.randint(0, 256, (m,), generator=gen).numpy()
    x[:50], x[50:100] = 0, 255
    full = d.frequencies().numpy()
    starts = np.concatenate([np.zeros((m, 1), np.int64), np.cumsum(full, 1)], 1)
    three = d.intervals(x).numpy()
    entry = interval_symbols(x, 256)
    three_starts = np.concatenate([np.zeros((m, 1), np.int64), np.cumsum(three, 1)], 1)
    rows = np.arange(m)
    assert (three.sum(1) == PROB_TOTAL).all() and (three >= 1).all()
    np.testing.assert_array_equal(three[rows, entry], full[rows, x])
    np.testing.assert_array_equal(three_starts[rows, entry], starts[rows, x])
    by_table, by_interval = Stack(), Stack()
    codecs.categorical(torch.from_numpy(full)).push(by_table, x)
    codecs.categorical(torch.from_numpy(three)).push(by_interval, entry)
    np.testing.assert_array_equal(by_table.words(), by_interval.words())


def test_a_pop_without_the_table_finds_the_full_tables_value_and_interval():
    """The table-free search (:func:`bbcodec.exact.kernels.logistic_value_interval`: the
    heaviest component's bin first, then bisection) gives the value, start and frequency
    the full table gives, at the first and last quantile of random values' intervals and
    at random quantiles, for sharp, broad, zero-weight and clamped mixtures."""
    gen, m = torch.Generator().manual_seed(6), 600
    d = _extreme_mixtures(m, gen)
    full = d.frequencies().numpy()
    starts = np.concatenate([np.zeros((m, 1), np.int64), np.cumsum(full, 1)], 1)
    x = torch.randint(0, 256, (m,), generator=gen).numpy()
    x[:50], x[50:100] = 0, 255
    rows = np.arange(m)
    quantiles = np.stack([starts[rows, x], starts[rows, x] + full[rows, x] - 1,
                          torch.randint(0, PROB_TOTAL, (m,), generator=gen).numpy()], 1)
    edges, sigmoid, shift, offset = logistic_kernel_tables()[-4:]
    w, mu, inv = (t.contiguous().numpy() for t in (d.weights, d.means, d.inv_scales))
    for r in range(m):
        for q in quantiles[r]:
            value = int(np.searchsorted(starts[r], q, side="right")) - 1
            found = logistic_value_interval(r, int(q), w, mu, inv, edges, sigmoid, shift, offset)
            assert found == (value, starts[r, value], full[r, value]), (r, q)


def test_the_tables_make_every_mixture_cdf_non_decreasing():
    """What makes the table-free search's answer unique (whatever order it searches in):
    sorted bin edges, a non-decreasing sigmoid, non-negative weights and inverse scales."""
    edges, sigmoid = logistic_kernel_tables()[-4:-2]
    exp_neg, _, exp_table = logistic_kernel_tables()[:3]
    assert (np.diff(edges) > 0).all() and (np.diff(sigmoid) >= 0).all()
    assert (exp_neg >= 0).all() and (exp_table >= 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 10), st.floats(-6, 6), st.floats(-12, 4), st.booleans(), st.integers(0, 2**32 - 1))
def test_compiled_gaussian_tables_equal_the_torch_definition(precision, shift, log_ratio, own_bins, seed):
    """Posteriors far inside, across and outside the prior's bins, on shared edges (N(0, 1)
    bins) and on each row's own: every clamp of the compiled look-up range is crossed."""
    from bbcodec.exact.distributions import gaussian_frequencies, gaussian_frequencies_reference

    gen = torch.Generator().manual_seed(seed)
    rows = 23
    q = tables.load().normal_edges(precision)
    if own_bins:
        bin_mean = torch.round(torch.randn(rows, generator=gen) * ONE).long()
        bin_std = torch.round(torch.rand(rows, generator=gen) * 2 * ONE).long() + 1
        edges = (q, bin_mean << FRAC, bin_std)  # each row's own: (bin_mean << FRAC) + bin_std * q
    else:
        edges = (q << FRAC,)
    mean = torch.round((torch.randn(rows, generator=gen) + shift) * ONE).long()
    std = torch.round(torch.exp(torch.randn(rows, generator=gen) + log_ratio) * ONE).long()
    kernel = gaussian_frequencies(edges[0], mean, std, *edges[1:])
    assert torch.equal(kernel, gaussian_frequencies_reference(edges[0], mean, std, *edges[1:]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.floats(0, 40), st.floats(0, 8), st.integers(0, 2**32 - 1))
def test_packed_parameters_equal_the_torch_definition(k, logit_spread, log_scale_spread, seed):
    gen = torch.Generator().manual_seed(seed)
    rows = 37
    logits = torch.round(torch.randn(rows, k, generator=gen) * logit_spread * ONE)
    means = torch.round(torch.randn(rows, k, generator=gen) * 3 * ONE)
    log_scales = torch.round((torch.randn(rows, k, generator=gen) * log_scale_spread - 3) * ONE)
    packed = torch.cat([logits, means, log_scales], dim=1).view(rows, 1, 1, 3 * k)
    got = Logistics.from_packed(packed, k)
    want = Logistics.from_params(logits, means, log_scales)
    for a, b in zip((got.weights, got.means, got.inv_scales), (want.weights, want.means, want.inv_scales)):
        assert torch.equal(a.view(rows, k), b)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.floats(-3, 3), st.floats(-6, 1), st.floats(-8, 8), st.floats(-8, 2),
       st.integers(0, 2**32 - 1))
def test_posterior_on_prior_bins_round_trip(precision, prior_mu, prior_logstd, post_shift, post_logratio, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 3, 2, 2)
    prior_mean = torch.full(shape, prior_mu) + torch.randn(shape, generator=gen)
    prior_std = torch.exp(torch.full(shape, prior_logstd))
    grid = lambda t: torch.round(t * ONE).long().clamp(-(2**27), 2**27)  # noqa: E731
    layer = GaussianLatent(grid(prior_mean), grid(prior_std).clamp(min=1), grid(prior_mean + post_shift * prior_std),
                           grid(prior_std * float(np.exp(post_logratio))).clamp(min=1))
    # Bits-back: pop from the posterior, push under the prior; decoder does the mirror.
    stack = Stack(np.random.default_rng(seed).integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32))
    before = stack.words()
    idx = codecs.posterior_on_prior_bins(layer, precision).pop(stack)
    assert idx.min() >= 0 and idx.max() < 2**precision
    codecs.prior_bins(layer, precision).push(stack, idx)
    again = codecs.prior_bins(layer, precision).pop(stack)
    np.testing.assert_array_equal(again, idx)
    codecs.posterior_on_prior_bins(layer, precision).push(stack, again)
    np.testing.assert_array_equal(stack.words(), before)


def test_latent_values_follow_the_prior():
    layer = GaussianLatent(torch.full((1, 1, 1, 4), 2 * ONE), torch.full((1, 1, 1, 4), 3 * ONE))
    values = codecs.latent_values(layer, np.array([0, 127, 128, 255]), 8).double() / ONE
    assert values[0, 0, 0, 0] < 2 - 3 * 2.5 and abs(values[0, 0, 0, 1] - 2) < 0.05 and values[0, 0, 0, 3] > 2 + 7.5


def test_drained_stack_is_detected():
    stack = Stack(np.array([5, 6, 7], dtype=np.uint32))
    codecs.uniform(256, 3).pop(stack)
    with pytest.raises(StackUnderflowError):
        stack.ensure_not_drained()


@given(arrays(np.uint32, st.integers(1, 50)))
def test_stack_words_round_trip(words):
    if words[-1] == 0:  # constriction normalises away leading zero words at the top
        words[-1] = 1
    assert np.array_equal(Stack(words).words(), words)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-40.0, 40.0), min_size=1, max_size=300), st.integers(0, 2**32 - 1))
def test_bernoulli_round_trip_including_near_certain_outcomes(logits, seed):
    dist = BernoulliPixels.from_logits(torch.round(torch.tensor(logits, dtype=torch.float64) * ONE))
    bits = (np.random.default_rng(seed).random(len(logits)) < 0.5).astype(np.uint8)  # even unlikely ones
    stack = Stack()
    codecs.pixels(dist).push(stack, bits)
    np.testing.assert_array_equal(codecs.pixels(dist).pop(stack), bits)


def test_serial_combinator_codes_pieces_in_order():
    half = torch.tensor([[PROB_TOTAL // 10] * 9 + [PROB_TOTAL - 9 * (PROB_TOTAL // 10)]] * 2)
    pieces = [codecs.uniform(4, 3), codecs.categorical(half), codecs.uniform(2, 1)]
    codec = codecs.serial(pieces, [3, 2, 1])
    symbols = np.array([3, 0, 2, 9, 4, 1])
    stack = Stack()
    codec.push(stack, symbols)
    np.testing.assert_array_equal(codec.pop(stack), symbols)
    assert stack.is_empty()
