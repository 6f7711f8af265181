"""Every codec and the stack round-trip exactly, for random and extreme parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bbcodec import codecs
from bbcodec.ans import Stack, StackUnderflowError
from bbcodec.contract import GaussianLatent, LogisticMixture

finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, width=32)


@st.composite
def prob_tables(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(2, 300))
    style = draw(st.sampled_from(["random", "onehot", "tiny", "zeros"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "random":
        p = rng.random((n, k)) ** rng.uniform(0.1, 20)
    elif style == "onehot":
        p = np.eye(k)[rng.integers(0, k, n)]
    elif style == "tiny":
        p = rng.random((n, k)) * 10.0 ** rng.uniform(-40, -10, (n, 1))
        p[:, 0] = 1.0
    else:
        p = np.where(rng.random((n, k)) < 0.9, 0.0, rng.random((n, k)))
        p[:, -1] += 1e-30 + rng.random(n)
    symbols = rng.integers(0, k, n)
    return p.astype(np.float32), symbols


@settings(max_examples=200, deadline=None)
@given(prob_tables())
def test_categorical_round_trip_any_table(table):
    probs, symbols = table
    codec = codecs.categorical(probs)
    stack = Stack()
    stack.push(np.array([7]), codecs.models.Uniform(16))  # something below, must survive
    codec.push(stack, symbols)
    np.testing.assert_array_equal(codec.pop(stack), symbols)
    assert stack.pop(codecs.models.Uniform(16), count=1)[0] == 7


def test_categorical_rejects_bad_tables():
    for bad in (np.array([[np.nan, 1.0]]), np.array([[-1.0, 2.0]]), np.zeros((1, 3)), np.ones(3), np.array([[np.inf, 1.0]])):
        with pytest.raises(ValueError):
            codecs.categorical(bad)
    codec = codecs.categorical(np.ones((2, 4)))
    with pytest.raises(ValueError):
        codec.push(Stack(), np.array([0, 4]))


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
    shape = (2, k, c, 3, 5)
    obs = LogisticMixture(
        logits=torch.randn(shape, generator=gen) * 5,
        means=torch.randn(shape, generator=gen) * mean_scale,
        log_scales=torch.full(shape, log_scale) + torch.rand(shape, generator=gen),
    )
    x = torch.randint(0, 256, (2, c, 3, 5), generator=gen).to(torch.uint8).numpy()
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0, 255  # edge bins carry the tails
    codec = codecs.pixels(obs)
    stack = Stack()
    codec.push(stack, x)
    np.testing.assert_array_equal(codecs.pixels(obs).pop(stack), x)


def test_pixel_tables_match_training_likelihood():
    """The coder's table is the model's distribution: costs equal -log p(x) to 1e-4 bits."""
    from bbcodec.nn.likelihoods import logistic_mixture_log_prob

    gen = torch.Generator().manual_seed(0)
    shape = (4, 3, 1, 6, 6)
    obs = LogisticMixture(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) * 0.8,
                          torch.randn(shape, generator=gen) - 3)
    x = torch.randint(0, 256, (4, 1, 6, 6), generator=gen).to(torch.uint8)
    flat = lambda t: t.permute(0, 2, 3, 4, 1).reshape(-1, 3)
    table = codecs.logistic_mixture_probs(flat(obs.logits), flat(obs.means), flat(obs.log_scales)).numpy()
    from_table = np.log(np.maximum(table[np.arange(len(table)), x.numpy().ravel()], 1e-30))
    from_loss = logistic_mixture_log_prob(obs, x).numpy().ravel()
    mask = from_table > np.log(1e-4)  # where float32 differences of CDFs are accurate
    np.testing.assert_allclose(from_table[mask], from_loss[mask], atol=2e-3)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.floats(-3, 3), st.floats(-6, 1), st.floats(-8, 8), st.floats(-8, 2),
       st.integers(0, 2**32 - 1))
def test_posterior_on_prior_bins_round_trip(precision, prior_mu, prior_logstd, post_shift, post_logratio, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 3, 2, 2)
    prior_mean = torch.full(shape, prior_mu) + torch.randn(shape, generator=gen)
    prior_std = torch.exp(torch.full(shape, prior_logstd))
    layer = GaussianLatent(prior_mean, prior_std, prior_mean + post_shift * prior_std,
                           prior_std * float(np.exp(post_logratio)))
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
    layer = GaussianLatent(torch.zeros(1, 1, 1, 4) + 2.0, torch.ones(1, 1, 1, 4) * 3.0)
    values = codecs.latent_values(layer, np.array([0, 127, 128, 255]), 8)
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
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300), st.integers(0, 2**32 - 1))
def test_bernoulli_round_trip_including_certain_outcomes(ps, seed):
    p = np.array(ps, dtype=np.float32)
    bits = (np.random.default_rng(seed).random(len(p)) < 0.5).astype(np.int64)  # even impossible ones
    codec = codecs.bernoulli(p)
    stack = Stack()
    codec.push(stack, bits)
    np.testing.assert_array_equal(codec.pop(stack), bits)


def test_serial_combinator_codes_pieces_in_order():
    pieces = [codecs.uniform(4, 3), codecs.categorical(np.ones((2, 10))), codecs.bernoulli(np.array([0.9]))]
    codec = codecs.serial(pieces, [3, 2, 1])
    symbols = np.array([3, 0, 2, 9, 4, 1])
    stack = Stack()
    codec.push(stack, symbols)
    np.testing.assert_array_equal(codec.pop(stack), symbols)
    assert stack.is_empty()
