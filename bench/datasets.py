"""The benchmark's datasets, each a list of uint8 images plus what the tables need.

* ``mnist``: MNIST test, 8-bit (all 10,000 in a full run).
* ``mnist-binary``: MNIST test binarised once with a fixed seed
  (:data:`bbcodec.data.BINARIZED_TEST_SEED`), the papers' dynamically binarised setup.
* ``cifar10-samples``: the first 20 CIFAR-10 test images (lossless PNGs in the
  foolbox 3.3.4 wheel): always available here.
* ``cifar10``: the CIFAR-10 test set from the official tarball (``--cifar10 PATH``).
* ``folder``: every image file in a folder (``--folder DIR``), grouped by mode.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bbcodec.data import BINARIZED_TEST_SEED, binarize, load_cifar10, load_cifar10_samples, load_mnist
from bbcodec.errors import BBCodecError
from bbcodec.images import read_image


@dataclass
class BenchSet:
    """Images of one benchmark dataset (all of one mode: grayscale, RGB or binary)."""

    key: str  # matches bench/reported.json "dataset"
    title: str
    images: list[np.ndarray]
    binary: bool = False
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dims(self) -> int:
        return int(sum(img.size for img in self.images))

    def first(self, n: int) -> "BenchSet":
        """The first ``n`` images as a set of their own, titled by their count."""
        if n >= len(self.images):
            return self
        title = re.sub(r"\((\d+)", f"(first {n}", self.title, count=1)
        return BenchSet(self.key, title, self.images[:n], self.binary,
                        None if self.labels is None else self.labels[:n])


def mnist(n: int) -> BenchSet:
    images, labels = load_mnist("test")
    return BenchSet("mnist-8bit", f"MNIST test ({min(n, len(images))})", list(images[:n]), labels=labels[:n])


VALIDATION_DIGITS = slice(59_000, 59_500)  # MNIST training digits that decisions are made on (never test digits)


def mnist_validation(n: int) -> BenchSet:
    """The validation digits: what choices between models and settings are measured on."""
    images, labels = load_mnist("train")
    images, labels = images[VALIDATION_DIGITS][:n], labels[VALIDATION_DIGITS][:n]
    return BenchSet("mnist-8bit-validation", f"MNIST training digits {VALIDATION_DIGITS.start:,}+ ({len(images)}, "
                    "validation)", list(images), labels=labels)


def mnist_binary(n: int) -> BenchSet:
    images, labels = load_mnist("test")
    binary = binarize(images, seed=BINARIZED_TEST_SEED)
    return BenchSet("mnist-binarized-dynamic", f"binarised MNIST test ({min(n, len(images))}, seed {BINARIZED_TEST_SEED})",
                    list(binary[:n]), binary=True, labels=labels[:n])


def cifar10_samples() -> BenchSet:
    images, labels = load_cifar10_samples()
    return BenchSet("cifar10", "CIFAR-10 test, first 20 (foolbox PNGs)", list(images), labels=labels)


def cifar10(tarball: Path, n: int) -> BenchSet:
    images, labels = load_cifar10(tarball, "test")
    return BenchSet("cifar10", f"CIFAR-10 test ({min(n, len(images))}, official tarball)", list(images[:n]),
                    labels=labels[:n])


def folder(path: Path) -> list[BenchSet]:
    """Every readable image under ``path``, one set per mode; unreadable files are listed as notes."""
    by_mode: dict[str, list[np.ndarray]] = {}
    skipped = []
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        try:
            img = read_image(file)
        except BBCodecError as exc:
            skipped.append(f"{file.name}: {exc}")
            continue
        by_mode.setdefault("RGB" if img.ndim == 3 else "grayscale", []).append(img)
    sets = [BenchSet(f"folder-{mode.lower()}", f"{Path(path).name}/ ({len(imgs)} {mode})", imgs)
            for mode, imgs in by_mode.items()]
    if sets and skipped:
        sets[0].notes.extend(skipped)
    return sets
