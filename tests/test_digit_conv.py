"""Digit convolutions (bbcodec.exact.digit_conv): the compiled path equals its int64
definition, a hierarchical VAE's digit form codes losslessly at any image size, rates
close to its wide form, saves and loads, and refuses weights that could saturate; a
VLAE's encoder on digits does the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.exact.digit_conv import PIXEL_HEAD, DigitConv2d
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.exact.export import ENCODER_FORMAT, integer_form
from bbcodec.exact.fixed import ACT_LIMIT, FRAC, BoundError
from bbcodec.exact.layers import IConv2d, check_layers, silu_reference
from bbcodec.exact.vlae import ENCODER_FORMS
from bbcodec.nn.hvae import HVAEConfig
from tests.conftest import (
    TINY_BIVA_CONFIG,
    TINY_CONFIG,
    TINY_VLAE_CONFIG,
    coder_round_trip,
    int8_over_wide_rate,
    make_tiny,
    random_digits,
    saved_and_loaded,
    tiny_calibration,
)

LOCAL = HVAEConfig(**{**TINY_BIVA_CONFIG.__dict__, "window_rows": 2, "window_cols": 3, "local_hidden": 8,
                      "local_blocks": 1})


def _wide_conv(k: int, stride: int, seed: int) -> IConv2d:
    gen = torch.Generator().manual_seed(seed)
    conv = IConv2d(16, 12, (k, k), stride=stride, padding=(k // 2, k // 2))
    conv.weight.copy_(torch.randint(-2047, 2048, conv.weight.shape, generator=gen).double())
    conv.bias.copy_(torch.randint(-2**40, 2**40, conv.bias.shape, generator=gen).double())
    conv.shift.copy_(torch.randint(8, 14, conv.shift.shape, generator=gen).double())
    return conv


@pytest.mark.parametrize("limbs", [1, 2])
@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (1, 1)])
@pytest.mark.parametrize("in_frac", [FRAC - 5, FRAC + 2], ids=["coarser", "finer"])
def test_kernels_equal_their_int64_definition(k, stride, limbs, in_frac):
    conv = DigitConv2d.of(_wide_conv(k, stride, k + stride), in_frac, limbs)
    gen = torch.Generator().manual_seed(limbs)
    x = torch.randint(-(1 << 22), 1 << 22, (3, 16, 9, 11), generator=gen).double()
    x[0, 0, :2] = ACT_LIMIT  # saturates the int16 codes
    x[1, 3, 4] = -ACT_LIMIT
    want = conv.reference(x)
    assert torch.equal(conv(x), want)
    channels_last = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # what a digit convolution returns
    assert torch.equal(conv(channels_last), want)
    assert torch.equal(conv.after_silu(channels_last), conv.reference(silu_reference(x)))


def test_int8_products_of_a_digit_form_stay_in_their_proven_bounds():
    model = integer_form(make_tiny(TINY_CONFIG, 3), tiny_calibration(), "int8-w7")
    convs = [m for m in model.modules() if isinstance(m, DigitConv2d)]
    assert convs, "the tiny HVAE's 3x3 convolutions (fan-in 72) take the digit form"
    convs[0].linear.weight[0, 0] = 64
    with pytest.raises(BoundError, match="saturate"):
        check_layers(model)


@pytest.mark.parametrize("config", [TINY_CONFIG, LOCAL], ids=["hvae", "biva-local"])
@pytest.mark.parametrize("form", ["int8-w13", "int8-w7", "int8-w7-out13"])
def test_digit_form_codes_losslessly_at_any_size(config, form):
    model = integer_form(make_tiny(config, 3), tiny_calibration(), form)
    assert model.local_form == form
    coder = BitsBackCoder(model, CoderSettings(max_group=4))
    for size in ((12, 12), (16, 20)):
        x = random_digits(7, seed=4)[:, None, : size[0], : size[1]]
        np.testing.assert_array_equal(coder_round_trip(coder, x)[1], x)


def test_digit_form_rates_close_to_the_wide_form():
    assert abs(int8_over_wide_rate(make_tiny(TINY_CONFIG, 6)) - 1) < 0.01


def test_digit_form_saves_and_loads_as_the_narrow_format_revision(tmp_path):
    model = integer_form(make_tiny(LOCAL, 7), tiny_calibration(), "int8-w13")
    loaded = saved_and_loaded(model, tmp_path, "int8-w13")
    assert sum(isinstance(m, DigitConv2d) for m in loaded.modules()) == \
        sum(isinstance(m, DigitConv2d) for m in model.modules())


def test_mixed_digit_form_keeps_13_bit_weights_in_the_pixel_head_only(tmp_path):
    model = integer_form(make_tiny(TINY_CONFIG, 3), tiny_calibration(), "int8-w7-out13")
    limbs = {name: m.linear.weight.shape[1] // m.c_out for name, m in model.named_modules()
             if isinstance(m, DigitConv2d)}
    assert limbs.pop(PIXEL_HEAD) == 2 and limbs and set(limbs.values()) == {1}
    loaded = saved_and_loaded(model, tmp_path, "int8-w7-out13")
    assert [m.linear.weight.shape for m in loaded.modules() if isinstance(m, DigitConv2d)] == \
        [m.linear.weight.shape for m in model.modules() if isinstance(m, DigitConv2d)]


def test_unknown_digit_form_is_refused():
    with pytest.raises(ValueError, match="int8-w7-out13"):
        integer_form(make_tiny(TINY_CONFIG, 3), tiny_calibration(), "int8-w5")


@pytest.mark.parametrize("encoder_form", ENCODER_FORMS)
def test_a_vlae_encoder_on_digits_codes_losslessly_saves_and_loads(tmp_path, encoder_form):
    model = integer_form(make_tiny(TINY_VLAE_CONFIG, 2), tiny_calibration(), "int8-w13", encoder_form)
    digit = {name for name, m in model.named_modules() if isinstance(m, DigitConv2d)}
    assert digit == {"encoder_res1.conv1", "encoder_res1.conv2", "encoder_down", "encoder_res2.conv1",
                     "encoder_res2.conv2"}, "every encoder convolution of fan-in ≥ 64, nothing else"
    x = random_digits(7, seed=4, size=12)[:, None]
    np.testing.assert_array_equal(coder_round_trip(BitsBackCoder(model, CoderSettings(max_group=4)), x)[1], x)
    loaded = saved_and_loaded(model, tmp_path, "int8-w13", ENCODER_FORMAT)
    assert loaded.encoder_form == encoder_form
    digits = torch.from_numpy(x)
    assert all(torch.equal(a, b) for a, b in zip(loaded.posterior(digits), model.posterior(digits)))


def test_a_vlae_encoder_on_digits_rates_close_to_its_wide_encoder():
    float_model, x = make_tiny(TINY_VLAE_CONFIG, 6), random_digits(16, seed=8, size=12)[:, None]
    wide = negative_elbo_bits(integer_form(float_model, tiny_calibration(), "int8-w13"), x, 8).mean()
    digits = integer_form(float_model, tiny_calibration(), "int8-w13", "int8-w7")
    assert abs(negative_elbo_bits(digits, x, 8).mean() / wide - 1) < 0.01


def test_an_encoder_form_needs_a_vlae_and_calibration_images():
    with pytest.raises(ValueError, match="calibrated"):
        integer_form(make_tiny(TINY_VLAE_CONFIG, 2), None, "int8-w13", "int8-w7")
    with pytest.raises(ValueError, match="calibrated"):
        integer_form(make_tiny(TINY_CONFIG, 2), tiny_calibration(), "int8-w13", "int8-w7")
    with pytest.raises(ValueError, match="int8-w13"):
        integer_form(make_tiny(TINY_VLAE_CONFIG, 2), tiny_calibration(), "int8-w13", "int8-w5")
