"""RGB with PixelCNN++ channel coupling: R, then G | R, then B | R, G, coded exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bbcodec import codecs
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.exact.export import integer_form
from bbcodec.nn.hvae import HVAEConfig, LatentSpec
from bbcodec.nn.likelihoods import observation_log_prob
from bbcodec.nn.objective import LN2, elbo_terms
from tests.conftest import make_tiny, observation_at_means

COUPLED = HVAEConfig(image_channels=3, width=8, stages=3, latents=(LatentSpec(2, 2), LatentSpec(1, 1)),
                     mixture_components=2, channel_coupling=True)


@pytest.fixture(scope="module")
def model():
    return make_tiny(COUPLED, 4)


@torch.no_grad()
def test_channel_steps_multiply_to_the_joint_mixture(model):
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 8, 12), dtype=np.uint8))
    obs = observation_at_means(model, x)
    joint = obs.log_prob(x).sum()
    obs.reset()
    total = torch.zeros(())
    for t in range(obs.num_steps):
        index = obs.step_index(t)
        total += observation_log_prob(obs.step_distribution(t), x[index]).sum()
        obs.write(t, x[index])
    torch.testing.assert_close(total, joint, rtol=1e-5, atol=1e-3)


def test_coupled_rgb_round_trip_at_the_elbo(model):
    x = np.random.default_rng(0).integers(0, 256, (24, 3, 8, 12), dtype=np.uint8)
    coder = BitsBackCoder(integer_form(model), CoderSettings(max_group=8))
    result = coder.encode([x])
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           iter([(3, 8, 12)] * len(result.groups)))
    np.testing.assert_array_equal(np.concatenate(decoded), x)
    with torch.no_grad():
        neg_elbo = np.mean([elbo_terms(model, torch.from_numpy(x)).negative_elbo().mean().item() for _ in range(10)])
    coded = (32 * len(result.words) - result.initial_bits_used) / len(x)
    assert coded == pytest.approx(neg_elbo / LN2, rel=0.01)


def test_integer_channel_steps_equal_the_teacher_forced_tables(model):
    """R, G | R, B | R, G: the decoder's steps and the encoder's parallel pass build identical tables."""
    from bbcodec.exact.coupled import CoupledLogistics

    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 3, 8, 12), dtype=np.uint8))
    obs = observation_at_means(integer_form(model), x)
    assert isinstance(obs, CoupledLogistics)
    tables = [codecs.pixel_frequencies(d) for d in obs.parallel(x)]
    obs.reset()
    for t in range(obs.num_steps):
        assert torch.equal(codecs.pixel_frequencies(obs.step_distribution(t)), tables[t])
        obs.write(t, x[obs.step_index(t)])


@pytest.mark.parametrize("rows", [3, 40])  # below and above STEP_PARALLEL_ROWS: serial and threaded kernels
def test_fused_position_steps_equal_the_mixture_built_in_torch(rows):
    """A decoding position's steps made in one kernel from the head's parameters give the
    tables of the mixture built from them in torch ops, channel after channel."""
    from bbcodec.exact.coupled import CoupledLogistics, CoupledSteps
    from bbcodec.exact.fixed import ONE
    from bbcodec.exact.layers import tanh

    k = 3
    gen = torch.Generator().manual_seed(rows)
    scale = torch.tensor([4.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 6.0, 6.0, 6.0]).repeat(k)  # logits, means, log-scales, coeffs
    params = torch.round(torch.randn(rows, 10 * k, generator=gen, dtype=torch.float64) * scale * ONE)
    p = params.view(rows, k, 10, 1, 1)
    torch_built = CoupledLogistics(p[:, :, 0], p[:, :, 1:4], p[:, :, 4:7], tanh(p[:, :, 7:10]))
    fused = CoupledSteps.from_packed(params.numpy(), k)
    x = torch.from_numpy(np.random.default_rng(rows).integers(0, 256, (rows, 3, 1, 1), dtype=np.uint8))
    torch_built.reset()
    fused.reset()
    for t in range(3):
        assert torch.equal(fused.step_distribution(t).frequencies(), torch_built.step_distribution(t).frequencies())
        fused.write(t, x[:, t])
        torch_built.write(t, x[:, t])


@pytest.mark.parametrize("rows", [3, 40])
@pytest.mark.parametrize("words", [0, 1, 3, 200])  # empty, state only, a few bulk words, a long stack
def test_position_pops_equal_popping_the_channel_tables(rows, words):
    """A decoder's coupled pop kernel gives, channel after channel, the values constriction
    pops with the channel's tables, and leaves the same coder (pushing the tables back
    restores the stack), including on a stack that runs dry (constriction reads zeros)."""
    from bbcodec.ans import Stack
    from bbcodec.exact.coupled import CoupledSteps
    from bbcodec.exact.fixed import ONE

    k = 3
    gen = torch.Generator().manual_seed(rows + words)
    scale = torch.tensor([4.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 6.0, 6.0, 6.0]).repeat(k)
    params = torch.round(torch.randn(rows, 10 * k, generator=gen, dtype=torch.float64) * scale * ONE).numpy()
    start = torch.randint(1, 2**32, (words,), generator=gen).numpy().astype(np.uint32) if words else None
    by_tables, by_kernel = CoupledSteps.from_packed(params, k), CoupledSteps.from_packed(params, k)
    by_tables.reset()
    by_kernel.reset()
    table_stack, kernel_stack = Stack(start), Stack(start)
    pushed = []
    for t in range(3):
        tables = codecs.categorical(by_tables.step_distribution(t).frequencies())
        expected = tables.pop(table_stack).astype(np.uint8)
        got = by_kernel.step_distribution(t).pops(raw=kernel_stack.raw())
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(kernel_stack.words(), table_stack.words())
        pushed.append((tables, got))
        by_tables.write(t, torch.from_numpy(expected))
        by_kernel.write(t, torch.from_numpy(got))
    if words >= 3:
        for tables, got in reversed(pushed):
            tables.push(kernel_stack, got)
        np.testing.assert_array_equal(kernel_stack.words(), start)
