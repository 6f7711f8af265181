"""Embedding bbcodec: the public API, then the coder objects underneath it.

    python examples/library_use.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bbcodec  # noqa: E402
from bbcodec.ans import Stack  # noqa: E402
from bbcodec.bitsback import BitsBackCoder, CoderSettings  # noqa: E402
from bbcodec.data import load_mnist  # noqa: E402


def main() -> None:
    digits, _ = load_mnist("test")
    batch = list(digits[:32])

    # 1. bytes in, bytes out: one call each way, every pixel back.
    data = bbcodec.compress(batch)
    restored = bbcodec.decompress(data)
    assert all(np.array_equal(a, b) for a, b in zip(batch, restored))
    info = bbcodec.inspect(data)
    print(f"32 digits -> {len(data)} bytes, {info.bits_per_dim:.3f} bits/dim with model {info.model!r}")

    # 2. the coder itself: bits-back on your own stack, e.g. to interleave other data.
    model, _ = bbcodec.load_model("mnist-int8-w7")
    coder = BitsBackCoder(model, CoderSettings(latent_precision=8))
    stack = Stack(np.arange(1, 2000, dtype=np.uint32))  # your own bits become the initial bits
    x = np.stack(batch[:4])[:, None]  # (N, C, H, W) uint8
    popped = coder.encode_group(stack, x)
    print(f"group of 4: read {popped} bits back from the stack, stack now {stack.num_bits()} bits")
    decoded = coder.decode_group(stack, x.shape)
    assert np.array_equal(decoded, x) and np.array_equal(stack.words(), np.arange(1, 2000, dtype=np.uint32))
    print("decoded the group and got the original stack back")


if __name__ == "__main__":
    main()
