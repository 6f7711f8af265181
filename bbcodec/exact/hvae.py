"""The integer coding form of :class:`bbcodec.nn.hvae.HVAE` (hierarchical VAE, BIVA's
bottom-up latents, local PixelCNN, PixelCNN++ channel coupling).

Layer for layer the float model's structure (see that module for why it is built so);
activations are float64 tensors of whole numbers on the activation grid, and the
latent walk yields the contract's events with int64 parameters.
"""

from __future__ import annotations

from collections.abc import Generator

import torch
from torch import nn

from bbcodec.contract import GaussianLatent, InferredLatent, LatentSteps
from bbcodec.exact import tables
from bbcodec.exact.coupled import CoupledLogistics, CoupledSteps
from bbcodec.exact.digit_conv import DIGIT_FORMS, DigitConv2d, replace_convs
from bbcodec.exact.distributions import Logistics
from bbcodec.exact.fixed import ONE, fixed_mul, saturate, to_fixed
from bbcodec.exact.layers import (
    IConv2d,
    IResBlock,
    bounded_softplus,
    conv_after_silu,
    grid_constant,
    tanh,
    upsample2,
)
from bbcodec.exact.local import ExactPixelSteps, ILocalPixelNet
from bbcodec.exact.vlae import SOFTPLUS_OFFSET
from bbcodec.nn.hvae import HVAE, HVAEConfig, bottom_up_key


def _conv(layer: nn.Conv2d) -> IConv2d:
    return IConv2d.of(layer)


def _blank_conv(c_in: int, c_out: int, k: int) -> IConv2d:
    return IConv2d(c_in, c_out, (k, k), padding=(k // 2, k // 2))


class IHead(nn.Module):
    """``conv(k=3) -> SiLU -> conv(k=1)``: every prior/posterior head of the float model."""

    def __init__(self, c_in: int, width: int, c_out: int) -> None:
        super().__init__()
        self.first, self.second = _blank_conv(c_in, width, 3), _blank_conv(width, c_out, 1)

    @classmethod
    def of(cls, seq: nn.Sequential) -> IHead:
        out = cls(seq[0].in_channels, seq[0].out_channels, seq[2].out_channels)
        out.first, out.second = _conv(seq[0]), _conv(seq[2])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_after_silu(self.second, self.first(x))


class IGaussianHead(nn.Module):
    """A head whose output is (mean, bounded-softplus std)."""

    def __init__(self, c_in: int, width: int, channels: int, floor: float) -> None:
        super().__init__()
        self.head = IHead(c_in, width, 2 * channels)
        self.register_buffer("offset", grid_constant(SOFTPLUS_OFFSET))
        self.register_buffer("floor", grid_constant(floor))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.head(x).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.offset, self.floor)


class IBottomUpLatent(nn.Module):
    def __init__(self, width: int, channels: int, cfg: HVAEConfig) -> None:
        super().__init__()
        self.posterior = IGaussianHead(width, width, channels, cfg.bottom_up_std_floor)
        self.prior = IGaussianHead(width, width, channels, cfg.prior_std_floor)
        self.up_in, self.up_res = _blank_conv(channels, width, 1), IResBlock(width)
        self.down_in = _blank_conv(channels, width, 1)

    def load_float(self, up: nn.Module) -> None:
        self.posterior.head, self.prior.head = IHead.of(up.post_head), IHead.of(up.prior_head)
        self.up_in, self.up_res, self.down_in = _conv(up.up_in), IResBlock.of(up.up_res), _conv(up.down_in)

    def absorb_up(self, d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.up_res(saturate(d + self.up_in(z)))


class ILatentBlock(nn.Module):
    def __init__(self, width: int, channels: int, bottom_up: int, cfg: HVAEConfig) -> None:
        super().__init__()
        self.prior = IGaussianHead(width, width, channels, cfg.prior_std_floor)
        self.post_head = IHead(2 * width, width, 2 * channels)
        self.register_buffer("ratio_offset", grid_constant(SOFTPLUS_OFFSET))
        self.register_buffer("ratio_floor", grid_constant(cfg.posterior_ratio_floor))
        self.register_buffer("ratio_norm", grid_constant(1.0 / (1.0 + cfg.posterior_ratio_floor)))
        self.z_in, self.res = _blank_conv(channels, width, 1), IResBlock(width)
        self.bottom_up = IBottomUpLatent(width, bottom_up, cfg) if bottom_up else None

    def load_float(self, block: nn.Module) -> None:
        self.prior.head, self.post_head = IHead.of(block.prior_head), IHead.of(block.post_head)
        self.z_in, self.res = _conv(block.z_in), IResBlock.of(block.res)
        if self.bottom_up is not None:
            self.bottom_up.load_float(block.bottom_up)

    def posterior(self, h: torch.Tensor, features: torch.Tensor, prior_mean: torch.Tensor,
                  prior_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.post_head(torch.cat([h, features], dim=1)).chunk(2, dim=1)
        ratio = fixed_mul(bounded_softplus(raw, self.ratio_offset, self.ratio_floor), self.ratio_norm)
        return saturate(prior_mean + fixed_mul(prior_std, shift)), fixed_mul(prior_std, ratio)

    def absorb(self, h: torch.Tensor, z: torch.Tensor, z_bottom_up: torch.Tensor | None) -> torch.Tensor:
        h = saturate(h + self.z_in(z))
        if self.bottom_up is not None:
            h = saturate(h + self.bottom_up.down_in(z_bottom_up))
        return self.res(h)


class ExactHVAE(nn.Module):
    """Integer hierarchical VAE implementing :class:`bbcodec.contract.LatentModel` with int64 events."""

    arch = "hvae"

    def __init__(self, cfg: HVAEConfig, local_form: str = "wide") -> None:
        """``local_form`` "wide": float64 products; a name in :data:`~bbcodec.exact.digit_conv.DIGIT_FORMS`
        ("int8-w13", "int8-w7", "int8-w7-out13"): every convolution of fan-in ≥ 64 on int8
        digits (:mod:`bbcodec.exact.digit_conv`), with the 13- or 7-bit weights that form gives it."""
        super().__init__()
        self.cfg, self.local_form = cfg, local_form
        w = cfg.width
        self.stem = _blank_conv(cfg.image_channels, w, 3)
        self.bu_blocks = nn.ModuleList(self._stage_blocks(s) for s in range(cfg.stages))
        self.downs = nn.ModuleList(IConv2d(w, w, (3, 3), stride=2, padding=(1, 1)) for _ in range(cfg.stages - 1))
        self.register_buffer("h_top", torch.zeros(1, w, 1, 1, dtype=torch.float64))
        self.latent_blocks = nn.ModuleList(ILatentBlock(w, s.channels, s.bottom_up, cfg) for s in cfg.latents)
        self.td_blocks = nn.ModuleList(self._stage_blocks(s) for s in range(cfg.stages))
        self.ups = nn.ModuleList(_blank_conv(w, w, 3) for _ in range(cfg.stages - 1))
        if cfg.autoregressive:
            self.out = _blank_conv(w, cfg.local_hidden, 1)
            self.local = ILocalPixelNet(cfg.image_channels, cfg.local_hidden, cfg.local_blocks,
                                        cfg.params_per_position, cfg.window_rows, cfg.window_cols)
        else:
            self.out = _blank_conv(w, cfg.params_per_position, 3)
        if local_form in DIGIT_FORMS:
            limbs = DIGIT_FORMS[local_form]
            replace_convs(self, lambda name, conv: DigitConv2d.blank_like(conv, limbs(name)))
        elif local_form != "wide":
            raise ValueError(f"unknown convolution form {local_form!r}")

    def _stage_blocks(self, stage: int) -> nn.ModuleList:
        count = self.cfg.full_res_blocks if stage == 0 else self.cfg.blocks_per_stage
        return nn.ModuleList(IResBlock(self.cfg.width) for _ in range(count))

    @classmethod
    def of(cls, model: HVAE) -> ExactHVAE:
        """The integer form of a trained float hierarchical VAE."""
        out = cls(model.cfg)
        out.stem = _conv(model.stem)
        for mine, theirs in ((out.bu_blocks, model.bu_blocks), (out.td_blocks, model.td_blocks)):
            for i, blocks in enumerate(theirs):
                mine[i] = nn.ModuleList(IResBlock.of(b) for b in blocks)
        out.downs = nn.ModuleList(_conv(d) for d in model.downs)
        out.ups = nn.ModuleList(_conv(u) for u in model.ups)
        out.h_top.copy_(to_fixed(model.h_top.detach()))
        for mine, theirs in zip(out.latent_blocks, model.latent_blocks):
            mine.load_float(theirs)
        out.out = _conv(model.out)
        if model.cfg.autoregressive:
            out.local = ILocalPixelNet.of(model.local)
        return out

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h)
        return h

    def bottom_up(self, x: torch.Tensor) -> Generator[InferredLatent, torch.Tensor, list[torch.Tensor]]:
        d = self.stem(tables.pixel_units(x))
        features: list[torch.Tensor] = [d] * len(self.cfg.latents)
        for s, blocks in enumerate(self.bu_blocks):
            d = self._run(blocks, d)
            for i in reversed(range(len(self.cfg.latents))):
                if self.cfg.latents[i].stage != s:
                    continue
                up = self.latent_blocks[i].bottom_up
                if up is not None:
                    mean, std = up.posterior(d)
                    z = yield InferredLatent(bottom_up_key(i), mean.to(torch.int64), std.to(torch.int64))
                    d = up.absorb_up(d, z.to(torch.float64))
                features[i] = d
            if s < self.cfg.stages - 1:
                d = conv_after_silu(self.downs[s], d)
        return features

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        n, c, height, width = shape
        d = self.cfg.downsampling
        if height % d or width % d:
            raise ValueError(f"image sides must be multiples of {d}, got {height}x{width}")
        features = (yield from self.bottom_up(x)) if x is not None else None
        h = self.h_top.expand(n, -1, height // d, width // d)
        index = 0
        for stage in range(self.cfg.stages - 1, -1, -1):
            while index < len(self.cfg.latents) and self.cfg.latents[index].stage == stage:
                block = self.latent_blocks[index]
                z_up = None
                if block.bottom_up is not None:
                    up_mean, up_std = block.bottom_up.prior(h)
                    z_up = yield GaussianLatent(up_mean.to(torch.int64), up_std.to(torch.int64), static_bins=True,
                                                inferred=bottom_up_key(index))
                    z_up = z_up.to(torch.float64)
                prior_mean, prior_std = block.prior(h)
                post = (None, None)
                if features is not None:
                    post = tuple(t.to(torch.int64) for t in block.posterior(h, features[index], prior_mean, prior_std))
                z = yield GaussianLatent(prior_mean.to(torch.int64), prior_std.to(torch.int64), *post)
                h = block.absorb(h, z.to(torch.float64), z_up)
                index += 1
            h = self._run(self.td_blocks[stage], h)
            if stage > 0:
                h = self.ups[stage - 1](upsample2(h))
        return self._observation(conv_after_silu(self.out, h), (n, c, height, width))

    def _observation(self, out: torch.Tensor, shape: tuple[int, int, int, int]) -> object:
        if self.cfg.autoregressive:
            k = self.cfg.mixture_components
            position = (lambda p: CoupledSteps.from_packed(p.contiguous().numpy(), k)) if self.cfg.channel_coupling \
                else None
            return ExactPixelSteps(self.local, out, shape, lambda p: self._distribution(p.permute(0, 3, 1, 2)),
                                   tables.pixel_units,
                                   coupled=self.cfg.channel_coupling, position=position)
        return self._distribution(out)

    def _distribution(self, params: torch.Tensor) -> Logistics | CoupledLogistics:
        """Distribution of every pixel from grid parameters (N, P, H, W)."""
        k, c = self.cfg.mixture_components, self.cfg.image_channels
        if self.cfg.channel_coupling:
            p = params.unflatten(1, (k, 10))  # (N, K, 10, H, W)
            return CoupledLogistics(p[:, :, 0], p[:, :, 1:4], p[:, :, 4:7], tanh(p[:, :, 7:10]))
        if c == 1:  # (N, 3K, H, W): packed per pixel as logits, means, log-scales (one compiled pass)
            d = Logistics.from_packed(params.permute(0, 2, 3, 1), k)
            return Logistics(*(t.unsqueeze(1) for t in (d.weights, d.means, d.inv_scales)))
        p = params.unflatten(1, (3, k, c)).permute(1, 0, 3, 4, 5, 2)  # (3, N, C, H, W, K)
        return Logistics.from_params(p[0], p[1], p[2])
