"""Variational Lossy Autoencoder (Chen et al. 2017): a global latent, an AF prior and
a *local* PixelCNN decoder, in one file.

Why this shape:

* **Local decoder.** Each pixel's distribution sees only a small causal window of
  already-coded pixels (by default 3 rows above and 3 pixels to the left, ±3
  columns): one type-A masked 4×7 convolution followed by per-pixel residual layers
  (:mod:`bbcodec.nn.local_pixelcnn`). Texture is
  cheap to model locally, global structure is not, so the latent is forced to carry
  the global shape, which is what makes a lossy mode that sends only the latent
  meaningful. The bounded window is also what makes decoding fast: a decoding
  step reads one window slice of the canvas, never a whole image.
* **Global latent with an autoregressive-flow prior.** ``z`` is a vector of
  ``latent_dims`` numbers. The prior is one MADE-parameterised autoregressive flow,
  which for a single layer is exactly ``p(z) = Π_i N(z_i; μ_i(z_<i), σ_i(z_<i))``.
  The model exposes each dimension as one layer of the coder contract, so bits-back
  codes dimension ``i`` on bins of equal mass under its conditional prior, like any
  hierarchy (DESIGN.md §3), and the KL per dimension is analytic given ``z_<i``.
* **Conditioning is cached.** ``z`` becomes a feature map once per image; every
  decoding step only looks up its pixel's row of that map.

Pixels are a discretised logistic mixture (8-bit) or Bernoulli (binarised MNIST).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.contract import Bernoulli, GaussianLatent, LatentSteps, LogisticMixture, PixelDistribution
from bbcodec.nn.layers import ResBlock, bounded_softplus, conv, fp32
from bbcodec.nn.likelihoods import LOG_SCALE_FLOOR, pixels_to_unit
from bbcodec.nn.local_pixelcnn import LocalPixelNet, LocalPixelSteps
from bbcodec.nn.objective import elbo_terms


QUANTISATION_FIELDS = ("pixel_code_bits", "pixel_weight_bits")


@dataclass(frozen=True)
class VLAEConfig:
    """Everything needed to rebuild the network; stored inside every checkpoint."""

    image_channels: int = 1
    image_size: int = 28  # the latent is global, so the model codes one image size
    likelihood: str = "logistic"  # "logistic" (8-bit) or "bernoulli" (binarised)
    width: int = 64  # encoder / conditioning convolutions
    hidden: int = 128  # per-pixel features of the local PixelCNN
    pixel_blocks: int = 2  # residual per-pixel layers after the masked convolution
    latent_dims: int = 32
    made_hidden: int = 256
    mixture_components: int = 5
    prior_std_floor: float = 0.05
    posterior_std_floor: float = 0.01
    window_rows: int = 4  # causal window: 3 rows above and the current row,
    window_cols: int = 7  # ±3 columns (a smaller window pushes more into the latent)
    # Quantisation-aware training of the pixel head (bbcodec.nn.fake_quant): 8-bit SiLU
    # codes, 7-bit residual-block weights; 0 trains that part in float.
    pixel_code_bits: int = 0
    pixel_weight_bits: int = 0

    def to_dict(self) -> dict:
        """The fields, without quantisation settings left at float (so a float model's
        stored config reads as it always did)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in QUANTISATION_FIELDS and v == 0)}

    @classmethod
    def from_dict(cls, d: dict) -> VLAEConfig:
        return cls(**d)

    @property
    def downsampling(self) -> int:
        return 4

    @property
    def autoregressive(self) -> bool:
        return True

    @property
    def latent_part_names(self) -> tuple[str, ...]:
        """Names of the KL terms in ELBO order: one per global latent dimension (the
        AF prior makes each its own layer)."""
        return tuple(f"z{i + 1}" for i in range(self.latent_dims))

    @property
    def params_per_pixel(self) -> int:
        return 1 if self.likelihood == "bernoulli" else 3 * self.mixture_components


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE)."""

    def __init__(self, d_in: int, d_out: int, mask: torch.Tensor) -> None:
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask.float())
        self._masked: tuple[int, torch.Tensor] | None = None

    def masked_weight(self) -> torch.Tensor:
        """``weight * mask``; without autograd it is cached until the weight changes
        (coding walks the prior once per latent dimension: the product dominated)."""
        if torch.is_grad_enabled():
            return self.weight * self.mask
        version = self.weight._version
        if self._masked is None or self._masked[0] != version:
            self._masked = (version, self.weight * self.mask)
        return self._masked[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MADEPrior(nn.Module):
    """``μ_i, σ_i`` of every dimension from ``z_<i`` in one pass (Germain et al. 2015)."""

    def __init__(self, dims: int, hidden: int, std_floor: float) -> None:
        super().__init__()
        self.dims, self.std_floor = dims, std_floor
        degrees_in = torch.arange(1, dims + 1)
        degrees_hidden = torch.arange(hidden) % max(1, dims - 1) + 1
        self.layer1 = MaskedLinear(dims, hidden, degrees_hidden[:, None] >= degrees_in[None, :])
        self.layer2 = MaskedLinear(hidden, hidden, degrees_hidden[:, None] >= degrees_hidden[None, :])
        out_degrees = degrees_in.repeat(2)
        self.out = MaskedLinear(hidden, 2 * dims, out_degrees[:, None] > degrees_hidden[None, :])
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fp32():  # small, and its output is a distribution: never bf16
            h = F.silu(self.layer1(z.float()))
            h = F.silu(self.layer2(h))
            mean, raw = self.out(h).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.std_floor)


class VLAE(nn.Module):
    """VAE with a local PixelCNN decoder; implements :class:`bbcodec.contract.LatentModel`."""

    def __init__(self, cfg: VLAEConfig) -> None:
        super().__init__()
        if cfg.likelihood not in ("logistic", "bernoulli"):
            raise ValueError(f"likelihood must be 'logistic' or 'bernoulli', not {cfg.likelihood!r}")
        if cfg.image_channels != 1:
            raise ValueError("the local PixelCNN decoder codes one channel")
        if cfg.image_size % 4:
            raise ValueError("image_size must be a multiple of 4")
        self.cfg = cfg
        w, side = cfg.width, cfg.image_size // 4
        # q(z | x): two stride-2 convolutions down to side×side, then a linear map to (mean, std).
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1),
            ResBlock(w), nn.SiLU(), nn.Conv2d(w, w, 3, stride=2, padding=1), ResBlock(w), nn.SiLU(),
        )
        self.to_posterior = nn.Linear(w * side * side, 2 * cfg.latent_dims)
        self.prior = MADEPrior(cfg.latent_dims, cfg.made_hidden, cfg.prior_std_floor)
        # p(x | z), global part: z -> a feature map at full resolution, computed once.
        self.from_latent = nn.Linear(cfg.latent_dims, w * side * side)
        self.cond_low = ResBlock(w)
        self.cond_mid = nn.Sequential(conv(w, w), ResBlock(w))
        self.cond_high = conv(w, cfg.hidden, 1)  # full resolution is where a CPU pays: 1x1 only
        # p(x | z), local part: masked convolution over [value, inside-image flag].
        self.local = LocalPixelNet(1, cfg.hidden, cfg.pixel_blocks, cfg.params_per_pixel,
                                   cfg.window_rows, cfg.window_cols, cfg.pixel_code_bits, cfg.pixel_weight_bits)
        self._register_load_state_dict_pre_hook(_rename_pre_split_keys)

    # --- pieces ---------------------------------------------------------------------
    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel values as network inputs in [-1, 1]."""
        return x.float() * 2.0 - 1.0 if self.cfg.likelihood == "bernoulli" else pixels_to_unit(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self.to_unit(x))
        with fp32():
            mean, raw = self.to_posterior(h.flatten(1).float()).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.cfg.posterior_std_floor)

    def conditioning(self, z: torch.Tensor) -> torch.Tensor:
        """Feature map (N, hidden, H, W) that carries z to every pixel."""
        side = self.cfg.image_size // 4
        h = self.cond_low(self.from_latent(z).view(len(z), self.cfg.width, side, side))
        h = self.cond_mid(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.cond_high(F.silu(F.interpolate(h, scale_factor=2.0, mode="nearest")))

    @torch.no_grad()
    def calibrate_codes(self, x: torch.Tensor) -> None:
        """Start the pixel head's 8-bit code ranges from images ``x`` (posterior means as
        latents): what a quantisation-aware run does before its first step."""
        mean, _ = self.posterior(x)
        self.local.calibrate_codes(self.to_unit(x), self.conditioning(mean))

    def distribution(self, params: torch.Tensor) -> PixelDistribution:
        """Parameters (..., P) -> a pixel distribution with shapes (N, [K,] 1, H, W)."""
        if self.cfg.likelihood == "bernoulli":
            return Bernoulli(logits=params[..., 0].unsqueeze(1))
        k = self.cfg.mixture_components
        p = params.unflatten(-1, (3, k)).permute(0, 3, 4, 1, 2)  # (N, 3, K, H, W)
        return LogisticMixture(logits=p[:, 0].unsqueeze(2), means=p[:, 1].unsqueeze(2),
                               log_scales=p[:, 2].clamp(min=LOG_SCALE_FLOOR).unsqueeze(2))

    # --- the contract -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Training pass for (Distributed)DataParallel: per-image NLL and per-dimension KLs."""
        terms = elbo_terms(self, x)
        return terms.nll, tuple(terms.kl_per_layer)

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        n, c, height, width = shape
        size = self.cfg.image_size
        if (c, height, width) != (1, size, size):
            raise ValueError(f"this VLAE codes 1×{size}×{size} images, not {c}×{height}×{width}")
        post_mean = post_std = None
        if x is not None:
            post_mean, post_std = self.posterior(x)
        z = torch.zeros(n, self.cfg.latent_dims)
        for i in range(self.cfg.latent_dims):
            prior_mean, prior_std = self.prior(z)
            layer = GaussianLatent(
                prior_mean[:, i].view(n, 1, 1, 1), prior_std[:, i].view(n, 1, 1, 1),
                None if post_mean is None else post_mean[:, i].view(n, 1, 1, 1),
                None if post_std is None else post_std[:, i].view(n, 1, 1, 1),
            )
            value = yield layer
            z = z.clone()
            z[:, i] = value.reshape(n).to(z.dtype)
        return LocalPixelSteps(self.local, self.conditioning(z), shape, self.distribution, self.to_unit, coupled=False)


def _rename_pre_split_keys(state_dict: dict, prefix: str, *args, **kwargs) -> None:
    """Weights written before the local decoder became a shared module (vlae-mnist
    v1) name its tensors ``window.*`` and ``head.*``; they load unchanged."""
    for key in [k for k in state_dict if k.startswith((prefix + "window", prefix + "head."))]:
        state_dict[prefix + "local." + key[len(prefix):]] = state_dict.pop(key)
