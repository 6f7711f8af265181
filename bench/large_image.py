"""One large image, end to end: encode, decode in a fresh process, compare every pixel,
and report time, peak memory and rate beside PNG, WebP and JPEG-XL.

    python -m bench.large_image photo.jpg [--model rgb] [--out bench/results]

Large images are coded as tiles chained on one bits-back stack (bbcodec.tiling:
256x256, or 32x32 for models that decode pixel by pixel, like `rgb`), so memory is
bounded by one group of tiles, whatever the image.
Peak memory is VmHWM of each process (the encoder here, the decoder in a fresh one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

import bbcodec
from bbcodec.images import read_image
from bench.classical import classical_rows
from bench.lossless import decode_in_fresh_process
from bench.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]
    return int(hwm[0].split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.large_image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("--model", default=None, help="default: the shipped model for the image's mode")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    # taken before the results file is written (a written file would be a change); the image by
    # its name and sha256, not by where it lay on the machine that ran
    run_stamp = stamp(" ".join(["python -m bench.large_image", args.image.name,
                                *(["--model", args.model] if args.model else [])]))
    image = read_image(str(args.image))
    done = {"n": 0}
    t = time.perf_counter()

    def tick(n: int) -> None:
        done["n"] += n

    data = bbcodec.compress([image], model=args.model, progress=tick)
    encode_s = time.perf_counter() - t
    encode_peak = peak_rss_mb()
    info = bbcodec.inspect(data)
    decoded = decode_in_fresh_process(data, [image])
    classical = {r["codec"]: r["bits_per_dim"] for r in classical_rows([image]) if r["note"] == "one file per image"}
    row = {
        "image": args.image.name, "height": image.shape[0], "width": image.shape[1],
        "channels": 1 if image.ndim == 2 else image.shape[2], "model": info.model,
        "bits_per_dim": info.bits_per_dim, "file_bytes": info.total_bytes, "coding_units": info.coding_units,
        "tile": info.tile, "encode_seconds": encode_s, "encode_peak_rss_mb": encode_peak,
        "decode_seconds": decoded["seconds"], "decode_peak_rss_mb": decoded["peak_rss_mb"],
        "bit_exact": bool(decoded["bit_exact"]), "classical_bits_per_dim": classical,
        "image_sha256": hashlib.sha256(args.image.read_bytes()).hexdigest(), "stamp": run_stamp,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"large_image_{args.image.stem}.json"
    path.write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))
    sys.exit(0 if row["bit_exact"] else 1)


if __name__ == "__main__":
    main()
