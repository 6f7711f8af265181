"""Bring your own model: anything that implements the LatentModel contract codes losslessly.

The coder never sees an architecture: a model yields its latent layers top-down
(prior, plus posterior when x is known), receives the coded value of each layer,
and returns the pixel distribution. Here: a one-latent convolutional VAE, trained
for a few hundred steps on MNIST so the rate means something, then chained
bits-back over 64 test digits.

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


def main() -> None:
    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    torch.manual_seed(0)
    model = TinyVAE()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):
        x = torch.from_numpy(train[np.random.randint(0, len(train), 64)][:, None].copy())
        loss = elbo_terms(model, x).negative_elbo().mean() / 784
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    x = test[:64, None].copy()
    neg_elbo = elbo_terms(model, torch.from_numpy(x)).negative_elbo().mean().item() / 784 / LN2
    coder = BitsBackCoder(model)
    result = coder.encode([x])
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           [(1, 28, 28)] * len(result.groups))
    assert np.array_equal(np.concatenate(decoded), x)
    net = (32 * len(result.words) - result.initial_bits_used) / x.size
    print(f"TinyVAE after 300 steps: -ELBO {neg_elbo:.3f} bits/dim, bits-back net rate {net:.3f} bits/dim, lossless")


if __name__ == "__main__":
    main()
