"""Anchored chains: the first image sends its latents quantised and borrows nothing,
later images borrow from it (any model of the contract, any partition)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bbcodec
from bbcodec import bbans
from bbcodec.ans import Stack
from bbcodec.bitsback import ANCHOR_STEPS, BitsBackCoder, CoderSettings
from tests.conftest import TINY_CONFIG, TINY_VLAE_CONFIG, coder_round_trip, make_tiny, make_tiny_exact, random_digits

MODELS = {"hvae": (TINY_CONFIG, 28), "vlae": (TINY_VLAE_CONFIG, 12)}


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(sorted(MODELS)), st.integers(1, 9), st.integers(1, 5), st.sampled_from(ANCHOR_STEPS),
       st.integers(0, 99))
def test_anchored_chains_are_lossless(name, n, max_group, step, seed):
    config, size = MODELS[name]
    x = random_digits(n, seed, size)[:, None]
    coder = BitsBackCoder(make_tiny_exact(config, seed % 2), CoderSettings(max_group=max_group, anchor_step=step))
    result, decoded = coder_round_trip(coder, x)
    np.testing.assert_array_equal(decoded, x)
    assert result.groups[0] == 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_one_image_anchored_file_borrows_nothing_and_beats_initial_bits(name):
    config, size = MODELS[name]
    model = make_tiny_exact(config, 0)
    x = random_digits(1, 7, size)[:, None]
    plain, _ = coder_round_trip(BitsBackCoder(model, CoderSettings()), x)
    anchored, decoded = coder_round_trip(BitsBackCoder(model, CoderSettings(anchor_step=1.0)), x)
    np.testing.assert_array_equal(decoded, x)
    assert anchored.initial_words == 0 and anchored.initial_bits_used == 0
    assert len(anchored.words) < len(plain.words)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_estimated_anchor_cost_tracks_the_coded_one(name):
    """The step search uses the model's probabilities (one parallel pass); the ANS
    coder adds its head (up to 64 bits) and fixed-point effects (which also cap a
    very unlikely pixel's cost, so they cut both ways)."""
    config, size = MODELS[name]
    model = make_tiny_exact(config, 1)
    x = random_digits(1, 3, size)[:, None]
    coder = BitsBackCoder(model, CoderSettings())
    coded = {}
    for step in ANCHOR_STEPS:
        stack = Stack()
        bbans.anchor(model, step).push(stack, x)
        coded[step] = stack.num_valid_bits()
        assert abs(coded[step] - coder.anchor_bits(x, step)) <= 64 + 0.05 * coded[step]
    assert coded[coder.cheapest_anchor_step(x)] <= min(coded.values()) + 64


def test_api_anchors_by_default_and_decodes(zoo_env):
    images = [img for img in random_digits(5, 11)]
    data = bbcodec.compress(images, model="tiny")
    info = bbcodec.inspect(data)
    assert info.initial_bits <= 32 * 256  # borrowed bits only if the second image needed more than the anchor
    assert all(np.array_equal(a, b) for a, b in zip(bbcodec.decompress(data), images))
    single = bbcodec.compress(images[:1], model="tiny")
    assert bbcodec.inspect(single).initial_bits == 0
