"""Importance-weighted bits-back: exact for any K and partition, pays about -L_K."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bbcodec
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.exact.export import integer_form
from bbcodec.nn.hvae import HVAEConfig, LatentSpec
from bbcodec.nn.objective import LN2, elbo_terms, iwae_bound
from tests.conftest import TINY_CONFIG, TINY_VLAE_CONFIG, coder_round_trip, make_tiny, make_tiny_exact, random_digits

LOCAL_RGB = HVAEConfig(image_channels=3, width=8, stages=2, latents=(LatentSpec(1, 2), LatentSpec(0, 1)),
                       mixture_components=2, channel_coupling=True, window_rows=2, window_cols=3, local_hidden=8)
MODELS = {"hvae": (TINY_CONFIG, (1, 28, 28)), "vlae": (TINY_VLAE_CONFIG, (1, 12, 12)),
          "local-rgb": (LOCAL_RGB, (3, 6, 8))}


def _images(shape, n, seed):
    c, h, w = shape
    digits = random_digits(n, seed, max(h, w))[:, None, :h, :w]
    return np.repeat(digits, c, axis=1)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(sorted(MODELS)), st.integers(1, 8), st.integers(2, 5), st.integers(1, 4),
       st.booleans(), st.integers(0, 99))
def test_importance_weighted_chains_are_lossless(name, n, k, max_group, anchored, seed):
    config, shape = MODELS[name]
    x = _images(shape, n, seed)
    settings_ = CoderSettings(max_group=max_group, samples=k, anchor_step=1.0 if anchored else None)
    _, decoded = coder_round_trip(BitsBackCoder(make_tiny_exact(config, seed % 2), settings_), x)
    np.testing.assert_array_equal(decoded, x)


def test_net_rate_falls_below_the_elbo_towards_the_iwae_bound():
    """Many images in one chain: K = 8 pays less than the -ELBO, about -L_8."""
    model = make_tiny(TINY_CONFIG, 0)
    x = random_digits(200, 5)[:, None]
    result, decoded = coder_round_trip(BitsBackCoder(integer_form(model), CoderSettings(max_group=32, samples=8)), x)
    np.testing.assert_array_equal(decoded, x)
    net = (32 * len(result.words) - result.initial_bits_used) / len(x)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        neg_elbo = np.mean([elbo_terms(model, xt).negative_elbo().mean().item() for _ in range(10)]) / LN2
        neg_l8 = iwae_bound(model, xt, 8).mean().item() / LN2
    assert neg_l8 < neg_elbo
    assert net < neg_elbo
    assert net == pytest.approx(neg_l8, rel=0.01)


def test_files_record_the_sample_count(zoo_env):
    images = [img for img in random_digits(4, 2)]
    data = bbcodec.compress(images, model="tiny", samples=4)
    assert bbcodec.inspect(data).samples == 4
    assert all(np.array_equal(a, b) for a, b in zip(bbcodec.decompress(data), images))


def test_importance_weighted_chains_borrow_no_more_initial_bits_than_plain_ones():
    """The warm-up: K = 8 starts on plain groups, so its start costs what a plain chain's does
    (without it, the first K-sample image draws K times the latent bits from initial bits)."""
    model = make_tiny_exact(TINY_CONFIG, 1)
    x = random_digits(120, 3)[:, None]
    plain, _ = coder_round_trip(BitsBackCoder(model, CoderSettings(max_group=16, anchor_step=1.0)), x)
    weighted, decoded = coder_round_trip(BitsBackCoder(model, CoderSettings(max_group=16, anchor_step=1.0, samples=8)), x)
    np.testing.assert_array_equal(decoded, x)
    assert 1 <= weighted.plain_groups < len(weighted.groups)  # it warmed up, then weighted the rest
    assert weighted.initial_bits_used <= plain.initial_bits_used
