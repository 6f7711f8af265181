"""Integer coding against the float coder of the previous release, side by side in one run.

    git worktree add /tmp/bbcodec-0.1 <commit of bbcodec 0.1>      # the float coder
    python -m bench.exact_speed --baseline /tmp/bbcodec-0.1 --images 1000 --rounds 2
    python -m bench.exact_speed --baseline /tmp/bbcodec-0.1 --photo photo.png --side 512   # rgb on tiles

Each round codes the same images with each coder in a fresh process, alternating
(float, integer, float, integer, ...), so machine noise hits both alike; encode and
decode are timed inside the process through the public API (model loading and
imports excluded), each coder set up as its command line runs it: the float coder
with its kernel pin, the integer coder keeping freed memory for reuse
(:func:`bbcodec.runtime.reuse_freed_memory`). Results: ``bench/results/exact_speed.json`` with its stamp.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.speed import BINARY_MODELS
from bench.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
WORKER = r"""
import json, sys, time, numpy as np
try:
    from bbcodec import numerics
    numerics.pin()  # the float coder's portable kernels, as its CLI ran
except ImportError:
    pass
try:
    from bbcodec import runtime
    runtime.reuse_freed_memory()  # the integer coder's allocator, as its CLI runs
except ImportError:
    pass
import bbcodec
images = list(np.load(sys.argv[1]))
warm = [np.ascontiguousarray(img[:64, :64]) for img in images[:2]]  # a photo's corner, digits whole
bbcodec.decompress(bbcodec.compress(warm, model=sys.argv[2]))  # load the model, compile both ways: not timed
t = time.perf_counter(); data = bbcodec.compress(images, model=sys.argv[2]); enc = time.perf_counter() - t
t = time.perf_counter(); out = bbcodec.decompress(data); dec = time.perf_counter() - t
ok = all(np.array_equal(a, b) for a, b in zip(out, images))
print(json.dumps({"encode_s": enc, "decode_s": dec, "bytes": len(data), "exact": ok}))
"""
MNIST_MODELS = ("vlae-mnist-large-q8-int8enc", "vlae-mnist-large-int8", "vlae-mnist-wide-int8", "mnist-int8-w7", "biva-mnist",
                "vlae-mnist-binary-int8")
def float_model_of(model: str) -> str:
    """The float model a model is compared with: a model whose integer form is made from
    another folder's float weights (its recipe's ``derived_from``) is compared with the
    float coder of that model (the name it had in bbcodec 0.1)."""
    recipe = ROOT / "models" / model / "recipe.json"
    return json.loads(recipe.read_text()).get("derived_from", model) if recipe.exists() else model


def _images(model: str, n: int) -> np.ndarray:
    from bbcodec.data import BINARIZED_TEST_SEED, binarize, load_cifar10_samples, load_mnist

    if model == "rgb":
        return np.stack(load_cifar10_samples()[0])
    digits = load_mnist("test")[0][:n]
    return binarize(digits, seed=BINARIZED_TEST_SEED) if model in BINARY_MODELS else digits


def _photo_crop(path: Path, side: int) -> np.ndarray:
    """The centre ``side × side`` crop of an RGB photo, as a batch of one (1, side, side, 3)."""
    from PIL import Image

    photo = np.asarray(Image.open(path).convert("RGB"))
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    if top < 0 or left < 0:
        raise SystemExit(f"{path} is smaller than {side}x{side}")
    return np.ascontiguousarray(photo[None, top : top + side, left : left + side])


def _run(tree: Path, npy: Path, model: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("BBCODEC_MODELS_DIR", None)
    out = subprocess.run([sys.executable, "-c", WORKER, str(npy), model], capture_output=True, text=True,
                         check=True, cwd=tree, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the float coder's release")
    parser.add_argument("--images", type=int, default=1000, help="MNIST test digits (rgb: the 20 CIFAR-10 images)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=[*MNIST_MODELS, "rgb"])
    parser.add_argument("--photo", type=Path, default=None,
                        help="instead: the centre crop of this photo, coded as tiles by rgb (one image)")
    parser.add_argument("--side", type=int, default=512, help="side of the --photo crop")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: bench/results/exact_speed.json (--photo: photo_exact_speed.json)")
    args = parser.parse_args()
    if args.out is None:
        args.out = ROOT / "bench" / "results" / ("photo_exact_speed.json" if args.photo else "exact_speed.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in (["rgb"] if args.photo else args.models):
            images = _photo_crop(args.photo, args.side) if args.photo else _images(model, args.images)
            npy = Path(tmp) / f"{model}.npy"
            np.save(npy, images)
            runs: dict[str, list[dict]] = {"float": [], "integer": []}
            for _ in range(args.rounds):
                runs["float"].append(_run(args.baseline, npy, float_model_of(model)))
                runs["integer"].append(_run(ROOT, npy, model))
            row = {"model": model, "float_model": float_model_of(model), "images": len(images)}
            if args.photo:
                row["photo"] = {"file": args.photo.name, "crop": f"centre {args.side}x{args.side}"}
            for coder, results in runs.items():
                row[coder] = {
                    "encode_img_per_s": len(images) / min(r["encode_s"] for r in results),
                    "decode_img_per_s": len(images) / min(r["decode_s"] for r in results),
                    "file_bpd": 8 * results[0]["bytes"] / images.size,
                    "exact": all(r["exact"] for r in results),
                }
            row["encode_ratio"] = row["integer"]["encode_img_per_s"] / row["float"]["encode_img_per_s"]
            row["decode_ratio"] = row["integer"]["decode_img_per_s"] / row["float"]["decode_img_per_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    command = " ".join("BASELINE" if a == str(args.baseline) else (Path(a).name if args.photo and a == str(args.photo)
                       else a) for a in ["python", *sys.orig_argv[1:]])
    baseline = git_commit_of(args.baseline)
    result = {"stamp": stamp(command), "baseline_commit": baseline,
              "baseline": f"BASELINE: a checkout (git worktree) of bbcodec 0.1, commit {baseline}", "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def git_commit_of(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
