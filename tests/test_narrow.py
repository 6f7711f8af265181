"""The int8 form of the local pixel net (bbcodec.exact.narrow): its kernels equal their
definition, its int8 products stay exact at the bounds, files code losslessly, it saves
and loads, and a layer that could saturate is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bbcodec
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.exact.export import integer_form
from bbcodec.exact.fixed import BoundError
from bbcodec.exact.layers import check_layers
from bbcodec.exact.narrow import NarrowPixelNet
from bbcodec.nn.vlae import VLAEConfig
from tests.conftest import (
    TINY_VLAE_CONFIG,
    coder_round_trip,
    int8_over_wide_rate,
    make_tiny,
    random_digits,
    saved_and_loaded,
    tiny_calibration,
)

BINARY = VLAEConfig(**{**TINY_VLAE_CONFIG.__dict__, "likelihood": "bernoulli"})
WIDER = VLAEConfig(**{**TINY_VLAE_CONFIG.__dict__, "hidden": 40, "pixel_blocks": 2, "window_rows": 3,
                      "window_cols": 5})


CODE8 = VLAEConfig(**{**WIDER.__dict__, "pixel_code_bits": 8, "pixel_weight_bits": 7})
FORMS = {1: "int8-w7", 2: "int8-w13", 8: "int8-a8w7-io13"}  # weight digits, or 8: 8-bit codes


def _trained_for_codes(config: VLAEConfig, seed: int):
    """A tiny float model whose pixel head trains with 8-bit codes, its code ranges set."""
    model = make_tiny(config, seed)
    model.calibrate_codes(torch.from_numpy(tiny_calibration(config.image_size)))
    return model


def _narrow(config: VLAEConfig, seed: int, digits: int):
    model = _trained_for_codes(config, seed) if digits == 8 else make_tiny(config, seed)
    return integer_form(model, tiny_calibration(config.image_size), FORMS[digits])


@pytest.mark.parametrize("config,digits", [(TINY_VLAE_CONFIG, 1), (TINY_VLAE_CONFIG, 2), (WIDER, 1), (WIDER, 2),
                                           (CODE8, 8)], ids=["tiny-w7", "tiny-w13", "wider-w7", "wider-w13", "a8"])
def test_kernels_equal_their_torch_definition(config, digits):
    net = _narrow(config, 5, digits).local
    assert isinstance(net, NarrowPixelNet)
    gen = torch.Generator().manual_seed(digits)
    rows = 300
    windows = torch.randint(-128, 128, (rows, 2 * net.rows * net.cols), dtype=torch.int8, generator=gen)
    cond = torch.randint(-3000, 3000, (rows, net.hidden), dtype=torch.int32, generator=gen)
    assert torch.equal(net.rows_params(windows, cond), net.rows_params_reference(windows, cond))


@pytest.mark.parametrize("config,digits", [(TINY_VLAE_CONFIG, 2), (CODE8, 8)], ids=["tiny-w13", "a8"])
def test_the_teacher_forced_pass_by_blocks_equals_its_int64_definition(config, digits):
    """Pixel-code windows gathered a block at a time plus the flags' shared sums give the
    integers of the whole windows (pixel codes and flags) through the int64 definition."""
    net = _narrow(config, 5, digits).local
    gen = torch.Generator().manual_seed(digits)
    n, h, w = 30, 12, 11  # 3,960 rows: several blocks of rows, the last one short
    codes = torch.randint(-128, 128, (n, 1, h, w), dtype=torch.int8, generator=gen)
    cond = torch.randint(-3000, 3000, (n, net.hidden, h, w), dtype=torch.int32, generator=gen)
    canvas = net.canvas(codes)
    s = canvas.stride()
    windows = canvas.as_strided((n, h, w, 2, net.rows, net.cols), (s[0], s[2], s[3], s[1], s[2], s[3]))
    want = net.rows_params_reference(windows.reshape(n * h * w, -1), cond.permute(0, 2, 3, 1).reshape(n * h * w, -1))
    assert torch.equal(net.params(codes, cond), want.view(n, h, w, -1))


@pytest.mark.parametrize("images", [3, 40])  # below and above STEP_PARALLEL_ROWS: serial and threaded kernels
def test_fused_step_tables_equal_parameters_then_tables(images):
    """A decoding step's fused kernel gives the tables that its parameters give."""
    model = _narrow(TINY_VLAE_CONFIG, 5, 2)
    net, k = model.local, TINY_VLAE_CONFIG.mixture_components
    gen = torch.Generator().manual_seed(images)
    canvas = net.empty_canvas(images, 6, 7)
    canvas[:, :1] = torch.randint(-128, 128, canvas[:, :1].shape, dtype=torch.int8, generator=gen)
    cond = torch.randint(-3000, 3000, (images, net.hidden), dtype=torch.int32, generator=gen)
    for i, j in [(0, 0), (2, 3), (5, 6)]:
        expected = model.distribution(net.step_params(canvas, i, j, cond).view(images, 1, 1, -1)).frequencies()
        assert torch.equal(net.step_logistic_tables(canvas, i, j, cond, k), expected)


@pytest.mark.parametrize("images", [3, 40])
def test_step_draws_equal_draws_from_the_step_tables(images):
    """A lossy decoder's draw kernel picks the values that sampling the step's tables
    picks, at every kind of uniform (0, 2^24 − 1 and random ones)."""
    from bbcodec.exact.random import sample

    model = _narrow(TINY_VLAE_CONFIG, 5, 2)
    net, k = model.local, TINY_VLAE_CONFIG.mixture_components
    gen = torch.Generator().manual_seed(images)
    canvas = net.empty_canvas(images, 6, 7)
    canvas[:, :1] = torch.randint(-128, 128, canvas[:, :1].shape, dtype=torch.int8, generator=gen)
    cond = torch.randint(-3000, 3000, (images, net.hidden), dtype=torch.int32, generator=gen)
    for i, j in [(0, 0), (2, 3), (5, 6)]:
        tables = net.step_logistic_tables(canvas, i, j, cond, k)
        for u in (np.zeros(images, np.int64), np.full(images, 2**24 - 1),
                  torch.randint(0, 2**24, (images,), generator=gen).numpy()):
            expected = sample(tables, u).to(torch.uint8).numpy()
            np.testing.assert_array_equal(net.step_logistic_draws(canvas, i, j, cond, k, u), expected)


def _random_step(images: int, seed: int):
    """A tiny int8 model's pixel net, a canvas with a random first row, conditioning rows."""
    model = _narrow(TINY_VLAE_CONFIG, 5, 2)
    gen = torch.Generator().manual_seed(seed)
    canvas = model.local.empty_canvas(images, 6, 7)
    canvas[:, :1] = torch.randint(-128, 128, canvas[:, :1].shape, dtype=torch.int8, generator=gen)
    cond = torch.randint(-3000, 3000, (images, model.local.hidden), dtype=torch.int32, generator=gen)
    return model.local, canvas, cond, gen


@pytest.mark.parametrize("images", [3, 40])
@pytest.mark.parametrize("words", [0, 1, 3, 200])  # empty, state only, a few bulk words, a long stack
def test_step_pops_equal_popping_the_step_tables(images, words):
    """A decoder's pop kernel gives the pixels constriction pops with the step's tables
    and leaves the same coder (then pushing the tables back restores the stack),
    including on a stack that runs dry (constriction then reads zeros)."""
    from bbcodec.ans import Stack
    from bbcodec.codecs import categorical

    net, canvas, cond, gen = _random_step(images, images + words)
    k = TINY_VLAE_CONFIG.mixture_components
    start = torch.randint(1, 2**32, (words,), generator=gen).numpy().astype(np.uint32) if words else None
    for i, j in [(0, 0), (2, 3), (5, 6)]:
        tables = categorical(net.step_logistic_tables(canvas, i, j, cond, k))
        by_table, by_kernel = Stack(start), Stack(start)
        expected = tables.pop(by_table)
        got = net.step_logistic_pop(canvas, i, j, cond, k, by_kernel.raw())
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(by_kernel.words(), by_table.words())
        if words >= 3:
            tables.push(by_kernel, got)
            np.testing.assert_array_equal(by_kernel.words(), start)


def _step_by_step(net, cond_steps: torch.Tensor, shape: tuple[int, int, int], k: int, pick) -> np.ndarray:
    """A group's pixels the step kernels' way: ``pick(canvas, i, j, cond row, t)`` gives
    step t's pixels, which go onto the canvas as the net's codes."""
    n, h, w = shape
    canvas, out = net.empty_canvas(n, h, w), np.empty(shape, dtype=np.uint8)
    for t in range(h * w):
        i, j = divmod(t, w)
        out[:, i, j] = pick(canvas, i, j, cond_steps[t], t)
        canvas[:, 0, i + net.pad_top, j + net.pad_side] = net.pixel_codes(torch.from_numpy(out[:, i, j]))
    return out


@pytest.mark.parametrize("config,digits", [(TINY_VLAE_CONFIG, 1), (WIDER, 2), (CODE8, 8)],
                         ids=["tiny-w7", "wider-w13", "a8"])
@pytest.mark.parametrize("images", [3, 40])
@pytest.mark.parametrize("words", [1, 300])  # a stack that runs dry at once, one that lasts
def test_a_group_in_one_loop_pops_what_the_step_kernels_pop(config, digits, images, words):
    """:class:`NarrowGroup` (the flags' share of the window made once, pops writing the
    canvas) gives every pixel and the coder state that popping step by step gives."""
    from bbcodec.ans import RawHead
    from bbcodec.exact.narrow_steps import NarrowGroup

    net, k = _narrow(config, 5, digits).local, config.mixture_components
    gen = torch.Generator().manual_seed(images + words)
    shape = (images, 5, 6)
    cond_steps = torch.randint(-3000, 3000, (30, images, net.hidden), dtype=torch.int32, generator=gen)
    start = torch.randint(1, 2**32, (words,), generator=gen).numpy().astype(np.uint32)
    by_steps, by_group = RawHead(start), RawHead(start)
    expected = _step_by_step(net, cond_steps, shape, k,
                             lambda canvas, i, j, cond, t: net.step_logistic_pop(canvas, i, j, cond, k, by_steps))
    got = NarrowGroup(net, net.empty_canvas(*shape), cond_steps, k).pop(by_group)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(by_group.compressed(), by_steps.compressed())


@pytest.mark.parametrize("images", [3, 40])
def test_a_group_in_one_loop_draws_what_the_step_kernels_draw(images):
    from bbcodec.exact.narrow_steps import NarrowGroup

    net, k = _narrow(CODE8, 5, 8).local, CODE8.mixture_components
    gen = torch.Generator().manual_seed(images)
    shape = (images, 5, 6)
    cond_steps = torch.randint(-3000, 3000, (30, images, net.hidden), dtype=torch.int32, generator=gen)
    uniforms = torch.randint(0, 2**24, (30, images), generator=gen).numpy()
    uniforms[0], uniforms[-1] = 0, 2**24 - 1
    expected = _step_by_step(net, cond_steps, shape, k,
                             lambda canvas, i, j, cond, t: net.step_logistic_draws(canvas, i, j, cond, k, uniforms[t]))
    got = NarrowGroup(net, net.empty_canvas(*shape), cond_steps, k).draw(uniforms)
    np.testing.assert_array_equal(got, expected)


def test_a_group_whose_images_differ_in_their_flags_is_refused():
    from bbcodec.exact.narrow_steps import NarrowGroup

    net = _narrow(TINY_VLAE_CONFIG, 5, 1).local
    canvas = net.empty_canvas(3, 5, 6)
    canvas[1, 1, -1, -1 - net.pad_side] = 0
    with pytest.raises(ValueError, match="inside-image flags"):
        NarrowGroup(net, canvas, torch.zeros(30, 3, net.hidden, dtype=torch.int32), 2)


def test_raw_head_keeps_constrictions_layout():
    """Taking a coder apart for the kernels and putting it back changes no word."""
    from bbcodec.ans import RawHead, Stack

    rng = np.random.default_rng(0)
    stacks = [Stack(), Stack(np.array([7], np.uint32)), Stack(rng.integers(1, 2**32, 50, dtype=np.uint32))]
    pushed = Stack()
    pushed.push(np.array([3, 1]), bbcodec.ans.entropy_models.Uniform(5))
    for stack in [*stacks, pushed]:
        np.testing.assert_array_equal(RawHead(stack.words()).compressed(), stack.words())


def test_int8_products_are_exact_at_the_bounds():
    """Full-range int8 inputs by weight digits at ±63: the int32 sums equal int64 arithmetic."""
    gen = torch.Generator().manual_seed(0)
    a = torch.where(torch.rand(257, 384, generator=gen) < 0.5, -128, 127).to(torch.int8)
    b = torch.where(torch.rand(384, 96, generator=gen) < 0.5, -63, 63).to(torch.int8)
    assert torch.equal(torch._int_mm(a, b).to(torch.int64), a.to(torch.int64) @ b.to(torch.int64))


@pytest.mark.parametrize("config,digits", [(TINY_VLAE_CONFIG, 2), (TINY_VLAE_CONFIG, 1), (BINARY, 2), (CODE8, 8)],
                         ids=["w13", "w7", "binary", "a8"])
def test_int8_pixel_net_codes_losslessly(config, digits):
    model = _narrow(config, 3, digits)
    x = random_digits(9, seed=4, size=config.image_size)[:, None]
    if config.likelihood == "bernoulli":
        x = (x > 127).astype(np.uint8)
    np.testing.assert_array_equal(coder_round_trip(BitsBackCoder(model, CoderSettings(max_group=4)), x)[1], x)


def test_the_int8_form_rates_close_to_the_wide_form():
    """Same float model, both integer forms: the int8 pixel net pays within 1% of the wide one."""
    assert abs(int8_over_wide_rate(make_tiny(WIDER, 6)) - 1) < 0.01


def test_saves_and_loads_as_its_own_format_revision(tmp_path):
    model = _narrow(TINY_VLAE_CONFIG, 7, 2)
    loaded = saved_and_loaded(model, tmp_path, "int8-w13")
    assert {k: v.dtype for k, v in loaded.local.state_dict().items()} == \
        {k: v.dtype for k, v in model.local.state_dict().items()}


def test_mixed_form_keeps_13_bit_weights_in_the_window_and_head_only(tmp_path):
    """``int8-w7-io13``: two weight digits where the pixel net reads the canvas and writes
    the parameters, one everywhere else (the conditioning network too); it codes losslessly
    and saves and loads as its own form."""
    from bbcodec.exact.narrow import IO_LAYERS, NarrowLinear

    model = integer_form(make_tiny(TINY_VLAE_CONFIG, 3), tiny_calibration(), "int8-w7-io13")
    limbs = {name: m.weight.shape[1] // len(m.bias) for name, m in model.named_modules()
             if isinstance(m, NarrowLinear)}
    assert {name: limbs.pop(f"local.{name}") for name in IO_LAYERS} == {"window": 2, "out": 2}
    assert any(name.startswith("cond_net.") for name in limbs) and set(limbs.values()) == {1}
    x = random_digits(6, seed=4, size=TINY_VLAE_CONFIG.image_size)[:, None]
    assert np.array_equal(coder_round_trip(BitsBackCoder(model, CoderSettings(max_group=4)), x)[1], x)
    saved_and_loaded(model, tmp_path, "int8-w7-io13")


def test_a_weight_digit_that_could_saturate_is_refused():
    model = _narrow(TINY_VLAE_CONFIG, 7, 1)
    model.local.first[0].weight[0, 0] = 64
    with pytest.raises(BoundError, match="saturate"):
        check_layers(model)


def test_zoo_model_with_int8_pixel_net_round_trips(zoo_env):
    images = list(random_digits(5, seed=2, size=12))
    data = bbcodec.compress(images, model="tiny-vlae-int8")
    for got, want in zip(bbcodec.decompress(data), images, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (1, 1)])
def test_convolution_kernels_equal_their_torch_definition(stride, k):
    from bbcodec.exact.narrow import Codes
    from bbcodec.exact.narrow_conv import NarrowConv2d

    torch.manual_seed(stride * 10 + k)
    conv = torch.nn.Conv2d(6, 5, k, stride=stride, padding=k // 2)
    narrow = NarrowConv2d.of(conv, Codes(0.01, -300), 2.0**-9, weight_limbs=2)
    codes = torch.randint(-32768, 32640, (3, 7, 9, 6), dtype=torch.int16)  # two int8 digits each
    table = torch.randint(-32768, 32768, (1 << 16,), dtype=torch.int16)
    want = narrow.values_reference(codes, table=table)
    assert torch.equal(narrow.values(codes, table=table), want)
    residual = torch.randint(-32768, 32768, want.shape, dtype=torch.int16)
    assert torch.equal(narrow.values(codes, residual=residual), narrow.values_reference(codes, residual=residual))


def test_8_bit_code_form_reads_one_digit_per_code_in_its_residual_blocks(tmp_path):
    """``int8-a8w7-io13``: the residual blocks read 8-bit codes (one int8 digit) by 7-bit
    weights, the window and the output layer keep 13-bit weights, the output layer reads
    int16 codes; its codes are the float model's trained grids, so the integer rate stays
    close to the float one; and it saves and loads as its own form."""
    from bbcodec.exact.bounds import negative_elbo_bits
    from bbcodec.nn.objective import elbo_terms

    float_model = _trained_for_codes(CODE8, 6)
    model = integer_form(float_model, tiny_calibration(CODE8.image_size), "int8-a8w7-io13")
    net = model.local
    assert net.code_limbs == (1,) * (2 * CODE8.pixel_blocks) + (2,)
    assert [m.weight.shape[1] // len(m.bias) for m in (net.window, *net.first, *net.second, net.out)] == \
        [2] + [1] * (2 * CODE8.pixel_blocks) + [2]
    assert all(int(t.min()) >= -128 and int(t.max()) <= 127 for t in net.tables[:-1])
    x = random_digits(12, seed=8, size=CODE8.image_size)[:, None]
    integer = negative_elbo_bits(model, x, 12).mean()
    floating = elbo_terms(float_model, torch.from_numpy(x)).negative_elbo().mean().item() / np.log(2)
    assert abs(integer / floating - 1) < 0.01
    saved_and_loaded(model, tmp_path, "int8-a8w7-io13")


def test_8_bit_code_form_needs_a_net_trained_for_it():
    with pytest.raises(ValueError, match="trained with 8-bit codes"):
        integer_form(make_tiny(WIDER, 3), tiny_calibration(), "int8-a8w7-io13")


def test_an_8_bit_code_table_outside_int8_is_refused():
    model = _narrow(CODE8, 7, 8)
    model.local.tables[0, 0] = 128
    model.local._plan = None
    with pytest.raises(BoundError, match="outside int8"):
        model.local.rows_params(torch.zeros(1, 2 * CODE8.window_rows * CODE8.window_cols, dtype=torch.int8),
                                torch.zeros(1, CODE8.hidden, dtype=torch.int32))


def test_conditioning_rows_made_by_blocks_equal_its_int64_definition():
    """The conditioning's last layer runs on the rows a pass asks for (``CondCodes``):
    image-major blocks (teacher forcing) and position-major ones (decoding steps, by
    ``CondSteps``) equal the layer in int64 torch ops over the whole map."""
    from bbcodec import zoo
    from bbcodec.exact import int8_kernels as k8
    from bbcodec.exact.narrow_conv import COND_LIMIT
    from bbcodec.exact.narrow_steps import CondSteps

    model = zoo.load_model("vlae-mnist-fast-q8")[0]
    z = torch.round(torch.randn(5, model.cfg.latent_dims, generator=torch.Generator().manual_seed(2),
                                dtype=torch.float64) * 2**14)
    cond = model.conditioning(z)
    layer = cond.layer
    digits = layer.weight.to(torch.int64).view(layer.weight.shape[0], -1, len(layer.bias))
    weight = digits[:, 0] if digits.shape[1] == 1 else digits[:, 0] * 64 + digits[:, 1]
    codes = torch.from_numpy(cond.codes).to(torch.int64).reshape(-1, cond.codes.shape[-1])
    expected = k8.requantise_reference(codes @ weight, layer.bias, layer.mult, layer.shift)
    expected = expected.clamp(-COND_LIMIT, COND_LIMIT).to(torch.int32).view(5, 28 * 28, -1)
    np.testing.assert_array_equal(cond.rows(100, 1000), expected.reshape(-1, layer.bias.shape[0])[100:1000].numpy())
    steps = CondSteps(cond)
    for t in (0, 1, 400, 783, 5):
        assert torch.equal(steps[t], expected[:, t])
    assert torch.equal(cond[1:3].dense(), expected[1:3].view(2, 28, 28, -1).permute(0, 3, 1, 2))
    copies = cond.repeated(3)  # a lossy decoder's draws: image s·N + n is image n, the layer run once
    tiled = expected.repeat(3, 1, 1)
    assert len(copies) == 15
    np.testing.assert_array_equal(copies.rows(3000, 5000), tiled.reshape(-1, layer.bias.shape[0])[3000:5000].numpy())
    copy_steps = CondSteps(copies)
    for t in (0, 401, 783):
        assert torch.equal(copy_steps[t], tiled[:, t])
    assert torch.equal(copies[4:7].dense(), tiled[4:7].view(3, 28, 28, -1).permute(0, 3, 1, 2))
