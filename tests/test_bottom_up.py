"""BIVA's bottom-up latents: an inference pass before the top-down walk, static bins,
and every coder (plain, anchored, importance-weighted, lossy) still exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bbcodec.exact.export import integer_form
from bbcodec.bitsback import ANCHOR_STEPS, BitsBackCoder, CoderSettings
from bbcodec.contract import GaussianLatent, InferredLatent
from bbcodec.lossy import LossyCoder
from bbcodec.nn.hvae import HVAE, HVAEConfig, LatentSpec, bottom_up_key
from bbcodec.nn.objective import LN2, elbo_terms, iwae_bound
from tests.conftest import TINY_BIVA_CONFIG, coder_round_trip, make_tiny, make_tiny_exact, random_digits


def _events(model, x):
    steps = model.latent_steps(x, tuple(x.shape))
    events, event = [], next(steps)
    try:
        while True:
            events.append(event)
            z = event.post_mean if event.post_mean is not None else event.prior_mean
            event = steps.send(z)
    except StopIteration:
        return events


def test_inference_pass_comes_first_and_every_prior_names_its_latent():
    model = make_tiny(TINY_BIVA_CONFIG, 0)
    x = torch.from_numpy(random_digits(2, 1)[:, None])
    with torch.no_grad():
        encode_side = _events(model, x)
    # lowest bottom-up latent first (layer 1 lives at a finer stage than layer 0)
    assert all(isinstance(e, InferredLatent) for e in encode_side[:2])
    assert [e.key for e in encode_side[:2]] == [bottom_up_key(1), bottom_up_key(0)]
    priors = encode_side[2:]
    assert [e.inferred for e in priors] == [bottom_up_key(0), None, bottom_up_key(1), None]
    assert all(e.static_bins and e.post_mean is None for e in priors if e.inferred)


def test_a_decoder_sees_only_prior_events():
    model = make_tiny(TINY_BIVA_CONFIG, 0)
    steps = model.latent_steps(None, (2, 1, 28, 28))
    event, seen = next(steps), []
    try:
        while True:
            seen.append(event)
            event = steps.send(event.prior_mean)
    except StopIteration:
        pass
    assert all(isinstance(e, GaussianLatent) and e.post_mean is None for e in seen)
    assert len(seen) == 4


def test_prior_event_of_an_inferred_latent_must_use_static_bins():
    with pytest.raises(ValueError):
        GaussianLatent(torch.zeros(1), torch.ones(1), inferred="k")


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 9), st.integers(1, 4), st.sampled_from([None, *ANCHOR_STEPS]), st.sampled_from([1, 3]),
       st.integers(6, 12), st.integers(0, 99))
def test_bottom_up_latents_code_losslessly(n, max_group, anchor, samples, precision, seed):
    x = random_digits(n, seed)[:, None]
    coder = BitsBackCoder(make_tiny_exact(TINY_BIVA_CONFIG, seed % 2),
                          CoderSettings(latent_precision=precision, max_group=max_group, anchor_step=anchor,
                                        samples=samples))
    _, decoded = coder_round_trip(coder, x)
    np.testing.assert_array_equal(decoded, x)


def test_bits_back_pays_about_the_elbo_with_bottom_up_latents():
    model = make_tiny(TINY_BIVA_CONFIG, 0)
    x = random_digits(48, 5)[:, None]
    coder = BitsBackCoder(integer_form(model), CoderSettings(latent_precision=12, max_group=16))
    result, decoded = coder_round_trip(coder, x)
    np.testing.assert_array_equal(decoded, x)
    torch.manual_seed(0)
    with torch.no_grad():
        neg_elbo = np.mean([elbo_terms(model, torch.from_numpy(x)).negative_elbo().mean().item()
                            for _ in range(10)]) / LN2
    coded = (32 * len(result.words) - result.initial_bits_used) / len(x)
    assert coded == pytest.approx(neg_elbo, rel=0.02)


def test_elbo_counts_a_kl_per_part_and_iwae_is_tighter():
    model = make_tiny(TINY_BIVA_CONFIG, 1)
    x = torch.from_numpy(random_digits(6, 2)[:, None])
    torch.manual_seed(0)
    with torch.no_grad():
        terms = elbo_terms(model, x)
        assert len(terms.kl_per_layer) == 4  # two layers, each a bottom-up and a top-down part
        top_down = terms.kl_per_layer[1::2]  # closed form; bottom-up parts are one-sample estimates
        assert all(bool((kl >= -1e-5).all()) for kl in top_down)
        neg_elbo = np.mean([elbo_terms(model, x).negative_elbo().mean().item() for _ in range(20)])
        assert iwae_bound(model, x, 32).mean().item() < neg_elbo


def test_bottom_up_posterior_ignores_the_top_down_latents():
    """q(z_bu | x) must not read anything the top-down walk decides (else no inference pass)."""
    model = make_tiny(TINY_BIVA_CONFIG, 0)
    x = torch.from_numpy(random_digits(1, 7)[:, None])
    with torch.no_grad():
        firsts = []
        for td_value in (0.0, 3.0):
            steps = model.latent_steps(x, tuple(x.shape))
            event, inferred = next(steps), {}
            try:
                while True:
                    if isinstance(event, InferredLatent):
                        inferred[event.key] = event.post_mean.clone()
                        event = steps.send(event.post_mean)
                    elif event.inferred is not None:
                        event = steps.send(inferred[event.inferred])
                    else:
                        event = steps.send(torch.full_like(event.prior_mean, td_value))
            except StopIteration:
                firsts.append(list(inferred.values()))
        for a, b in zip(*firsts):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("draws", [1, 3])
def test_lossy_files_of_a_bottom_up_model_decode_to_what_the_encoder_showed(draws):
    coder = LossyCoder(make_tiny_exact(TINY_BIVA_CONFIG, 0), step=0.75, group=3, draws=draws)
    x = random_digits(5, 9)[:, None]
    result = coder.encode([x], render=True)
    shown = coder.decode(result.words, result.groups, [(1, 28, 28)] * len(result.groups), result.latent_crc)
    for a, b in zip(shown, result.reconstructions, strict=True):
        np.testing.assert_array_equal(a, b)


def test_old_configs_load_without_bottom_up_parameters():
    cfg = HVAEConfig.from_dict({"latents": [{"stage": 2, "channels": 4}]})
    assert cfg.latents == (LatentSpec(2, 4, 0),)
    assert not any("bottom_up" in k for k in HVAE(cfg).state_dict())
