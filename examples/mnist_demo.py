"""The main job, end to end with the real CLI: compress real MNIST test digits with
the shipped model, decompress them, check every pixel and print the rates.

    make demo            # or: python examples/mnist_demo.py --count 1000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bbcodec  # noqa: E402
from bbcodec.data import load_mnist  # noqa: E402


def bbcodec_cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "bbcodec.cli", *args], check=True, capture_output=True,
                          text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="how many MNIST test digits")
    args = parser.parse_args()
    images, _ = load_mnist("test")
    images = images[: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pngs = []
        for i, img in enumerate(images):
            pngs.append(tmp / f"digit_{i:05d}.png")
            Image.fromarray(img).save(pngs[-1], optimize=True)
        png_bytes = sum(p.stat().st_size for p in pngs)
        chained = json.loads(bbcodec_cli("encode", *map(str, pngs), "-o", str(tmp / "digits.bbc"), "--json"))
        bbcodec_cli("decode", str(tmp / "digits.bbc"), "-o", str(tmp / "restored"))
        single = json.loads(bbcodec_cli("encode", str(pngs[0]), "-o", str(tmp / "one.bbc"), "--json"))
        for p in pngs:
            original = np.asarray(Image.open(p))
            restored = np.asarray(Image.open(tmp / "restored" / p.name))
            if not np.array_equal(original, restored):
                sys.exit(f"MISMATCH in {p.name}")
    model = next(m for m in bbcodec.list_models() if m.name == chained["model"])
    dims = images.size
    print(f"{args.count} MNIST test digits, model {model.name!r} (test -ELBO {model.test_bpd:.4f} bits/dim)")
    print(f"  one .bbc file:     {chained['total_bytes']:>8} bytes  {chained['bits_per_dim']:.4f} bits/dim "
          f"(header {chained['header_bytes']} B, initial bits {chained['initial_bits']})")
    print(f"  PNG, one per image:{png_bytes:>8} bytes  {8 * png_bytes / dims:.4f} bits/dim")
    print(f"  a single digit:    {single['total_bytes']:>8} bytes  {single['bits_per_dim']:.4f} bits/dim "
          f"(initial bits {single['initial_bits']})")
    print("  decoded bit-exact: yes (every pixel of every digit)")


if __name__ == "__main__":
    main()
