"""Where the bits go: the coder's cost of every latent part beside the ELBO's.

A bits-back file should cost about the model's −ELBO. When it does not, this tool
says which part pays the difference. It walks the model exactly like
:class:`~bbcodec.bitsback.BitsBackCoder` (posterior bins, bin-centre values fed
back, the same integer tables), but instead of an ANS stack it draws each bin from
the posterior on the format's random stream and adds up information contents:

* per latent part: ``−log2 P_prior(bin) − (−log2 Q_post(bin))``, what bits-back
  nets for that part, beside the part's KL from :func:`elbo_terms`;
* pixels: ``−log2 p(x | ẑ)`` from the coder's own integer tables, beside the float
  model's reconstruction term (continuous samples instead of bin centres).

    python -m bench.rate_breakdown --model biva-mnist --images 200

The sum of the coder's column is the rate a file pays, up to the initial bits.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from bbcodec.contract import InferredLatent, LatentEvent
from bbcodec.data import load_mnist
from bbcodec.exact.bounds import observation_log2, posterior_frequencies, posterior_log2, prior_log2
from bbcodec.exact.distributions import LOG2_FRAC
from bbcodec.exact.random import Stream, sample
from bbcodec.nn.objective import elbo_terms
from bbcodec.walk import walk_latents
from bbcodec.zoo import load_float_model, load_model

LN2 = math.log(2.0)
ONE_BIT = float(1 << LOG2_FRAC)


@torch.no_grad()
def breakdown(model: torch.nn.Module, float_model: torch.nn.Module, x: np.ndarray, precision: int = 8,
              key: int = 0, elbo_passes: int = 4) -> dict:
    """Coder and ELBO bits per image, per part (see the module docstring)."""
    stream = Stream(key)
    xt = torch.from_numpy(np.array(x))  # a writable copy
    posterior_bits: dict[int, float] = {}

    def choose(event: LatentEvent) -> np.ndarray:
        freqs = posterior_frequencies(event, precision)
        idx = sample(freqs, stream.next(len(freqs)))
        posterior_bits[id(event)] = -int(posterior_log2(event, idx, precision).sum()) / ONE_BIT
        return idx.numpy()

    walk = walk_latents(model, xt, tuple(x.shape), precision, choose)
    # Parts in ELBO order: a prior event (the inferred latent's, or a top-down layer's).
    by_key = {e.key: e for e, _ in walk.posteriors if isinstance(e, InferredLatent)}
    coder_parts = []
    for event, idx in walk.priors:
        source = by_key[event.inferred] if event.inferred is not None else event
        prior_bits = -int(prior_log2(event, torch.from_numpy(np.asarray(idx)), precision).sum()) / ONE_BIT
        coder_parts.append(prior_bits - posterior_bits[id(source)])
    pixels = -int(observation_log2(walk.observation, xt).sum()) / ONE_BIT

    kl_parts = np.zeros(len(coder_parts))
    nll = 0.0
    for _ in range(elbo_passes):
        terms = elbo_terms(float_model, xt)
        kl_parts += np.array([float(k.double().sum()) / LN2 for k in terms.kl_per_layer])
        nll += float(terms.nll.double().sum()) / LN2
    kl_parts /= elbo_passes
    nll /= elbo_passes

    n, dims = x.shape[0], int(np.prod(x.shape[1:]))
    per_image = {
        "coder_latent_parts": [b / n for b in coder_parts],
        "elbo_kl_parts": [b / n for b in kl_parts],
        "coder_pixels": pixels / n,
        "elbo_pixels": nll / n,
    }
    coder_total = sum(coder_parts) + pixels
    elbo_total = float(kl_parts.sum()) + nll
    return {"images": n, "dims": dims, "precision": precision, "bits_per_image": per_image,
            "coder_bpd": coder_total / (n * dims), "neg_elbo_bpd": elbo_total / (n * dims)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="biva-mnist")
    parser.add_argument("--images", type=int, default=200, help="first N MNIST test digits")
    parser.add_argument("--precision", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = parser.parse_args()
    model, info = load_model(args.model)
    images, _ = load_mnist("test")
    x = images[: args.images][:, None]
    result = {"model": args.model, **breakdown(model, load_float_model(args.model), x, args.precision)}
    names = list(getattr(info, "latent_part_names", ()) or [])
    result["part_names"] = names
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
