"""The look-up tables of the integer coding path, stored once, never rebuilt at coding time.

A transcendental function (sigmoid, the normal CDF and its quantiles, exp, log) is
where machines disagree: glibc's ``erfc`` and SLEEF's vector ``exp`` differ by
version and instruction set. So every such function the coder needs is tabulated
here once, on a fixed grid, rounded to integers and shipped in
``tables.safetensors`` beside this module; :func:`load` checks its sha256 and the
coder only ever indexes it. Regenerating (``python -m bbcodec.exact.tables``) is for
a new format revision only: a changed table is a changed format.

Each table ``T`` samples a function at cell centres ``x_i = lo + (i + ½) · 2^-step``
and is read with :func:`lookup` (clamped at both ends, where every function here is
flat or handled by its caller).
"""

from __future__ import annotations

import hashlib
import math
import statistics
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from bbcodec.exact.fixed import FRAC, PROB_BITS

PATH = Path(__file__).with_name("tables.safetensors")
SHA256 = "49ba0705f1be28f04aa2efd17fe6ce940782463d655e04e61ef8b1a5f0d24217"  # regenerate only for a new format revision
MAX_PRECISION = 12  # latent bins: 2^p for p <= this (the container's limit)


@dataclass(frozen=True)
class Grid:
    """A table's domain: ``[lo, lo + size · 2^-step)`` sampled at cell centres."""

    lo: int  # in whole units
    size: int
    step: int  # log2 of cells per unit

    def centres(self) -> list[float]:
        h = 2.0**-self.step
        return [self.lo + (i + 0.5) * h for i in range(self.size)]


GRIDS = {
    "sigmoid": Grid(-16, 32 << 12, 12),
    "silu_residual": Grid(-16, 32 << 12, 12),
    "softplus_residual": Grid(-16, 32 << 12, 12),
    "tanh": Grid(-8, 16 << 12, 12),
    "ndtr": Grid(-8, 16 << 12, 12),
    "exp": Grid(-16, 32 << 10, 10),
    "exp_neg": Grid(0, 24 << 8, 8),
    "exp2_neg": Grid(0, 32 << 8, 8),
    "log2_mantissa": Grid(1, 1 << 16, 16),
}
# Output units (log2 of the denominator) of each table.
UNITS = {"sigmoid": PROB_BITS, "silu_residual": FRAC, "softplus_residual": FRAC, "tanh": FRAC, "ndtr": PROB_BITS,
         "exp": 16, "exp_neg": 30, "exp2_neg": 30, "log2_mantissa": 20}


def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


FUNCTIONS = {
    "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)),
    "silu_residual": lambda x: -abs(x) / (1.0 + math.exp(abs(x))),  # silu(x) − relu(x)
    "softplus_residual": lambda x: math.log1p(math.exp(-abs(x))),  # softplus(x) − relu(x)
    "tanh": math.tanh,
    "ndtr": _ndtr,
    "exp": math.exp,
    "exp_neg": lambda t: math.exp(-t),
    "exp2_neg": lambda t: 2.0**-t,
    "log2_mantissa": math.log2,
}


def build() -> dict[str, torch.Tensor]:
    """Every table, computed in float64 and rounded (what the shipped file holds)."""
    out: dict[str, torch.Tensor] = {}
    for name, grid in GRIDS.items():
        f, scale = FUNCTIONS[name], float(1 << UNITS[name])
        out[name] = torch.tensor([round(f(x) * scale) for x in grid.centres()], dtype=torch.int64)
    normal = statistics.NormalDist()
    for p in range(1, MAX_PRECISION + 1):
        n = 1 << p
        out[f"normal_edges_{p}"] = torch.tensor([round(normal.inv_cdf(e / n) * (1 << FRAC)) for e in range(1, n)],
                                                dtype=torch.int64)
        out[f"normal_centres_{p}"] = torch.tensor(
            [round(normal.inv_cdf((c + 0.5) / n) * (1 << FRAC)) for c in range(n)], dtype=torch.int64)
    # 8-bit pixels as network inputs in [-1, 1] (bin centres), and the 255 interior bin edges.
    out["pixel_unit"] = torch.tensor([round((2 * x - 255) / 255 * (1 << FRAC)) for x in range(256)], dtype=torch.int64)
    out["pixel_edges"] = torch.tensor([round((2 * j + 1 - 255) / 255 * (1 << FRAC)) for j in range(255)],
                                      dtype=torch.int64)
    return out


class Tables:
    """The loaded tables as int64 (distributions) and float64 (network activations)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.int = {k: v.to(torch.int64).contiguous() for k, v in tensors.items()}
        self.float = {k: v.double().contiguous() for k, v in tensors.items()}

    def normal_edges(self, precision: int) -> torch.Tensor:
        return self.int[f"normal_edges_{precision}"]

    def normal_centres(self, precision: int) -> torch.Tensor:
        return self.int[f"normal_centres_{precision}"]


def file_sha256(path: Path = PATH) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def load() -> Tables:
    """The shipped tables, refused if the file is not the one this format defines."""
    from safetensors.torch import load_file

    digest = file_sha256()
    if digest != SHA256:
        raise RuntimeError(f"{PATH.name} has sha256 {digest}, this bbcodec needs {SHA256}: reinstall bbcodec")
    return Tables(load_file(str(PATH)))


@lru_cache(maxsize=1)
def _pixel_unit_values() -> np.ndarray:
    return load().float["pixel_unit"].numpy()


def pixel_units(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the networks' grid inputs in [-1, 1] (float64 whole numbers): the
    stored ``pixel_unit`` table, read by numpy (a decoding step writes a few pixels, and
    torch's indexing costs more than the step's look-ups)."""
    return torch.from_numpy(_pixel_unit_values()[x.numpy()])


def index_of(u: torch.Tensor, name: str) -> torch.Tensor:
    """Clamped int64 index of ``u`` (integers on the table's grid, i.e. units of 2^-step)."""
    grid = GRIDS[name]
    return (u.to(torch.int64) - (grid.lo << grid.step)).clamp_(0, grid.size - 1)


def lookup(table: torch.Tensor, u: torch.Tensor, name: str) -> torch.Tensor:
    """``table`` (one of :meth:`Tables.int` / :meth:`Tables.float`) at grid integers ``u``."""
    return table[index_of(u, name)]


def write() -> str:
    from safetensors.torch import save_file

    tensors = {k: (v.to(torch.int32) if v.abs().max() < 2**31 else v) for k, v in build().items()}
    save_file(tensors, str(PATH))
    return file_sha256()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m bbcodec.exact.tables --write   (a new table file is a new format revision)")
    print(write())
