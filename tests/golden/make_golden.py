"""Regenerate the golden .bbc file (only when the format changes on purpose).

    python tests/golden/make_golden.py

Writes zoo/tiny/weights.safetensors (a tiny random model), digits.npy (three test
images) and digits.bbc. test_golden.py pins decoding of digits.bbc forever and
encoding to the same bytes on this platform.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.conftest import TINY_CONFIG, make_tiny, random_digits, write_zoo_model


def main() -> None:
    import os

    write_zoo_model(HERE / "zoo", "tiny", make_tiny(TINY_CONFIG, 0))
    os.environ["BBCODEC_MODELS_DIR"] = str(HERE / "zoo")
    import bbcodec

    images = random_digits(3, seed=123)
    images[2] = images[2][::-1]
    np.save(HERE / "digits.npy", images)
    data = bbcodec.compress(list(images), model="tiny", names=["a.png", "b.png", "c.png"])
    (HERE / "digits.bbc").write_bytes(data)
    print(f"digits.bbc: {len(data)} bytes")


if __name__ == "__main__":
    main()
