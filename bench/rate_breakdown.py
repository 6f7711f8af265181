"""Where the bits go: the coder's cost of every latent part beside the ELBO's.

A bits-back file should cost about the model's −ELBO. When it does not, this tool
says which part pays the difference. It walks the model exactly like
:class:`~bbcodec.bitsback.BitsBackCoder` (posterior bins, bin-centre values fed
back, the same pixel tables), but instead of an ANS stack it draws each bin from
the posterior with a seeded generator and adds up information contents:

* per latent part: ``−log2 P_prior(bin) − (−log2 Q_post(bin))``, what bits-back
  nets for that part, beside the part's KL from :func:`elbo_terms`;
* pixels: ``−log2 p(x | ẑ)`` from the coder's own step-by-step tables, beside the
  same likelihood computed in one teacher-forced pass and the ELBO's reconstruction
  term (continuous samples instead of bin centres).

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

from bbcodec import codecs
from bbcodec.bitsback import coding_threads
from bbcodec.contract import Autoregressive, GaussianLatent, InferredLatent, LatentEvent
from bbcodec.data import load_mnist
from bbcodec.nn.likelihoods import observation_log_prob
from bbcodec.nn.objective import elbo_terms
from bbcodec.walk import walk_latents
from bbcodec.zoo import load_model

LN2 = math.log(2.0)


def _info_bits(tables: torch.Tensor, symbols: np.ndarray) -> float:
    """Information content of ``symbols`` (one per row) under unnormalised ``tables``."""
    t = tables.double()
    picked = t[torch.arange(t.shape[0]), torch.from_numpy(np.asarray(symbols, dtype=np.int64).ravel())]
    return float(-(torch.log2(picked) - torch.log2(t.sum(1))).sum())


def _column(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, 1).float()


def _posterior_tables(event: LatentEvent, precision: int) -> torch.Tensor:
    """The posterior's mass in each bin, exactly as the coder builds it."""
    mean, std = _column(event.post_mean), _column(event.post_std)
    if event.static_bins:
        return codecs.gaussian_bin_masses(mean, std, precision)
    return codecs.gaussian_bin_masses(mean, std, precision, _column(event.prior_mean), _column(event.prior_std))


def _prior_bits(event: GaussianLatent, idx: np.ndarray, precision: int) -> float:
    """What pushing ``idx`` under the prior costs: p bits per dim on the prior's own
    bins, the prior's mass in each N(0, 1) bin on static ones."""
    if not event.static_bins:
        return precision * idx.size
    return _info_bits(codecs.gaussian_bin_masses(_column(event.prior_mean), _column(event.prior_std), precision), idx)


def _pixel_bits_stepwise(obs, x: np.ndarray) -> float:
    """−log2 p(x | ẑ) from the tables the coder would build, step by step."""
    if not isinstance(obs, Autoregressive):
        return _info_bits(codecs.pixel_tables(obs), x.reshape(-1))
    bits = 0.0
    obs.reset()
    for t in range(obs.num_steps):
        values = x[obs.step_index(t)]
        bits += _info_bits(codecs.pixel_tables(obs.step_distribution(t)), values.reshape(-1))
        obs.write(t, torch.from_numpy(np.ascontiguousarray(values)))
    return bits


@torch.no_grad()
@coding_threads()
def breakdown(model: torch.nn.Module, x: np.ndarray, precision: int = 8, seed: int = 0,
              elbo_passes: int = 4) -> dict:
    """Coder and ELBO bits per image, per part (see the module docstring)."""
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(np.array(x)).contiguous(memory_format=torch.channels_last)  # a writable copy
    posterior_bits: dict[int, float] = {}

    def choose(event: LatentEvent) -> np.ndarray:
        tables = _posterior_tables(event, precision).double()
        cdf = torch.cumsum(tables / tables.sum(1, keepdim=True), 1).numpy()
        u = rng.random((cdf.shape[0], 1))
        idx = np.minimum((cdf < u).sum(1), cdf.shape[1] - 1)
        posterior_bits[id(event)] = _info_bits(tables, idx)
        return idx

    walk = walk_latents(model, xt, tuple(x.shape), precision, choose)
    # Parts in ELBO order: a prior event (the inferred latent's, or a top-down layer's).
    by_key = {e.key: e for e, _ in walk.posteriors if isinstance(e, InferredLatent)}
    coder_parts = []
    for event, idx in walk.priors:
        source = by_key[event.inferred] if event.inferred is not None else event
        coder_parts.append(_prior_bits(event, idx, precision) - posterior_bits[id(source)])
    obs = walk.observation
    pixels_stepwise = _pixel_bits_stepwise(obs, x)
    pixels_parallel = -float(observation_log_prob(obs, xt).double().sum()) / LN2

    kl_parts = np.zeros(len(coder_parts))
    nll = 0.0
    for _ in range(elbo_passes):
        terms = elbo_terms(model, xt)
        kl_parts += np.array([float(k.double().sum()) / LN2 for k in terms.kl_per_layer])
        nll += float(terms.nll.double().sum()) / LN2
    kl_parts /= elbo_passes
    nll /= elbo_passes

    n, dims = x.shape[0], int(np.prod(x.shape[1:]))
    per_image = {
        "coder_latent_parts": [b / n for b in coder_parts],
        "elbo_kl_parts": [b / n for b in kl_parts],
        "coder_pixels_stepwise": pixels_stepwise / n,
        "coder_pixels_parallel": pixels_parallel / n,
        "elbo_pixels": nll / n,
    }
    coder_total = sum(coder_parts) + pixels_stepwise
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
    model.eval()
    images, _ = load_mnist("test")
    x = images[: args.images][:, None]
    result = {"model": args.model, **breakdown(model, x, args.precision)}
    names = list(getattr(info, "latent_part_names", ()) or [])
    result["part_names"] = names
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
