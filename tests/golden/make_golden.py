"""Regenerate the golden .bbc files of the *current* writer (only when the format
changes on purpose).

    python tests/golden/make_golden.py

Writes, if missing, zoo/tiny/weights.safetensors (a tiny random model) and
digits.npy (three test images); then digits_anchored.bbc (the three images, with
names) and one_digit.bbc (the first image alone: no model name, anchored, top word
trimmed), and digits_importance.bbc (30 images, 4 importance samples, warm-up groups). digits.bbc
was written by the first writer (no anchor) and is never regenerated: test_golden.py pins that every file ever written keeps decoding.

Portability (session 10): the files here decode on any x86-64 machine with AVX2
because the coder pins torch's ATen and oneDNN kernels to AVX2 (bbcodec.numerics).
digits_importance.bbc was written on an earlier AVX2-only machine; on the AVX-512
machine of sessions 9-10 it decoded only after the pin, and the encoder there now
writes the same bytes again (test_golden.py checks both).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.conftest import TINY_CONFIG, make_tiny, random_digits, write_zoo_model


def importance_images(images: np.ndarray) -> list[np.ndarray]:
    """Enough images (the three, ten times over) for the chain to warm up and then weight."""
    return list(images) * 10


def main() -> None:
    import os

    if not (HERE / "zoo" / "tiny" / "weights.safetensors").exists():
        write_zoo_model(HERE / "zoo", "tiny", make_tiny(TINY_CONFIG, 0))
    os.environ["BBCODEC_MODELS_DIR"] = str(HERE / "zoo")
    import bbcodec

    if not (HERE / "digits.npy").exists():
        images = random_digits(3, seed=123)
        images[2] = images[2][::-1]
        np.save(HERE / "digits.npy", images)
    images = np.load(HERE / "digits.npy")
    outputs = {
        "digits_anchored.bbc": bbcodec.compress(list(images), model="tiny", names=["a.png", "b.png", "c.png"]),
        "one_digit.bbc": bbcodec.compress([images[0]], model="tiny"),
        "digits_importance.bbc": bbcodec.compress(importance_images(images), model="tiny", samples=4),
    }
    for name, data in outputs.items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
