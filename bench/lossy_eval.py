"""Lossy rows: bits per image against fidelity, for the latent-only mode and for
JPEG / WebP at their lowest settings, judged by the same classifier.

    python -m bench.lossy_eval [--model vlae-mnist-wide-q8] [--steps 1] [--draws 1 16] [--images 10000] [--validation]

writes ``bench/results/lossy_<model>.json`` (rows + meta, mergeable into the full run) and an image grid (originals on top).
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

import bbcodec
from bbcodec import zoo
from bench import classifier
from bench.datasets import BenchSet


def psnr(original: np.ndarray, other: np.ndarray) -> float:
    """Mean over images of the per-image PSNR in dB (identical images count as 100 dB)."""
    diff = original.astype(np.float64) - other.astype(np.float64)
    mse = (diff**2).reshape(len(original), -1).mean(axis=1)
    return float(np.mean(np.where(mse == 0, 100.0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))))


def _classical_lossy(img: np.ndarray, fmt: str) -> tuple[int, np.ndarray]:
    buf = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(img).save(buf, format="JPEG", quality=1, optimize=True)
    else:
        Image.fromarray(img).save(buf, format="WEBP", quality=0, method=6)
    size = buf.tell()
    buf.seek(0)
    with Image.open(buf) as decoded:
        return size, np.asarray(decoded.convert("L"))


def _fidelity(row: dict, originals: np.ndarray, recon: np.ndarray, judge, labels_orig: np.ndarray,
              labels_true: np.ndarray | None) -> dict:
    labels_recon = classifier.predict(judge, recon)
    row.update({"psnr_db": psnr(originals, recon), "label_agreement": float((labels_recon == labels_orig).mean())})
    if labels_true is not None:
        row["recon_accuracy"] = float((labels_recon == labels_true).mean())
    return row


def lossy_rows(model_name: str, data: BenchSet, steps: list[float],
               draws: list[int] = (1,)) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One row per (lossy step, draws) of ``model_name`` and per classical codec; plus
    reconstructions for a grid."""
    judge = classifier.load()
    originals = np.stack(data.images)
    n = len(originals)
    labels_orig = classifier.predict(judge, originals)
    base = {"dataset": data.title, "dataset_key": data.key, "kind": "lossy", "images": n,
            "classifier_accuracy_on_originals": float((labels_orig == data.labels).mean()) if data.labels is not None else None}
    rows, grids = [], {"original": originals[:12]}
    for step, s in ((step, s) for step in steps for s in draws):
        t = time.perf_counter()
        blob = bbcodec.compress(list(originals), model=model_name, lossy_step=step, lossy_draws=s)
        encode_s = time.perf_counter() - t
        t = time.perf_counter()
        recon = np.stack(bbcodec.decompress(blob))
        decode_s = time.perf_counter() - t
        fi = bbcodec.inspect(blob)
        single = len(bbcodec.compress([originals[0]], model=model_name, lossy_step=step, lossy_draws=s))
        name = f"bbcodec {model_name} --lossy-step {step:g}" + (f" --lossy-draws {s}" if s > 1 else "")
        row = {**base, "codec": name, "model": model_name, "step": step, "draws": s,
               "bits_per_image": 8 * len(blob) / n, "latent_bits_per_image": 8 * fi.payload_bytes / n,
               "single_image_file_bits": 8 * single,
               "encode_img_per_s": n / encode_s, "decode_img_per_s": n / decode_s}
        rows.append(_fidelity(row, originals, recon, judge, labels_orig, data.labels))
        label = f"bbcodec step {step:g}" + (f", mean of {s} draws" if s > 1 else "")
        grids[f"{label} ({row['bits_per_image']:.0f} bits)"] = recon[:12]
    for fmt, name in (("JPEG", "JPEG quality 1"), ("WEBP", "WebP quality 0")):
        sizes, recon = zip(*(_classical_lossy(img, fmt) for img in originals))
        row = {**base, "codec": name, "model": None, "bits_per_image": 8 * float(np.mean(sizes)),
               "single_image_file_bits": 8 * sizes[0]}
        rows.append(_fidelity(row, originals, np.stack(recon), judge, labels_orig, data.labels))
        grids[f"{name} ({row['bits_per_image']:.0f} bits)"] = np.stack(recon)[:12]
    return rows, grids


def main() -> None:
    import argparse
    import json
    from pathlib import Path

    from bench import datasets
    from bench.plots import image_grid
    from bench.runs import run_meta

    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(prog="python -m bench.lossy_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=zoo.LOSSY_PREFERENCE[0], help="default: the lossy default")
    parser.add_argument("--steps", type=float, nargs="+", default=[1.0], help="latent quantisation steps")
    parser.add_argument("--draws", type=int, nargs="+", default=[1, 16], help="draws averaged per pixel")
    parser.add_argument("--images", type=int, default=10_000, help="first N MNIST test digits")
    parser.add_argument("--validation", action="store_true",
                        help="the validation digits (MNIST training digits 59,000+) instead of test digits: "
                             "for choosing a model or setting")
    parser.add_argument("--out", type=Path, default=root / "bench" / "results")
    args = parser.parse_args()
    data = datasets.mnist_validation(args.images) if args.validation else datasets.mnist(args.images)
    rows, grid = lossy_rows(args.model, data, args.steps, args.draws)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": run_meta(), "rows": rows, "reported": []}  # mergeable: python -m bench --render-only --merge
    stem = f"lossy_{args.model}" + ("_validation" if args.validation else "")
    (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=1))
    if not args.validation:
        image_grid(grid, args.out / f"{stem}_grid.png")
    for r in rows:
        print(f"{r['codec']:50s} {r['bits_per_image']:8.1f} bits  agreement {r['label_agreement']:.4f}  "
              f"PSNR {r['psnr_db']:.2f} dB")


if __name__ == "__main__":
    main()
