"""Bits-back over the model contract is lossless for any partition and chain length."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbcodec.bitsback import BitsBackCoder, CoderSettings, initial_words
from tests.conftest import random_digits


def _round_trip(model, batches, settings_):
    """Encode, decode with the recorded partition, return (result, decoded images in order)."""
    coder = BitsBackCoder(model, settings_)
    result = coder.encode(batches)
    flat = [img for b in batches for img in b]
    starts = np.cumsum([0, *result.groups])[:-1]
    shapes = [flat[s].shape for s in starts]
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups, shapes)
    return result, [img for group in decoded for img in group]


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 8), st.sampled_from([2, 6, 8, 10]), st.integers(1, 5), st.integers(0, 1000))
def test_lossless_for_any_group_size_and_precision(n, precision, max_group, seed):
    from tests.conftest import TINY_CONFIG, make_tiny_exact

    model = make_tiny_exact(TINY_CONFIG, seed % 3)
    x = random_digits(n, seed)[:, None]
    result, decoded = _round_trip(model, [x], CoderSettings(latent_precision=precision, max_group=max_group))
    np.testing.assert_array_equal(np.stack(decoded), x)
    assert sum(result.groups) == n and max(result.groups) <= max_group


def test_mixed_shapes_chain_on_one_stack(tiny_model):
    batches = [random_digits(3, 1, 28)[:, None], random_digits(2, 2, 16)[:, None], random_digits(4, 3, 28)[:, None]]
    _, decoded = _round_trip(tiny_model, batches, CoderSettings(max_group=4))
    flat = [img for b in batches for img in b]
    assert len(decoded) == len(flat)
    for got, want in zip(decoded, flat):
        np.testing.assert_array_equal(got, want)


def test_first_image_alone_draws_initial_bits(tiny_model):
    coder = BitsBackCoder(tiny_model, CoderSettings(max_group=64))
    result = coder.encode([random_digits(40, 5)[:, None]])
    assert result.groups[0] == 1  # only the first image borrows from the initial bits
    assert 0 < result.initial_bits_used <= 1.5 * result.popped_bits / 40 + 64


def test_initial_words_are_stable():
    # Pinned forever: a file's untouched initial words are regenerated from these.
    assert initial_words(3).tolist() == initial_words(5)[:3].tolist()
    assert initial_words(2).dtype == np.uint32


def test_decoding_with_other_weights_is_detected(tiny_model):
    """Other weights compute other distributions: the stack check refuses, never wrong pixels."""
    from bbcodec.errors import BBCodecError
    from tests.conftest import TINY_CONFIG, make_tiny_exact

    x = random_digits(6, 9)[:, None]
    result = BitsBackCoder(tiny_model).encode([x])
    other = BitsBackCoder(make_tiny_exact(TINY_CONFIG, 42))
    with pytest.raises(BBCodecError):
        other.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                     [(1, 28, 28)] * len(result.groups))


class _StaticBins:
    """Wrap a model so every layer is coded on static N(0, 1) bins (BIVA's bottom-up latents)."""

    def __init__(self, model):
        self.model = model

    def latent_steps(self, x, shape):
        import dataclasses

        steps = self.model.latent_steps(x, shape)
        layer = next(steps)
        try:
            while True:
                z = yield dataclasses.replace(layer, static_bins=True)
                layer = steps.send(z)
        except StopIteration as stop:
            return stop.value


def test_static_bins_code_losslessly_near_the_elbo(tiny_model, tiny_float_model):
    import torch

    from bbcodec.nn.objective import LN2, elbo_terms

    x = random_digits(40, 21, 16)[:, None]
    model = _StaticBins(tiny_model)
    result, decoded = _round_trip(model, [x], CoderSettings(latent_precision=12, max_group=8))
    np.testing.assert_array_equal(np.stack(decoded), x)
    with torch.no_grad():
        neg_elbo = np.mean([elbo_terms(tiny_float_model, torch.from_numpy(x)).negative_elbo().mean().item()
                            for _ in range(10)]) / LN2
    coded = (32 * len(result.words) - result.initial_bits_used) / len(x)
    assert coded == pytest.approx(neg_elbo, rel=0.02)
