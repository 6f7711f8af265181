"""Bring your own model: anything that implements the LatentModel contract codes losslessly.

The coder never sees an architecture: a model yields its latent layers top-down
(prior, plus posterior when x is known), receives the coded value of each layer,
and returns the pixel distribution. Two ways to code your own model:

1. Build it from a shipped architecture's config (here a small ``HVAEConfig``),
   train it, and export its integer form with ``integer_form``: files decode on
   every machine, and the integer form's own −ELBO shows what export cost.
2. Any other architecture (here a one-latent conv VAE with transposed
   convolutions): wrap it in ``MachineBound``. The coder rounds its float outputs
   onto the integer grid, so its results decode only where the model computes
   alike: fine for experiments, not for files that travel (docs/EXACTNESS.md).

Both are trained for a few hundred steps on MNIST so the rates mean something,
then chained bits-back over 64 test digits.

    python examples/custom_model.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bbcodec.bitsback import BitsBackCoder  # noqa: E402
from bbcodec.contract import GaussianLatent, LatentSteps, LogisticMixture  # noqa: E402
from bbcodec.data import load_mnist  # noqa: E402
from bbcodec.exact import MachineBound, integer_form, negative_elbo_bits  # noqa: E402
from bbcodec.nn.hvae import HVAE, HVAEConfig, LatentSpec  # noqa: E402
from bbcodec.nn.objective import LN2, elbo_terms  # noqa: E402


class TinyVAE(nn.Module):
    """x (N,1,28,28) -> z (N,8,7,7) with a standard-normal prior -> one logistic per pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.SiLU(), nn.Conv2d(32, 16, 4, 2, 1))
        self.dec = nn.Sequential(nn.ConvTranspose2d(8, 32, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1))

    def latent_steps(self, x: torch.Tensor | None, shape: tuple[int, int, int, int]) -> LatentSteps:
        n = shape[0]
        prior = (torch.zeros(n, 8, 7, 7), torch.ones(n, 8, 7, 7))
        post = (None, None)
        if x is not None:
            mean, raw = self.enc(x.float() / 127.5 - 1).chunk(2, dim=1)
            post = (mean, nn.functional.softplus(raw) + 1e-2)
        z = yield GaussianLatent(*prior, *post)
        logit, mean, log_scale = self.dec(z).unsqueeze(1).chunk(3, dim=2)  # K = 1 component
        return LogisticMixture(logit, mean, log_scale.clamp(min=-7))


def train(model: nn.Module, steps: int = 300) -> nn.Module:
    train_images, _ = load_mnist("train")
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        x = torch.from_numpy(train_images[np.random.randint(0, len(train_images), 64)][:, None].copy())
        loss = elbo_terms(model, x).negative_elbo().mean() / 784
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


def net_rate(coded_model, x: np.ndarray) -> float:
    """Chain ``x`` bits-back, check it decodes exactly, return the net rate (bits/dim)."""
    coder = BitsBackCoder(coded_model)
    result = coder.encode([x])
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           [(1, 28, 28)] * len(result.groups))
    assert np.array_equal(np.concatenate(decoded), x)
    return (32 * len(result.words) - result.initial_bits_used) / x.size


def main() -> None:
    x = load_mnist("test")[0][:64, None].copy()
    hvae = train(HVAE(HVAEConfig(width=32, latents=(LatentSpec(2, 4), LatentSpec(1, 2)))))
    vae = train(TinyVAE())
    with torch.no_grad():
        exact = integer_form(hvae)
        float_elbo = elbo_terms(hvae, torch.from_numpy(x)).negative_elbo().mean().item() / 784 / LN2
        integer_elbo = negative_elbo_bits(exact, x, 8).mean() / 784
        print(f"HVAE config, integer form: float -ELBO {float_elbo:.3f}, integer -ELBO {integer_elbo:.3f} bits/dim "
              f"(export cost {100 * (integer_elbo / float_elbo - 1):+.2f}%), net rate {net_rate(exact, x):.3f}, "
              "decodes on any machine")
        neg_elbo = elbo_terms(vae, torch.from_numpy(x)).negative_elbo().mean().item() / 784 / LN2
        print(f"TinyVAE, machine-bound: -ELBO {neg_elbo:.3f} bits/dim, net rate {net_rate(MachineBound(vae), x):.3f}, "
              "decodes where it was coded")


if __name__ == "__main__":
    main()
