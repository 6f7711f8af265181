"""The hierarchical VAE with a local PixelCNN decoder (grayscale, RGB coupled and
uncoupled): the coded steps are the trained distribution, and coding is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bbcodec.exact.export import integer_form
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.nn.hvae import HVAEConfig, LatentSpec
from bbcodec.nn.likelihoods import observation_log_prob
from bbcodec.nn.objective import LN2, elbo_terms
from tests.conftest import make_tiny, observation_at_means

BASE = dict(width=8, stages=2, latents=(LatentSpec(1, 2), LatentSpec(0, 1)), mixture_components=2,
            window_rows=2, window_cols=3, local_hidden=8, local_blocks=1)
CONFIGS = {
    "gray": HVAEConfig(image_channels=1, **BASE),
    "rgb-coupled": HVAEConfig(image_channels=3, channel_coupling=True, **BASE),
    "rgb-uncoupled": HVAEConfig(image_channels=3, **BASE),
}


def _images(config: HVAEConfig, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 6, 10))
    return np.clip(base + rng.integers(-20, 21, (n, config.image_channels, 6, 10)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", CONFIGS)
@torch.no_grad()
def test_steps_multiply_to_the_parallel_likelihood(name):
    config = CONFIGS[name]
    model = make_tiny(config, 3)
    x = torch.from_numpy(_images(config, 3, 1))
    obs = observation_at_means(model, x)
    parallel = obs.log_prob(x).sum()
    obs.reset()
    total = torch.zeros(())
    for t in range(obs.num_steps):
        values = x[obs.step_index(t)]
        dist = obs.step_distribution(t)
        total += observation_log_prob(dist, values.reshape(len(x), -1, 1, 1)).sum()
        obs.write(t, values)
    assert obs.num_steps == 60 * (3 if config.channel_coupling else 1)
    torch.testing.assert_close(total, parallel, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_pays_the_elbo(name):
    config = CONFIGS[name]
    model = make_tiny(config, 4)
    x = _images(config, 40, 2)
    coder = BitsBackCoder(integer_form(model), CoderSettings(max_group=16))
    result = coder.encode([x])
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           iter([x.shape[1:]] * len(result.groups)))
    np.testing.assert_array_equal(np.concatenate(decoded), x)
    with torch.no_grad():
        neg_elbo = np.mean([elbo_terms(model, torch.from_numpy(x)).negative_elbo().mean().item() for _ in range(10)])
    coded = (32 * len(result.words) - result.initial_bits_used) / len(x)
    assert coded == pytest.approx(neg_elbo / LN2, rel=0.02)


def test_a_pixel_never_sees_itself_or_later_pixels():
    """Changing one pixel changes the likelihood of no position before it."""
    config = CONFIGS["gray"]
    model = make_tiny(config, 5)
    x = torch.from_numpy(_images(config, 1, 3))
    with torch.no_grad():
        obs = observation_at_means(model, None, tuple(x.shape), use_prior=True)
        base = obs.log_prob(x)
        y = x.clone()
        y[0, 0, 3, 4] = 255 - y[0, 0, 3, 4]
        changed = (obs.log_prob(y) != base)[0, 0].nonzero().tolist()
    assert changed and min(i * 10 + j for i, j in changed) == 3 * 10 + 4
