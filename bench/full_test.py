"""One file of a model's whole test set: rate beside the integer and float −ELBO, exactness, speed.

    python -m bench.full_test vlae-mnist-large-int8   # MNIST test (10,000); rgb: the 20 CIFAR-10 images

Encodes in this process (timed), decodes in a fresh process (timed, compared pixel
for pixel), and reads the integer and float −ELBO from ``models/NAME/scores.json``
(``python -m training.export NAME --measure``). Writes
``bench/results/full_test_NAME.json`` with its stamp.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import bbcodec
from bench.lossless import decode_in_fresh_process
from bench.stamp import stamp
from training.export import MODELS, test_images

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    args = parser.parse_args()
    recipe = json.loads((MODELS / args.model / "recipe.json").read_text())
    chw, label = test_images(recipe["dataset"])
    images = [img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0) for img in chw[: args.limit]]
    bbcodec.compress(images[:2], model=args.model)  # load the model and compile the kernels: not timed
    t = time.perf_counter()
    data = bbcodec.compress(images, model=args.model)
    encode_s = time.perf_counter() - t
    decoded = decode_in_fresh_process(data, images)
    info = bbcodec.inspect(data)
    dims = sum(img.size for img in images)
    scores_path = MODELS / args.model / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
    row = {
        "model": args.model, "test_set": label, "images": len(images), "file_bytes": len(data),
        "file_bpd": 8 * len(data) / dims, "net_bpd": (8 * info.payload_bytes - info.initial_bits) / dims,
        "integer_neg_elbo_bpd": scores.get("integer_neg_elbo_bpd") if scores.get("images") == len(images) else None,
        "float_neg_elbo_bpd": scores.get("float_neg_elbo_bpd") if scores.get("images") == len(images) else None,
        "encode_img_per_s": len(images) / encode_s, "decode_img_per_s": len(images) / decoded["seconds"],
        "decode_fresh_process_bit_exact": bool(decoded["bit_exact"]), "decode_peak_rss_mb": decoded["peak_rss_mb"],
        "stamp": stamp(),
    }
    if row["float_neg_elbo_bpd"]:
        row["file_over_float_elbo_pct"] = 100 * (row["file_bpd"] / row["float_neg_elbo_bpd"] - 1)
    out = ROOT / "bench" / "results" / f"full_test_{args.model}.json"
    out.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
