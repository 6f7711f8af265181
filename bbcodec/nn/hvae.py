"""A top-down hierarchical VAE (LVAE/vdvae/BIVA family) in one file.

Bottom-up: a ResNet that keeps one feature map per resolution stage.
Top-down: from a learned constant at the coarsest stage, each latent layer reads
its conditional prior from the deterministic top-down state (so every z_i depends
on all layers above it, BIVA's skip path), its posterior from that state joined
with the bottom-up features, and writes its sample back into the state. The last
state becomes a discretised logistic mixture over pixels, either directly
(factorised) or through a local PixelCNN (:mod:`bbcodec.nn.local_pixelcnn`).

The posterior is parameterised *relative* to the prior (NVAE): it starts equal to
it, which keeps the KL small and stable early in training, and its std is a bounded
fraction of the prior std, which is what the coder's prior-equal-mass bins need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.contract import GaussianLatent, InferredLatent, LatentSteps, LogisticMixture, ObservationModel
from bbcodec.nn.layers import ResBlock, bounded_softplus, conv, fp32
from bbcodec.nn.likelihoods import LOG_SCALE_FLOOR, CoupledLogistics, pixels_to_unit
from bbcodec.nn.local_pixelcnn import LocalPixelNet, LocalPixelSteps
from bbcodec.nn.objective import elbo_terms


@dataclass(frozen=True)
class LatentSpec:
    """One latent layer: the resolution stage it lives at and its channel counts.

    ``channels`` are inferred top-down (q(z | x, z_above), LVAE); ``bottom_up``
    channels, when nonzero, are BIVA's bottom-up part: inferred on the way *up*,
    from x and the bottom-up latents below only, and fed into the bottom-up path.
    Both parts share the layer's conditional prior from the top-down state.
    """

    stage: int
    channels: int
    bottom_up: int = 0


@dataclass(frozen=True)
class HVAEConfig:
    """Everything needed to rebuild the network; stored inside every checkpoint."""

    image_channels: int = 1
    width: int = 64
    stages: int = 3  # resolutions 1, 1/2, 1/4 of the image
    blocks_per_stage: int = 1
    full_res_blocks: int = 0  # ResBlocks at full resolution are the costliest on a CPU
    latents: tuple[LatentSpec, ...] = field(
        default_factory=lambda: (LatentSpec(2, 4), LatentSpec(2, 4), LatentSpec(1, 2))
    )
    mixture_components: int = 3
    channel_coupling: bool = False  # RGB: PixelCNN++ mixture, channels coded R, G | R, B | R, G
    prior_std_floor: float = 0.03
    posterior_ratio_floor: float = 0.02
    # A local PixelCNN on top of the last top-down state (0 = factorised pixels): the
    # latents carry structure, a small causal window carries texture (PixelVAE/VLAE).
    window_rows: int = 0
    window_cols: int = 0
    local_hidden: int = 64
    local_blocks: int = 1
    # Bottom-up latents are coded on static N(0, 1) bins, which a very narrow
    # posterior would undershoot: this floor keeps their std above a few bin widths.
    bottom_up_std_floor: float = 0.05

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HVAEConfig:
        d = dict(d)
        d["latents"] = tuple(LatentSpec(**spec) for spec in d.get("latents", ()))
        return cls(**d)

    @property
    def downsampling(self) -> int:
        """Image sides must be a multiple of this (the coder pads to it)."""
        return 2 ** (self.stages - 1)

    @property
    def autoregressive(self) -> bool:
        return self.window_rows > 0

    @property
    def latent_part_names(self) -> tuple[str, ...]:
        """Names of the KL terms in ELBO order (top layer first; a split layer's
        bottom-up part before its top-down part), for the posterior-collapse plot."""
        names: list[str] = []
        for i, spec in enumerate(self.latents):
            scale = f"1/{2 ** spec.stage}" if spec.stage else "full"
            if spec.bottom_up:
                names += [f"layer {i + 1} bottom-up ({scale})", f"layer {i + 1} top-down ({scale})"]
            else:
                names.append(f"layer {i + 1} ({scale})")
        return tuple(names)

    @property
    def params_per_position(self) -> int:
        k = self.mixture_components
        return 10 * k if self.channel_coupling else 3 * k * self.image_channels


def bottom_up_key(index: int) -> str:
    """The name that ties a bottom-up latent's inference event to its prior event."""
    return f"bottom-up {index}"


class BottomUpLatent(nn.Module):
    """BIVA's bottom-up part of a layer: its posterior on the way up, its sample fed
    into the bottom-up path, and its prior from the top-down state."""

    def __init__(self, width: int, channels: int, cfg: HVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.post_head = nn.Sequential(conv(width, width), nn.SiLU(), conv(width, 2 * channels, 1, zero_init=True))
        self.prior_head = nn.Sequential(conv(width, width), nn.SiLU(), conv(width, 2 * channels, 1, zero_init=True))
        self.up_in = conv(channels, width, 1)  # into the bottom-up path
        self.up_res = ResBlock(width)
        self.down_in = conv(channels, width, 1)  # into the top-down state

    @staticmethod
    def _gaussian(raw: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_std = raw.chunk(2, dim=1)
        return mean, bounded_softplus(raw_std, floor)

    def posterior(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fp32():
            return self._gaussian(self.post_head(d.float()), self.cfg.bottom_up_std_floor)

    def prior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fp32():
            return self._gaussian(self.prior_head(h.float()), self.cfg.prior_std_floor)

    def absorb_up(self, d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.up_res(d + self.up_in(z.to(d.dtype)))


class LatentBlock(nn.Module):
    """Prior and posterior heads of one layer plus the write-back of its sample."""

    def __init__(self, width: int, spec: LatentSpec, cfg: HVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        channels = spec.channels
        self.prior_head = nn.Sequential(conv(width, width), nn.SiLU(), conv(width, 2 * channels, 1))
        self.post_head = nn.Sequential(
            conv(2 * width, width), nn.SiLU(), conv(width, 2 * channels, 1, zero_init=True)
        )
        self.z_in = conv(channels, width, 1)
        self.res = ResBlock(width)
        self.bottom_up = BottomUpLatent(width, spec.bottom_up, cfg) if spec.bottom_up else None

    def prior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fp32():
            mean, raw = self.prior_head(h.float()).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.cfg.prior_std_floor)

    def posterior(
        self, h: torch.Tensor, features: torch.Tensor, prior_mean: torch.Tensor, prior_std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with fp32():
            shift, raw = self.post_head(torch.cat([h, features], dim=1).float()).chunk(2, dim=1)
        ratio = bounded_softplus(raw, self.cfg.posterior_ratio_floor) / (1.0 + self.cfg.posterior_ratio_floor)
        return prior_mean + prior_std * shift, prior_std * ratio

    def absorb(self, h: torch.Tensor, z: torch.Tensor, z_bottom_up: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.z_in(z.to(h.dtype))
        if self.bottom_up is not None:
            assert z_bottom_up is not None
            h = h + self.bottom_up.down_in(z_bottom_up.to(h.dtype))
        return self.res(h)


class HVAE(nn.Module):
    """Hierarchical VAE implementing :class:`bbcodec.contract.LatentModel`."""

    def __init__(self, cfg: HVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = conv(cfg.image_channels, w)
        self.bu_blocks = nn.ModuleList(self._stage_blocks(s) for s in range(cfg.stages))
        self.downs = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for _ in range(cfg.stages - 1))
        self.h_top = nn.Parameter(torch.zeros(1, w, 1, 1))
        self.latent_blocks = nn.ModuleList(LatentBlock(w, spec, cfg) for spec in cfg.latents)
        self.td_blocks = nn.ModuleList(self._stage_blocks(s) for s in range(cfg.stages))
        self.ups = nn.ModuleList(conv(w, w) for _ in range(cfg.stages - 1))
        if cfg.autoregressive:
            self.out = conv(w, cfg.local_hidden, 1)  # the conditioning map of the local decoder
            self.local = LocalPixelNet(cfg.image_channels, cfg.local_hidden, cfg.local_blocks,
                                       cfg.params_per_position, cfg.window_rows, cfg.window_cols)
        else:
            self.out = conv(w, cfg.params_per_position)
        self._check_config()

    def _stage_blocks(self, stage: int) -> nn.Sequential:
        count = self.cfg.full_res_blocks if stage == 0 else self.cfg.blocks_per_stage
        return nn.Sequential(*[ResBlock(self.cfg.width) for _ in range(count)])

    def _check_config(self) -> None:
        stages = [spec.stage for spec in self.cfg.latents]
        if not stages or stages != sorted(stages, reverse=True):
            raise ValueError("latents must be listed top-down (non-increasing stage)")
        if any(not 0 <= s < self.cfg.stages for s in stages):
            raise ValueError(f"latent stages must lie in [0, {self.cfg.stages})")
        if self.cfg.channel_coupling and self.cfg.image_channels != 3:
            raise ValueError("channel_coupling needs 3 image channels")

    def bottom_up(self, x: torch.Tensor) -> Generator[InferredLatent, torch.Tensor, list[torch.Tensor]]:
        """The inference pass: the features each layer's top-down posterior reads.

        Bottom-up latents are sampled here, lowest first (each may depend on those
        below), and fed into the path; that is why they come before the top-down walk.
        """
        d = self.stem(pixels_to_unit(x))
        features: list[torch.Tensor] = [d] * len(self.cfg.latents)
        for s, blocks in enumerate(self.bu_blocks):
            d = blocks(d)
            for i in reversed(range(len(self.cfg.latents))):
                if self.cfg.latents[i].stage != s:
                    continue
                up = self.latent_blocks[i].bottom_up
                if up is not None:
                    mean, std = up.posterior(d)
                    z = yield InferredLatent(bottom_up_key(i), mean, std)
                    d = up.absorb_up(d, z)
                features[i] = d
            if s < self.cfg.stages - 1:
                d = self.downs[s](F.silu(d))
        return features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Training pass for (Distributed)DataParallel: per-image NLL and per-layer KLs."""
        terms = elbo_terms(self, x)
        return terms.nll, tuple(terms.kl_per_layer)

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        n, c, height, width = shape
        d = self.cfg.downsampling
        if height % d or width % d:
            raise ValueError(f"image sides must be multiples of {d}, got {height}x{width}")
        features = (yield from self.bottom_up(x)) if x is not None else None
        top = self.cfg.stages - 1
        h = self.h_top.expand(n, -1, height // d, width // d)
        latent_index = 0
        for stage in range(top, -1, -1):
            while latent_index < len(self.cfg.latents) and self.cfg.latents[latent_index].stage == stage:
                block = self.latent_blocks[latent_index]
                z_up = None
                if block.bottom_up is not None:
                    up_mean, up_std = block.bottom_up.prior(h)
                    z_up = yield GaussianLatent(up_mean, up_std, static_bins=True,
                                                inferred=bottom_up_key(latent_index))
                prior_mean, prior_std = block.prior(h)
                post_mean = post_std = None
                if features is not None:
                    post_mean, post_std = block.posterior(h, features[latent_index], prior_mean, prior_std)
                z = yield GaussianLatent(prior_mean, prior_std, post_mean, post_std)
                h = block.absorb(h, z, z_up)
                latent_index += 1
            h = self.td_blocks[stage](h)
            if stage > 0:
                h = self.ups[stage - 1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self._observation(h, n, c, height, width)

    def _observation(self, h: torch.Tensor, n: int, c: int, height: int, width: int) -> ObservationModel:
        with fp32():
            out = self.out(F.silu(h.float()))
        if self.cfg.autoregressive:
            return LocalPixelSteps(self.local, out, (n, c, height, width),
                                   lambda params: self._distribution(params.permute(0, 3, 1, 2)),
                                   pixels_to_unit, coupled=self.cfg.channel_coupling)
        return self._distribution(out)

    def _distribution(self, params: torch.Tensor) -> LogisticMixture | CoupledLogistics:
        """Distribution of every pixel from parameters (N, P, H, W)."""
        k, c = self.cfg.mixture_components, self.cfg.image_channels
        if self.cfg.channel_coupling:
            p = params.unflatten(1, (k, 10))
            return CoupledLogistics(p[:, :, 0], p[:, :, 1:4], p[:, :, 4:7].clamp(min=LOG_SCALE_FLOOR), p[:, :, 7:10])
        p = params.unflatten(1, (3, k, c))
        return LogisticMixture(logits=p[:, 0], means=p[:, 1], log_scales=p[:, 2].clamp(min=LOG_SCALE_FLOOR))
