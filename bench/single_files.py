"""One image per file over a whole test set: what a CLI user pays for a single image.

    python -m bench.single_files                       # all 10,000 MNIST test digits, default model
    python -m bench.single_files --model mnist --images 1000 --decode 200

Every file is a real ``bbcodec.compress([image])`` output (header, anchor, CRCs);
the first ``--decode`` files are also decoded and compared pixel by pixel. Beside it:
the same digits as PNG, WebP lossless and JPEG-XL files, one per image. Separate from
``python -m bench`` because coding 10,000 files one by one takes tens of minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import bbcodec
from bbcodec.data import load_mnist
from bench.classical import classical_rows

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.single_files", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the model bbcodec chooses for a 28x28 digit")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--decode", type=int, default=500, help="how many of the files to decode and compare")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    images, _ = load_mnist("test")
    images = list(images[: args.images])
    model = args.model or bbcodec.api.choose_model(images[:1], None).name
    sizes, steps, exact = [], [], 0
    t = time.perf_counter()
    for i, img in enumerate(images):
        data = bbcodec.compress([img], model=model)
        sizes.append(len(data))
        steps.append(bbcodec.container.unpack(data)[0].anchor_step)
        if i < args.decode:
            exact += int(np.array_equal(bbcodec.decompress(data)[0], img))
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} files, mean {np.mean(sizes):.2f} bytes", flush=True)
    seconds = time.perf_counter() - t
    dims = images[0].size
    classical = {r["codec"]: r["bits_per_dim"] for r in classical_rows(images) if r["note"] == "one file per image"}
    row = {
        "model": model, "images": len(images), "mean_bytes": float(np.mean(sizes)),
        "bits_per_dim": 8 * float(np.mean(sizes)) / dims, "max_bytes": int(max(sizes)), "min_bytes": int(min(sizes)),
        "decoded": min(args.decode, len(images)), "decoded_exact": exact,
        "anchor_steps": {str(s): steps.count(s) for s in sorted(set(steps))},
        "seconds": seconds, "classical_bits_per_dim": classical,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"single_files_{model}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
