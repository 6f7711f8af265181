"""Regenerate the golden .bbc files of the *current* writer (only when the format
changes on purpose).

    python tests/golden/make_golden.py

Writes, if missing, zoo/tiny/weights.safetensors (a tiny random model) and
digits.npy (three test images); then digits_anchored.bbc (the three images, with
names) and one_digit.bbc (the first image alone: no model name, anchored, top word
trimmed), and digits_importance.bbc (30 images, 4 importance samples, warm-up groups). digits.bbc was written by the first writer (no anchor) and is never
regenerated: test_golden.py pins that every file ever written keeps decoding.

Known bug (session 9): importance-weighted files are not portable across machines.
digits_importance_written_elsewhere.bbc is the file this script wrote on the earlier
machine; on the AMD EPYC machine of session 9 the encoder writes different bytes
(7,775 against 7,769) and decoding the old file stops with DecodeMismatchError (never
wrong pixels). Plain and anchored files are byte-identical on both machines. The index
codec of bbcodec.importance reads raw float log-weights, so a last-bit difference in
the network or in ndtr moves it. digits_importance.bbc was rewritten on the new machine
so that the format stays pinned; once the log-weights are made portable, the old file
must decode again and get its test back.
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
