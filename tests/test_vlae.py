"""The VLAE path: autoregressive pixels in lockstep, the AF prior as per-dimension
layers, Bernoulli pixels, and the lossy mode (tiny random models)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bbcodec
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.lossy import DEFAULT_DRAWS, LossyCoder, mean_of_draws, reconstruct, replicated_walk
from bbcodec import codecs
from bbcodec.exact.export import integer_form
from bbcodec.nn.objective import LN2, elbo_terms
from bbcodec.quantised import quantiser_frequencies, symbol_range, walk_posterior_means
from tests.conftest import (
    TINY_VLAE_CONFIG,
    make_tiny,
    make_tiny_exact,
    observation_at_means,
    random_digits,
    tiny_calibration,
)

BINARY_CONFIG = dataclasses.replace(TINY_VLAE_CONFIG, likelihood="bernoulli")


def _images(config, n, seed):
    x = random_digits(n, seed, config.image_size)[:, None]
    return (x > 127).astype(np.uint8) if config.likelihood == "bernoulli" else x


def _round_trip(model, x, max_group):
    coder = BitsBackCoder(model, CoderSettings(max_group=max_group))
    result = coder.encode([x])
    shape = x.shape[1:]
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           iter([shape] * len(result.groups)))
    return result, np.concatenate(decoded)


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.sampled_from([TINY_VLAE_CONFIG, BINARY_CONFIG]), st.integers(0, 99))
def test_lossless_in_lockstep_for_any_partition(n, max_group, config, seed):
    model = make_tiny_exact(config, seed % 3)
    x = _images(config, n, seed)
    _, decoded = _round_trip(model, x, max_group)
    np.testing.assert_array_equal(decoded, x)


@pytest.mark.parametrize("config", [TINY_VLAE_CONFIG, BINARY_CONFIG], ids=["logistic", "bernoulli"])
def test_net_rate_matches_the_negative_elbo(config):
    """Many images in one chain pay about the model's -ELBO (sampled once, so within 3%)."""
    model = make_tiny(config, 0)
    x = _images(config, 300, 5)
    result, decoded = _round_trip(integer_form(model), x, 64)
    np.testing.assert_array_equal(decoded, x)
    with torch.no_grad():
        neg_elbo = torch.stack([elbo_terms(model, torch.from_numpy(x)).negative_elbo() for _ in range(20)]).mean()
    coded_bits = 32 * len(result.words) - result.initial_bits_used
    assert coded_bits / len(x) == pytest.approx(neg_elbo.item() / LN2, rel=0.03)


@pytest.mark.parametrize("config", [TINY_VLAE_CONFIG, BINARY_CONFIG], ids=["logistic", "bernoulli"])
def test_stepwise_tables_equal_the_teacher_forced_pass(config):
    """The decoder's steps and the encoder's parallel pass build the very same integer tables."""
    model = make_tiny_exact(config, 1)
    x = torch.from_numpy(_images(config, 4, 1))
    obs = observation_at_means(model, x)
    dist, symbols = obs.teacher_forced(x)
    parallel = codecs._rows(dist, 0, len(symbols)).view(obs.num_steps, len(x), -1)
    obs.reset()
    for t in range(obs.num_steps):
        assert torch.equal(codecs.pixel_frequencies(obs.step_distribution(t)), parallel[t])
        obs.write(t, x[obs.step_index(t)])


def test_the_decoder_never_reads_a_pixel_before_it_is_decoded():
    """Changing pixel t must not change the distribution of any pixel before t."""
    model = make_tiny(TINY_VLAE_CONFIG, 2)
    x = torch.from_numpy(_images(TINY_VLAE_CONFIG, 1, 2))
    with torch.no_grad():
        obs = observation_at_means(model, None, tuple(x.shape), use_prior=True)
        base = obs.log_prob(x)
        y = x.clone()
        y[0, 0, 5, 6] = 255 - y[0, 0, 5, 6]
        changed = (obs.log_prob(y) != base)[0, 0].nonzero().tolist()
    assert changed and min(i * 12 + j for i, j in changed) == 5 * 12 + 6


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 9), st.sampled_from([0.25, 1.0, 3.0]), st.integers(1, 8), st.integers(1, 5),
       st.integers(0, 99))
def test_lossy_decodes_to_the_encoders_reconstruction(n, step, group, draws, seed):
    model = make_tiny_exact(TINY_VLAE_CONFIG, seed % 3)
    coder = LossyCoder(model, step, group=group, draws=draws)
    x = _images(TINY_VLAE_CONFIG, n, seed)
    result = coder.encode([x], render=True)
    assert max(result.groups) <= max(1, group // draws)
    decoded = coder.decode(result.words, result.groups, [x.shape[1:]] * len(result.groups), result.latent_crc)
    for a, b in zip(decoded, result.reconstructions, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lossy_encoder_renders_nothing_unless_asked_and_the_decoder_checks_the_latents():
    model = make_tiny_exact(TINY_VLAE_CONFIG, 0)
    x = _images(TINY_VLAE_CONFIG, 4, 2)
    coder = LossyCoder(model, 1.0, draws=2)
    plain, rendered = coder.encode([x]), coder.encode([x], render=True)
    assert plain.reconstructions == [] and len(rendered.reconstructions) == len(rendered.groups)
    assert (plain.latent_crc, plain.latent_bits) == (rendered.latent_crc, rendered.latent_bits)
    np.testing.assert_array_equal(plain.words, rendered.words)
    with pytest.raises(bbcodec.DecodeMismatchError, match="latent code fails"):
        coder.decode(plain.words, plain.groups, [x.shape[1:]] * len(plain.groups), plain.latent_crc ^ 1)


@pytest.mark.parametrize("form", ["wide", "int8-w13"])
def test_copies_sharing_the_conditioning_draw_what_walking_every_copy_draws(form):
    """A lossy decoder's copies of one latent code reuse its conditioning; the draws are
    those of the model walked for every copy."""
    float_model = make_tiny(TINY_VLAE_CONFIG, 3)
    with torch.no_grad():
        for layer in (float_model.to_posterior, float_model.from_latent):  # z then depends on x, and the
            layer.weight.mul_(40)  # tiny model's conditioning on z
    model = integer_form(float_model) if form == "wide" else integer_form(float_model, tiny_calibration(), form)
    x = random_digits(5, seed=2, size=12)[:, None]
    obs, sent = walk_posterior_means(model, torch.from_numpy(x), 1.0)
    walked, copies = replicated_walk(model, sent, x.shape, 1.0, 3), obs.replicated(3)
    dense = lambda cond: cond if isinstance(cond, torch.Tensor) else cond.dense()  # noqa: E731
    assert not torch.equal(dense(walked.cond)[0], dense(walked.cond)[1]), "the images' conditioning differs"
    assert torch.equal(dense(copies.cond), dense(walked.cond))
    np.testing.assert_array_equal(reconstruct(copies, 7), reconstruct(walked, 7))


def test_mean_of_draws_rounds_half_up_per_pixel():
    draws = np.array([[[[0, 255, 3]]], [[[1, 255, 4]]]], dtype=np.uint8)  # rows s*N + n, N = 1
    np.testing.assert_array_equal(mean_of_draws(draws, 2), [[[[1, 255, 4]]]])
    many = np.random.default_rng(0).integers(0, 256, (3 * 4, 1, 5, 5)).astype(np.uint8)
    expected = np.floor(many.reshape(3, 4, 1, 5, 5).mean(axis=0) + 0.5)
    np.testing.assert_array_equal(mean_of_draws(many, 3), expected)


def test_more_draws_cost_no_bits_and_steady_the_picture():
    """Draws change only the picture: the same latent bits; the mean of many draws of
    one latent code lies closer to the model's E[x | z] than a single draw does."""
    model = make_tiny_exact(TINY_VLAE_CONFIG, 1)
    x = _images(TINY_VLAE_CONFIG, 6, 5)
    one, many = (LossyCoder(model, 1.0, draws=d).encode([x], render=True) for d in (1, 32))
    assert one.latent_bits == many.latent_bits
    reference = np.concatenate(LossyCoder(model, 1.0, draws=256).encode([x], render=True).reconstructions).astype(float)
    spread = [np.abs(np.concatenate(r.reconstructions).astype(float) - reference).mean() for r in (one, many)]
    assert spread[1] < spread[0] / 2


def test_lossy_rate_falls_as_the_step_grows():
    model = make_tiny_exact(TINY_VLAE_CONFIG, 0)
    x = _images(TINY_VLAE_CONFIG, 40, 3)
    bits = [LossyCoder(model, step).encode([x]).latent_bits for step in (0.125, 0.5, 2.0)]
    assert bits[0] > bits[1] > bits[2] > 0


@pytest.mark.parametrize("step", [1 / 64, 1.0, 16.0])
def test_quantiser_costs_the_discretised_normal_mass(step):
    """Coding q = 0 many times costs -log2 P(|eps| < step/2) bits each."""
    from math import erf, log2, sqrt

    from bbcodec.ans import Stack

    stack = Stack(np.full(4, 0xDEADBEEF, dtype=np.uint32))
    before = stack.num_valid_bits()
    m = symbol_range(step)
    codecs.categorical(quantiser_frequencies(step).expand(20000, -1)).push(stack, np.full(20000, m))
    expected = -log2(erf(step / 2 / sqrt(2)))
    assert (stack.num_valid_bits() - before) / 20000 == pytest.approx(expected, rel=0.01, abs=0.01)


def test_api_lossy_file_round_trip_and_refusals(zoo_env):
    x = [img[0] for img in _images(TINY_VLAE_CONFIG, 5, 9)]
    data = bbcodec.compress(x, model="tiny-vlae", lossy_step=0.5)
    info = bbcodec.inspect(data)
    assert info.lossy and info.lossy_step == 0.5 and info.initial_bits == 0 and info.lossy_draws == DEFAULT_DRAWS
    assert info.samples == 1
    out = bbcodec.decompress(data)
    assert [o.shape for o in out] == [i.shape for i in x]
    averaged = bbcodec.compress(x, model="tiny-vlae", lossy_step=0.5, lossy_draws=4)
    assert bbcodec.inspect(averaged).lossy_draws == 4
    assert [o.shape for o in bbcodec.decompress(averaged)] == [i.shape for i in x]
    lossless = bbcodec.compress(x, model="tiny-vlae")
    assert [np.array_equal(a, b) for a, b in zip(bbcodec.decompress(lossless), x)] == [True] * 5
    with pytest.raises(bbcodec.UnsupportedImageError, match="12x12 images only"):
        bbcodec.compress([np.zeros((28, 28), np.uint8)], model="tiny-vlae")


def test_binary_model_codes_zero_one_images_and_refuses_others(zoo_env):
    x = [img[0] for img in _images(BINARY_CONFIG, 4, 4)]
    out = bbcodec.decompress(bbcodec.compress(x, model="tiny-vlae-binary"))
    assert all(np.array_equal(a, b) for a, b in zip(out, x))
    with pytest.raises(bbcodec.UnsupportedImageError, match="must be 0 or 1"):
        bbcodec.compress([img * 255 for img in x], model="tiny-vlae-binary")


def test_automatic_choice_skips_fixed_size_and_binary_models(zoo_env):
    """Without --model a 12x12 grayscale image may go to tiny or tiny-vlae, never the binary model;
    a 28x28 one only to a model that codes any size."""
    from bbcodec.api import choose_model

    assert choose_model([np.zeros((28, 28), np.uint8)], None).name not in ("tiny-vlae", "tiny-vlae-binary")
    assert choose_model([np.zeros((12, 12), np.uint8)], None).name != "tiny-vlae-binary"
    assert choose_model([np.zeros((12, 12), np.uint8)], None, lossy=True).name == "tiny-vlae"
    assert choose_model([np.zeros((28, 28), np.uint8)], None, lossy=True).accepts(28, 28)


@pytest.mark.parametrize("name", ["vlae-mnist-large-q8-int8enc", "vlae-mnist-fast-q8"])
def test_the_prior_one_dimension_at_a_time_equals_the_whole_network(name):
    """A decoder's latent step evaluates the MADE prior on the hidden units dimension i
    reads alone (:meth:`IMADEPrior.dim`); every dimension's integers are the whole
    network's, and the units it skips are most of the network's."""
    from bbcodec import zoo

    prior = zoo.load_model(name)[0].prior
    dims = prior.out.weight.shape[0] // 2
    z = torch.round(torch.randn(200, dims, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2**14)
    mean, std = prior(z)
    for i in range(dims):
        got_mean, got_std = prior.dim(z, i)
        assert torch.equal(got_mean, mean[:, i]) and torch.equal(got_std, std[:, i]), i
    units = sum(0 if path is None else path[1].weight.numel() for path in prior._paths())
    assert units < dims * prior.layer2.weight.numel() / 2


def test_a_replayed_walk_has_the_priors_of_the_walk_it_replays():
    """A decoder's second walk hands back what its first decoded; with ``known`` the
    VLAE computes every prior in one pass of the MADE prior, and each event carries
    the integers the first walk's did. A replay that hands back anything else fails."""
    from bbcodec.walk import replay, walk_latents

    model, precision = make_tiny_exact(TINY_VLAE_CONFIG, seed=3), 10
    x = torch.from_numpy(_images(TINY_VLAE_CONFIG, 6, seed=2))
    shape = tuple(x.shape)
    rng = np.random.default_rng(0)
    decoded = walk_latents(model, None, shape, precision, lambda event: rng.integers(0, 2**precision, len(x)))
    assert len(decoded.values) == TINY_VLAE_CONFIG.latent_dims
    walks = [walk_latents(model, x, shape, precision, replay(decoded.priors), n_priors=len(decoded.priors),
                          known=known) for known in (None, decoded.values)]
    for (one, _), (replayed, _), (first, _) in zip(walks[0].posteriors, walks[1].posteriors, decoded.priors):
        for field in ("prior_mean", "prior_std", "post_mean", "post_std"):
            assert torch.equal(getattr(one, field), getattr(replayed, field)), field
        assert torch.equal(replayed.prior_mean, first.prior_mean) and torch.equal(replayed.prior_std, first.prior_std)
    wrong = [v.clone() for v in decoded.values]
    wrong[1] += 1
    with pytest.raises(ValueError, match="dimension 1"):
        walk_latents(model, x, shape, precision, replay(decoded.priors), n_priors=len(decoded.priors), known=wrong)
