"""One image per file over a whole test set: what a CLI user pays for a single image.

    python -m bench.single_files                       # all 10,000 MNIST test digits, default model
    python -m bench.single_files --model mnist-int8-w7 --images 1000 --decode 200

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
    parser.add_argument("--resume", action="store_true",
                        help="keep the files already listed in the per-file log (the run takes an hour)")
    args = parser.parse_args()
    images, _ = load_mnist("test")
    images = list(images[: args.images])
    model = args.model or bbcodec.api.choose_model(images[:1], None).name
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"single_files_{model}.jsonl"
    done = {}
    if args.resume and log_path.exists():
        done = {r["index"]: r for r in map(json.loads, log_path.read_text().splitlines())}
    elif log_path.exists():
        log_path.unlink()
    t = time.perf_counter()
    with open(log_path, "a") as log:
        for i, img in enumerate(images):
            if i in done:
                continue
            data = bbcodec.compress([img], model=model)
            record = {"index": i, "bytes": len(data), "anchor_step": bbcodec.container.unpack(data)[0].anchor_step}
            if i < args.decode:
                record["exact"] = bool(np.array_equal(bbcodec.decompress(data)[0], img))
            log.write(json.dumps(record) + "\n")
            log.flush()
            done[i] = record
            if (i + 1) % 1000 == 0:
                print(f"{i + 1} files, mean {np.mean([r['bytes'] for r in done.values()]):.2f} bytes", flush=True)
    seconds = time.perf_counter() - t
    records = [done[i] for i in range(len(images))]
    sizes = [r["bytes"] for r in records]
    steps = [r["anchor_step"] for r in records]
    checked = [r["exact"] for r in records if "exact" in r]
    dims = images[0].size
    classical = {r["codec"]: r["bits_per_dim"] for r in classical_rows(images) if r["note"] == "one file per image"}
    row = {
        "model": model, "images": len(images), "mean_bytes": float(np.mean(sizes)),
        "bits_per_dim": 8 * float(np.mean(sizes)) / dims, "max_bytes": int(max(sizes)), "min_bytes": int(min(sizes)),
        "decoded": len(checked), "decoded_exact": int(sum(checked)),
        "anchor_steps": {str(s): steps.count(s) for s in sorted(set(steps))},
        "seconds_this_run": seconds, "classical_bits_per_dim": classical,
    }
    (args.out / f"single_files_{model}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
