"""The integer coding form of :class:`bbcodec.nn.vlae.VLAE`.

Layer for layer the float model's structure (see that module for why it is built so);
every tensor is a float64 tensor of whole numbers on the activation grid, every
distribution parameter leaves as an integer, and the latent walk yields the
contract's events with int64 parameters (:mod:`bbcodec.exact.distributions` turns
them into frequency tables).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from bbcodec.contract import GaussianLatent, LatentSteps
from bbcodec.exact import tables
from bbcodec.exact.digit_conv import DIGIT_FORMS, DigitConv2d, replace_convs
from bbcodec.exact.distributions import BernoulliPixels, Logistics
from bbcodec.exact.fixed import ONE
from bbcodec.exact.layers import (
    upsample2, IConv2d, ILinear, IResBlock, bounded_softplus, conv_after_silu, grid_constant, silu,
)
from bbcodec.exact.local import ExactPixelSteps, ILocalPixelNet
from bbcodec.exact.narrow import NARROW_FORMS, NarrowPixelNet
from bbcodec.exact.narrow_conv import NarrowConditioning
from bbcodec.exact.narrow_steps import NarrowGroup
from bbcodec.nn.vlae import VLAE, VLAEConfig

SOFTPLUS_OFFSET = 0.5413248546129181  # bbcodec.nn.layers.bounded_softplus: raw = 0 maps to 1 + floor
ENCODER = "encoder_"  # the prefix of the encoder's layers (the posterior's network)
ENCODER_FORMS = ("int8-w13", "int8-w7")  # the encoder's digit forms (digit_conv.DIGIT_FORMS)


def is_encoder(name: str) -> bool:
    return name.startswith(ENCODER)


class IMADEPrior(nn.Module):
    """:class:`bbcodec.nn.vlae.MADEPrior`: ``μ_i, σ_i`` of every dimension from ``z_<i``."""

    def __init__(self, dims: int, hidden: int, std_floor: float) -> None:
        super().__init__()
        self.layer1, self.layer2, self.out = ILinear(dims, hidden), ILinear(hidden, hidden), ILinear(hidden, 2 * dims)
        self.register_buffer("offset", grid_constant(SOFTPLUS_OFFSET))
        self.register_buffer("floor", grid_constant(std_floor))
        self._by_dim: list | None = None

    @classmethod
    def of(cls, prior: nn.Module) -> IMADEPrior:
        out = cls(prior.dims, prior.layer1.out_features, prior.std_floor)
        for name in ("layer1", "layer2", "out"):
            layer = getattr(prior, name)
            setattr(out, name, ILinear.of(layer, weight=layer.weight * layer.mask))
        return out

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = silu(self.layer2(silu(self.layer1(z))))
        mean, raw = self.out(h).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.offset, self.floor)

    def dim(self, z: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dimension ``i``'s mean and std (N,): :meth:`forward`'s column ``i``, from the hidden
        units it reads alone. Why: a decoder asks for one dimension at a time, and by the
        masks dimension ``i`` reads about i/D of each hidden layer, so the whole network
        at every dimension did about three times the work (the same integers: every unit
        left out carries zero weight into the ones kept)."""
        path = self._paths()[i]
        if path is None:  # no hidden unit reaches it (the first dimension): the whole network
            mean, std = self.forward(z)
            return mean[:, i], std[:, i]
        first, second, out = path
        mean, raw = out(silu(second(silu(first(z))))).unbind(1)
        return mean, bounded_softplus(raw, self.offset, self.floor)

    def _paths(self) -> list[tuple[ILinear, ILinear, ILinear] | None]:
        """Per dimension: layer 1 at the units layer 2 reads, layer 2 at the units the
        outputs (mean, std) read, the outputs; from the stored weights' nonzeros."""
        if self._by_dim is None:
            dims = self.out.weight.shape[0] // 2
            self._by_dim = []
            for i in range(dims):
                outs = torch.tensor([i, dims + i])
                units2 = (self.out.weight[outs] != 0).any(0).nonzero().flatten()
                units1 = (self.layer2.weight[units2] != 0).any(0).nonzero().flatten()
                if len(units1) == 0:
                    self._by_dim.append(None)
                    continue
                self._by_dim.append((self.layer1.part(units1), self.layer2.part(units2, units1),
                                     self.out.part(outs, units2)))
        return self._by_dim

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self._by_dim = None  # new weights: the paths are made again from them
        super()._load_from_state_dict(*args, **kwargs)


class ExactVLAE(nn.Module):
    """Integer VLAE implementing :class:`bbcodec.contract.LatentModel` with int64 events."""

    arch = "vlae"

    def __init__(self, cfg: VLAEConfig, local_form: str = "wide", encoder_form: str = "wide") -> None:
        """``local_form``: the decoder's networks on float64 products ("wide") or on int8 ones (a
        name in :data:`~bbcodec.exact.narrow.NARROW_FORMS`). ``encoder_form``: the encoder's
        convolutions on float64 products ("wide") or on int8 digits (a name in
        :data:`ENCODER_FORMS`: 13- or 7-bit weights, :mod:`bbcodec.exact.digit_conv`). Why
        the encoder has a form of its own: it runs on every image both ways (the decoder
        needs the posterior to give its bits back), and in float64 it was a fifth of a
        narrow model's coding time (measured: the posterior of 512 digits under
        ``vlae-mnist-large-q8``'s weights, 576 ms in float64, 199 ms in ``int8-w7``)."""
        super().__init__()
        self.cfg, self.local_form, self.encoder_form = cfg, local_form, encoder_form
        w, side = cfg.width, cfg.image_size // 4
        self.encoder_in = IConv2d(1, w, (3, 3), stride=2, padding=(1, 1))
        self.encoder_res1 = IResBlock(w)
        self.encoder_down = IConv2d(w, w, (3, 3), stride=2, padding=(1, 1))
        self.encoder_res2 = IResBlock(w)
        self.to_posterior = ILinear(w * side * side, 2 * cfg.latent_dims)
        self.prior = IMADEPrior(cfg.latent_dims, cfg.made_hidden, cfg.prior_std_floor)
        self.from_latent = ILinear(cfg.latent_dims, w * side * side)
        self.local: ILocalPixelNet | NarrowPixelNet
        if local_form in NARROW_FORMS:  # the decoder's networks on int8 products
            self.cond_net = NarrowConditioning(w, cfg.hidden, NARROW_FORMS[local_form]("cond"))
            self.local = NarrowPixelNet(cfg.hidden, cfg.pixel_blocks, cfg.params_per_pixel, cfg.window_rows,
                                        cfg.window_cols, cfg.likelihood == "bernoulli", local_form)
        elif local_form == "wide":
            self.cond_low = IResBlock(w)
            self.cond_mid_conv = IConv2d(w, w, (3, 3), padding=(1, 1))
            self.cond_mid_res = IResBlock(w)
            self.cond_high = IConv2d(w, cfg.hidden, (1, 1))
            self.local = ILocalPixelNet(1, cfg.hidden, cfg.pixel_blocks, cfg.params_per_pixel,
                                        cfg.window_rows, cfg.window_cols)
        else:
            raise ValueError(f"unknown decoder form {local_form!r}")
        self.register_buffer("post_offset", grid_constant(SOFTPLUS_OFFSET))
        self.register_buffer("post_floor", grid_constant(cfg.posterior_std_floor))
        if encoder_form in ENCODER_FORMS:
            limbs = DIGIT_FORMS[encoder_form]
            replace_convs(self, lambda name, conv: DigitConv2d.blank_like(conv, limbs(name)), is_encoder)
        elif encoder_form != "wide":
            raise ValueError(f"unknown encoder form {encoder_form!r}")

    @classmethod
    def of(cls, model: VLAE, narrow: tuple[NarrowPixelNet, NarrowConditioning] | None = None) -> ExactVLAE:
        """The integer form of a trained float VLAE (``narrow``: its decoder's int8 forms,
        from :func:`bbcodec.exact.narrow_export.narrow_integer_form`)."""
        out = cls(model.cfg, "wide" if narrow is None else narrow[0].form)
        enc = model.encoder
        out.encoder_in, out.encoder_res1 = IConv2d.of(enc[0]), IResBlock.of(enc[1])
        out.encoder_down, out.encoder_res2 = IConv2d.of(enc[3]), IResBlock.of(enc[4])
        out.to_posterior = ILinear.of(model.to_posterior)
        out.prior = IMADEPrior.of(model.prior)
        out.from_latent = ILinear.of(model.from_latent)
        if narrow is not None:
            out.local, out.cond_net = narrow
            return out
        out.cond_low = IResBlock.of(model.cond_low)
        out.cond_mid_conv, out.cond_mid_res = IConv2d.of(model.cond_mid[0]), IResBlock.of(model.cond_mid[1])
        out.cond_high = IConv2d.of(model.cond_high)
        out.local = ILocalPixelNet.of(model.local)
        return out

    # --- pieces ---------------------------------------------------------------------
    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels as grid network inputs in [-1, 1] (binary: 0 -> -1, 1 -> 1)."""
        if self.cfg.likelihood == "bernoulli":
            return x.double() * (2 * ONE) - ONE
        return tables.pixel_units(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder_res1(self.encoder_in(self.to_unit(x)))
        h = silu(self.encoder_res2(conv_after_silu(self.encoder_down, h)))
        mean, raw = self.to_posterior(h.flatten(1)).chunk(2, dim=1)
        return mean, bounded_softplus(raw, self.post_offset, self.post_floor)

    def conditioning(self, z: torch.Tensor) -> torch.Tensor:
        side = self.cfg.image_size // 4
        if self.local_form != "wide":
            return self.cond_net(self.from_latent(z).view(len(z), self.cfg.width, side, side))
        h = self.cond_low(self.from_latent(z).view(len(z), self.cfg.width, side, side))
        h = self.cond_mid_res(self.cond_mid_conv(upsample2(h)))
        return self.cond_high(silu(upsample2(h)))

    def distribution(self, params: torch.Tensor) -> Logistics | BernoulliPixels:
        """Grid parameters (N, H, W, P) -> integer pixel distribution of (N, 1, H, W) pixels."""
        if self.cfg.likelihood == "bernoulli":
            return BernoulliPixels.from_logits(params[..., 0])
        return Logistics.from_packed(params, self.cfg.mixture_components)

    # --- the contract ----------------------------------------------------------------
    takes_known_latents = True  # latent_steps(..., known=...): a replay's priors in one pass

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int],
                     known: list[torch.Tensor] | None = None) -> LatentSteps:
        """``known``: the values this walk will be handed back (a decoder's second walk
        replays what its first decoded). The prior of every dimension then comes from
        one pass of the MADE prior on the whole ``z`` (the same integers as one
        dimension at a time: the masks give a dimension zero weight from ``z_≥i``), not
        from 32 passes one after another."""
        n, c, height, width = shape
        size = self.cfg.image_size
        if (c, height, width) != (1, size, size):
            raise ValueError(f"this VLAE codes 1×{size}×{size} images, not {c}×{height}×{width}")
        post_mean = post_std = None
        if x is not None:
            post_mean, post_std = (t.to(torch.int64) for t in self.posterior(x))
        z = torch.zeros(n, self.cfg.latent_dims, dtype=torch.float64)
        priors = None
        if known is not None:
            if len(known) != self.cfg.latent_dims:
                raise ValueError(f"a replay knows {len(known)} latent values, this VLAE has {self.cfg.latent_dims}")
            z_known = torch.stack([v.reshape(n) for v in known], 1)  # whole numbers on the grid
            priors = tuple(t.to(torch.int64) for t in self.prior(z_known.to(torch.float64)))
        for i in range(self.cfg.latent_dims):
            mean_i, std_i = (p[:, i] for p in priors) if priors is not None else self.prior.dim(z, i)
            prior_mean, prior_std = (t.to(torch.int64).view(n, 1, 1, 1) for t in (mean_i, std_i))
            layer = GaussianLatent(
                prior_mean, prior_std,
                None if post_mean is None else post_mean[:, i].view(n, 1, 1, 1),
                None if post_std is None else post_std[:, i].view(n, 1, 1, 1),
            )
            value = yield layer
            z = z.clone()
            z[:, i] = value.reshape(n).to(torch.float64)
            if priors is not None and not torch.equal(value.reshape(n), z_known[:, i]):
                raise ValueError(f"a replay handed back another value than it knew at latent dimension {i}")
        narrow = isinstance(self.local, NarrowPixelNet)
        canvas_values = self.local.pixel_codes if narrow else self.to_unit
        fused = narrow and self.cfg.likelihood != "bernoulli"
        k = self.cfg.mixture_components
        step_tables = partial(self.local.step_logistic_tables, k=k) if fused else None
        step_draws = partial(self.local.step_logistic_draws, k=k) if fused else None
        step_pops = partial(self.local.step_logistic_pop, k=k) if fused else None
        group_steps = partial(NarrowGroup, self.local, k=k) if fused else None
        return ExactPixelSteps(self.local, lambda: self.conditioning(z), shape, self.distribution, canvas_values,
                               coupled=False, step_tables=step_tables, step_draws=step_draws, step_pops=step_pops,
                               group_steps=group_steps)
