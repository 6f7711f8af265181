"""The contract between a latent-variable model and the bits-back coder.

A model exposes its latent layers *top-down* as a generator (DESIGN.md §3)::

    steps = model.latent_steps(x)          # x is None when decoding
    layer = next(steps)                    # a GaussianLatent: prior (+ posterior if x)
    layer = steps.send(z)                  # hand back the value that was coded
    ...
    # StopIteration.value is the observation model p(x | z)

A model with a bottom-up inference pass (BIVA) first yields :class:`InferredLatent`
events (posterior only, encode side) and later each one's prior as a
:class:`GaussianLatent` that names it (``inferred=key``).

The coder never sees an architecture, only these parameter tensors, so a plain VAE,
a hierarchical VAE and a VAE with an autoregressive decoder share one bits-back
routine. Training uses the very same generator (with reparameterised samples), so
the distributions that are trained are the distributions that are coded.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class GaussianLatent:
    """One latent layer: diagonal Gaussian prior and (when x is known) posterior.

    All tensors have the layer's shape ``(N, C, H, W)``. The prior may depend on the
    layers above (a *conditional* prior); the coder discretises each layer with bins
    of equal mass under that prior (HiLLoC's dynamic discretisation).
    """

    prior_mean: torch.Tensor
    prior_std: torch.Tensor
    post_mean: torch.Tensor | None = None
    post_std: torch.Tensor | None = None
    # Static bins: equal mass under N(0, 1) instead of under this layer's prior. For
    # latents whose posterior must be sampled before the layers above them are known
    # (BIVA's bottom-up latents), so their bins cannot follow the conditional prior.
    static_bins: bool = False
    # The key of an :class:`InferredLatent` yielded earlier in the same walk: this
    # event is that latent's *prior* only (its value is already fixed when x is
    # known; the coder sends it back unchanged). Such events have static bins.
    inferred: str | None = None

    def __post_init__(self) -> None:
        if self.inferred is not None and (not self.static_bins or self.post_mean is not None):
            raise ValueError("the prior event of an inferred latent has static bins and no posterior")

    @property
    def shape(self) -> torch.Size:
        return self.prior_mean.shape


@dataclass(frozen=True)
class InferredLatent:
    """A latent sampled in an *inference pass* before the top-down walk (BIVA's
    bottom-up latents): posterior only, on static N(0, 1) bins.

    Yielded only when ``x`` is known. Its posterior may depend on ``x`` and on the
    inferred latents yielded before it, never on the top-down latents, which is why
    it must come first: the encoder pops it before any top-down layer exists. Its
    prior arrives later in the walk as a :class:`GaussianLatent` with
    ``inferred=key``; a decoder (no ``x``) sees only that prior event.
    """

    key: str
    post_mean: torch.Tensor
    post_std: torch.Tensor
    static_bins: bool = True

    @property
    def shape(self) -> torch.Size:
        return self.post_mean.shape


LatentEvent = GaussianLatent | InferredLatent


@dataclass(frozen=True)
class LogisticMixture:
    """Discretised logistic mixture over 8-bit pixels (PixelCNN++ parameterisation).

    Shapes ``(N, K, C, H, W)``; pixel values are mapped to ``[-1, 1]`` and every
    bin is ``2/255`` wide. The tails below 0 and above 255 fall into the edge bins.
    """

    logits: torch.Tensor
    means: torch.Tensor
    log_scales: torch.Tensor


@dataclass(frozen=True)
class Bernoulli:
    """Binary pixels (binarised images): ``P(x = 1) = sigmoid(logits)``, shape (N, C, H, W)."""

    logits: torch.Tensor


PixelDistribution = LogisticMixture | Bernoulli


StepIndex = tuple[slice | int, ...]


@runtime_checkable
class Autoregressive(Protocol):
    """p(x | z) factorised into ordered steps: each step's pixels depend on earlier steps.

    A step is any slice of the batch ``x`` (N, C, H, W): one raster position of every
    image (a PixelCNN decoder), or one colour channel of every pixel (RGB with
    channel coupling). Training and likelihood bounds use :meth:`log_prob` (all steps
    at once, teacher forcing). The coder walks the steps in order: :meth:`reset`,
    then for each step ``t`` it asks :meth:`step_distribution` and hands the coded
    values back through :meth:`write`. The *encoder* walks exactly like the decoder
    (writing the true pixels), so both compute every parameter with identical calls
    on identical inputs (DESIGN.md §4).
    """

    shape: tuple[int, int, int, int]
    num_steps: int

    def reset(self) -> None: ...

    def step_index(self, t: int) -> StepIndex:
        """Which values step ``t`` codes: ``x[step_index(t)]``, flattened in C order."""
        ...

    def step_distribution(self, t: int) -> PixelDistribution:
        """Distribution of ``x[step_index(t)]``; its tables come in the same flattened order."""
        ...

    def write(self, t: int, values: torch.Tensor) -> None:
        """Hand back the coded values ``x[step_index(t)]`` of step ``t``."""
        ...


ObservationModel = LogisticMixture | Bernoulli | Autoregressive

LatentSteps = Generator[LatentEvent, torch.Tensor, ObservationModel]


@runtime_checkable
class LatentModel(Protocol):
    """What bits-back needs from a model; see the module docstring."""

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        """Yield layers top-down for images of ``shape`` (N, C, H, W).

        ``x`` is the uint8 batch when encoding (posteriors are then filled in) and
        None when decoding.
        """
        ...
