"""Float VLAE decoder -> its int8 forms (:mod:`bbcodec.exact.narrow`, :mod:`bbcodec.exact.narrow_conv`),
by calibration.

The int16 grids and the SiLU codes' ranges are chosen from the float network's own
values on calibration images (never the test set): each leaves a factor
:data:`HEADROOM` above the largest value seen, since values beyond a range saturate,
and one saturated activation can move a pixel's parameters far. Measured for
``vlae-mnist-large``'s pixel net on MNIST training digits: 16-bit codes spanning only
the calibration maximum cost 0.40% of rate on other digits, headroom 2 0.03%; 8-bit
codes cost 2.7% to 67%, depending on where they clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.exact import int8_kernels as k8
from bbcodec.exact.digit_conv import in_frac_for
from bbcodec.exact.fixed import FRAC
from bbcodec.exact.layers import check_layers
from bbcodec.exact.narrow import (CODE8_FORMS, CODE8_MAX, CODE8_MIN, FLAG_CODE, NARROW_FORMS, Codes, NarrowLinear,
                                  NarrowPixelNet, silu_table)
from bbcodec.exact.narrow_conv import NarrowConditioning, NarrowConv2d, NarrowResBlock
from bbcodec.nn.fake_quant import SILU_MIN, code_grid
from bbcodec.nn.local_pixelcnn import LocalPixelNet

HEADROOM = 2.0


def _grid_frac(values: list[torch.Tensor]) -> int:
    """The finest power-of-two grid on which int16 holds HEADROOM × the largest |value|."""
    return in_frac_for(max(float(v.abs().max()) for v in values), HEADROOM)


def _silu_codes(values: torch.Tensor) -> Codes:
    top = float(values.max())
    scale = (HEADROOM * max(top, 1e-3) - SILU_MIN) / (k8.H_MAX - k8.H_MIN)
    return Codes(scale, k8.H_MIN + round(-SILU_MIN / scale))


def _trained_codes(net: LocalPixelNet) -> list[Codes]:
    """The 8-bit code grids a pixel net trained with (:class:`bbcodec.nn.fake_quant.SiluCodes`),
    as int8 codes: grid index ``q`` in [q_min, q_min + 255] is code ``q − q_min − 128``."""
    if net.head.codes is None or not net.head.codes.calibrated:
        raise ValueError("8-bit code forms need a pixel net trained with 8-bit codes (pixel_code_bits = 8)")
    out = []
    for top in net.head.codes.top.tolist():
        step, q_min = code_grid(top)
        out.append(Codes(step, -(q_min + 128)))
    return out


def _window_weight(net: LocalPixelNet, binary: bool) -> torch.Tensor:
    """The masked window weight acting on canvas codes: the code-to-input map folded in."""
    w = net.masked_weight().detach().double()
    pixel, flag = w[:, 0], w[:, 1]
    if binary:  # code 127·x, input 2x − 1
        folded = torch.stack([pixel * (2 / FLAG_CODE), (flag - pixel) / FLAG_CODE], 1)
    else:  # code x − 128, input (x − 127.5) / 127.5
        folded = torch.stack([pixel / 127.5, (flag + pixel * (0.5 / 127.5)) / FLAG_CODE], 1)
    return folded.reshape(len(w), -1)


def _float_values(net: LocalPixelNet, x_unit: torch.Tensor, cond: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The float network's residual states, inner pre-activations and SiLU outputs (float64;
    a net trained with 8-bit codes or 7-bit weights computes with them, as it trained)."""
    net = net.double()
    canvas = net.canvas(x_unit.double())
    h = (F.conv2d(canvas, net.masked_weight(), net.window.bias) + cond.double()).permute(0, 2, 3, 1)
    h = h.reshape(-1, h.shape[-1])
    out: dict[str, list[torch.Tensor]] = {"h": [h], "inner": [], "silu": []}
    head = net.head
    for b, block in enumerate(head.blocks):
        s_in = head.site_silu(h, 2 * b).double()
        inner = head.linear(block[1], s_in)
        s_mid = head.site_silu(inner, 2 * b + 1).double()
        h = h + head.linear(block[3], s_mid)
        out["h"].append(h)
        out["inner"].append(inner)
        out["silu"] += [s_in, s_mid]
    out["silu"].append(F.silu(h))
    net.float()
    return out


@torch.no_grad()
def narrow_of(net: LocalPixelNet, x_unit: torch.Tensor, cond: torch.Tensor, binary: bool,
              form: str = "int8-w13") -> NarrowPixelNet:
    """The narrow integer form of a one-channel float ``net``, calibrated on float inputs
    ``x_unit`` (N, 1, H, W) and conditioning ``cond`` (N, hidden, H, W)."""
    values = _float_values(net, x_unit, cond)
    blocks = len(net.head.blocks)
    out = NarrowPixelNet(net.hidden, blocks, net.head.out.out_features, net.rows, net.cols, binary, form)
    limbs = NARROW_FORMS[form]
    f_h = _grid_frac(values["h"])
    h_step = math.ldexp(1.0, -f_h)
    sites = [_silu_codes(v) for v in values["silu"]]  # in_0, mid_0, in_1, ..., out
    ranges = [(k8.H_MIN, k8.H_MAX)] * len(sites)
    if form in CODE8_FORMS:
        sites[:-1], ranges[:-1] = _trained_codes(net), [(CODE8_MIN, CODE8_MAX)] * (len(sites) - 1)
    out.h_frac.fill_(f_h)
    out.window = NarrowLinear.quantise(_window_weight(net, binary), net.window.bias, Codes(1.0), h_step,
                                       limbs("window"))
    for b, block in enumerate(net.head.blocks):
        inner_step = math.ldexp(1.0, -_grid_frac([values["inner"][b]]))
        out.first[b] = NarrowLinear.quantise(block[1].weight, block[1].bias, sites[2 * b], inner_step,
                                             limbs(f"first.{b}"))
        out.second[b] = NarrowLinear.quantise(block[3].weight, block[3].bias, sites[2 * b + 1], h_step,
                                              limbs(f"second.{b}"))
        out.tables[2 * b].copy_(silu_table(h_step, sites[2 * b], *ranges[2 * b]))
        out.tables[2 * b + 1].copy_(silu_table(inner_step, sites[2 * b + 1], *ranges[2 * b + 1]))
    out.tables[2 * blocks].copy_(silu_table(h_step, sites[-1], *ranges[-1]))
    out.out = NarrowLinear.quantise(net.head.out.weight, net.head.out.bias, sites[-1], math.ldexp(1.0, -FRAC),
                                     limbs("out"))
    check_layers(out)
    return out


def _conditioning_values(model: nn.Module, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float conditioning network's values at every site (float64)."""
    side = model.cfg.image_size // 4
    v: dict[str, torch.Tensor] = {"v0": model.from_latent(z).view(len(z), model.cfg.width, side, side)}
    low, mid_conv, mid_res = model.cond_low, model.cond_mid[0], model.cond_mid[1]
    v["s1"] = F.silu(v["v0"])
    v["i1"] = low.conv1(v["s1"])
    v["s2"] = F.silu(v["i1"])
    v["v1"] = v["v0"] + low.conv2(v["s2"])
    v["v2"] = mid_conv(F.interpolate(v["v1"], scale_factor=2.0, mode="nearest"))
    v["s3"] = F.silu(v["v2"])
    v["i3"] = mid_res.conv1(v["s3"])
    v["s4"] = F.silu(v["i3"])
    v["v3"] = v["v2"] + mid_res.conv2(v["s4"])
    v["s5"] = F.silu(v["v3"])
    return v


def _resblock(block: nn.Module, v: dict[str, torch.Tensor], s_in: str, inner: str, s_mid: str,
              step: float, weight_limbs: int) -> NarrowResBlock:
    out = NarrowResBlock(block.conv1.in_channels, weight_limbs)
    inner_step = math.ldexp(1.0, -_grid_frac([v[inner]]))
    codes_in, codes_mid = _silu_codes(v[s_in]), _silu_codes(v[s_mid])
    out.conv1 = NarrowConv2d.of(block.conv1, codes_in, inner_step, weight_limbs)
    out.conv2 = NarrowConv2d.of(block.conv2, codes_mid, step, weight_limbs)
    out.tables[0].copy_(silu_table(step, codes_in))
    out.tables[1].copy_(silu_table(inner_step, codes_mid))
    return out


@torch.no_grad()
def narrow_conditioning_of(model: nn.Module, z: torch.Tensor, out_step: float,
                           weight_limbs: int = 2) -> NarrowConditioning:
    """The int8 form of a float VLAE's conditioning network, calibrated at latents ``z``,
    writing onto the pixel net's residual grid ``out_step``."""
    model = model.double()
    v = _conditioning_values(model, z.double())
    out = NarrowConditioning(model.cfg.width, model.cfg.hidden, weight_limbs)
    f_low, f_mid = _grid_frac([v["v0"], v["v1"]]), _grid_frac([v["v2"], v["v3"]])
    out.in_frac.fill_(f_low)
    out.low = _resblock(model.cond_low, v, "s1", "i1", "s2", math.ldexp(1.0, -f_low), weight_limbs)
    out.mid_conv = NarrowConv2d.of(model.cond_mid[0], Codes(math.ldexp(1.0, -f_low)), math.ldexp(1.0, -f_mid),
                                   weight_limbs)
    out.mid_res = _resblock(model.cond_mid[1], v, "s3", "i3", "s4", math.ldexp(1.0, -f_mid), weight_limbs)
    codes_high = _silu_codes(v["s5"])
    out.high_table.copy_(silu_table(math.ldexp(1.0, -f_mid), codes_high))
    out.high = NarrowConv2d.of(model.cond_high, codes_high, out_step, weight_limbs)
    model.float()
    check_layers(out)
    return out


@torch.no_grad()
def narrow_integer_form(model: nn.Module, calibration: np.ndarray,
                        form: str = "int8-w13") -> tuple[NarrowPixelNet, NarrowConditioning]:
    """The int8 forms of a float VLAE's local pixel net and conditioning network,
    calibrated on ``calibration`` images (N, 1, H, W) uint8 at their posterior means."""
    x = torch.from_numpy(np.array(calibration))  # a writable copy
    x_unit = model.to_unit(x)
    z = model.posterior(x_unit)[0]
    local = narrow_of(model.local, x_unit, model.conditioning(z), model.cfg.likelihood == "bernoulli", form)
    cond = narrow_conditioning_of(model, z, math.ldexp(1.0, -int(local.h_frac)), NARROW_FORMS[form]("cond"))
    return local, cond
