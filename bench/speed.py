"""Coding speed of every shipped model beside PNG, WebP and JPEG-XL, in one run.

    python -m bench.speed                      # 2,000 MNIST test digits, every model
    python -m bench.speed --images 500 --models vlae-mnist-large-int8
    python -m bench.speed --render-only        # speed.md again from speed.json, models that code only
    python -m bench.speed --models vlae-mnist-large-int8 --out bench/results/speed_trial.json   # a trial

Each dataset is coded by every codec on the same images in the same process, one
after another, so the ratios between them are what to read (a busy machine slows all
alike). bbcodec codes the images as one file through the library API (model loading
and compilation are done before timing); the classical codecs write one file per
image, as they would be used. Every decoded image is compared with its original.
The process keeps freed memory for reuse, as the command line does
(:func:`bbcodec.runtime.reuse_freed_memory`), for every codec alike.
``vlae-mnist-binary-int8`` codes the binarised digits (classical codecs get the same
0/1 images), ``rgb`` the 20 CIFAR-10 test images, and the lossy row times
``--lossy`` with its default model (decode: the mean of the default draws, on a subset).
Results: ``bench/results/speed.json`` with its stamp (command, commit, CPU model).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import bbcodec
from bbcodec import runtime, zoo
from bbcodec.lossy import DEFAULT_DRAWS
from bench.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
MNIST_MODELS = ("vlae-mnist-large-q8-int8enc", "vlae-mnist-fast-q8", "vlae-mnist-large-int8", "vlae-mnist-wide-q8",
                "vlae-mnist-wide-int8", "mnist-int8-w7", "biva-mnist")
BINARY_MODELS = ("vlae-mnist-binary-int8",)
LOSSY_MODEL = zoo.LOSSY_PREFERENCE[0]  # what --lossy codes with by default
PUBLISHED = ROOT / "bench" / "results" / "speed.json"  # the published run's speed results


Decoder = Callable[[bytes, str], np.ndarray]  # (file, PIL mode of the original) -> pixels


def _pil_codec(fmt: str, **options) -> tuple[Callable[[np.ndarray], bytes], Decoder]:
    def encode(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, **options)
        return buf.getvalue()

    # WebP stores grayscale as RGB: decoding converts back to the original's mode
    return encode, lambda data, mode: np.asarray(Image.open(io.BytesIO(data)).convert(mode))


def _jpegxl(effort: int) -> tuple[Callable[[np.ndarray], bytes], Decoder]:
    import imagecodecs

    return ((lambda img: imagecodecs.jpegxl_encode(img, lossless=True, effort=effort)),
            lambda data, mode: imagecodecs.jpegxl_decode(data))


CLASSICAL = {
    "PNG": lambda: _pil_codec("PNG"),
    "WebP lossless": lambda: _pil_codec("WEBP", lossless=True),
    "JPEG-XL lossless e7": lambda: _jpegxl(7),
    "JPEG-XL lossless e9": lambda: _jpegxl(9),
}


def _row(codec: str, images: list[np.ndarray], encode_s: float, decode_s: float, nbytes: int, exact: bool,
         decoded_images: int | None = None) -> dict:
    dims = sum(img.size for img in images)
    return {"codec": codec, "images": len(images), "bits_per_dim": 8 * nbytes / dims,
            "encode_img_per_s": len(images) / encode_s,
            "decode_img_per_s": (decoded_images or len(images)) / decode_s, "exact": exact}


def classical_row(name: str, images: list[np.ndarray]) -> dict:
    encode, decode = CLASSICAL[name]()
    t = time.perf_counter()
    files = [encode(img) for img in images]
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    decoded = [decode(f, "L" if img.ndim == 2 else "RGB") for f, img in zip(files, images)]
    decode_s = time.perf_counter() - t
    exact = all(np.array_equal(a, b) for a, b in zip(decoded, images, strict=True))
    return _row(name, images, encode_s, decode_s, sum(map(len, files)), exact)


def bbcodec_row(model: str, images: list[np.ndarray]) -> dict:
    bbcodec.decompress(bbcodec.compress(images[:2], model=model))  # load the model, compile both ways: not timed
    t = time.perf_counter()
    data = bbcodec.compress(images, model=model)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    decoded = bbcodec.decompress(data)
    decode_s = time.perf_counter() - t
    exact = all(np.array_equal(a, b) for a, b in zip(decoded, images, strict=True))
    return _row(f"bbcodec {model}", images, encode_s, decode_s, len(data), exact)


def lossy_row(images: list[np.ndarray], decoded_images: int) -> dict:
    """--lossy at the default step and draws; decoding (the draws) timed on the first images."""
    bbcodec.compress(images[:2], model=LOSSY_MODEL, lossy_step=1.0)
    t = time.perf_counter()
    data = bbcodec.compress(images, model=LOSSY_MODEL, lossy_step=1.0)
    encode_s = time.perf_counter() - t
    subset = bbcodec.compress(images[:decoded_images], model=LOSSY_MODEL, lossy_step=1.0)
    t = time.perf_counter()
    shown = bbcodec.decompress(subset)
    decode_s = time.perf_counter() - t
    row = _row(f"bbcodec {LOSSY_MODEL} --lossy (mean of {DEFAULT_DRAWS} draws)", images, encode_s, decode_s,
               len(data), len(shown) == decoded_images, decoded_images)
    row["exact"] = None  # lossy: the decoder's own checks passed (it raises otherwise)
    row["decoded_images"] = decoded_images
    return row


def datasets(n: int, models: list[str]) -> list[tuple[str, list[np.ndarray], list[str]]]:
    """(title, images, bbcodec models) for each dataset some requested model codes."""
    from bbcodec.data import BINARIZED_TEST_SEED, binarize, load_cifar10_samples, load_mnist

    out = []
    digits = load_mnist("test")[0][:n]
    mnist_models = [m for m in models if _images_of(m) == "mnist"]
    if mnist_models:
        out.append((f"MNIST test, first {len(digits)}", list(digits), mnist_models))
    binary_models = [m for m in models if _images_of(m) == "binary"]
    if binary_models:
        out.append((f"binarised MNIST test, first {len(digits)}",
                    list(binarize(digits, seed=BINARIZED_TEST_SEED)), binary_models))
    rgb_models = [m for m in models if _images_of(m) == "rgb"]
    if rgb_models:
        out.append(("CIFAR-10 test, first 20", list(load_cifar10_samples()[0]), rgb_models))
    return out


def _images_of(model: str) -> str:
    """Which test images a model is timed on: any model in ``models/`` (a candidate too)."""
    info = zoo.find_model(model)
    if info.image_channels == 3:
        return "rgb"
    return "binary" if info.pixel_levels == 2 else "mnist"


def write_model_speeds(result: dict, models_dir: Path = ROOT / "models") -> list[Path]:
    """Each measured model's row as ``models/NAME/speed.json`` (with the run's stamp):
    what ``bbcodec models`` shows, so the package states only speeds this run measured."""
    written = []
    for block in result["datasets"]:
        for row in block["rows"]:
            name = row["codec"].removeprefix("bbcodec ")
            folder = models_dir / name
            if row["codec"].startswith("bbcodec ") and (folder / "integer.safetensors").exists():
                record = {"images": row["images"], "dataset": block["title"], "bits_per_dim": row["bits_per_dim"],
                          "encode_img_per_s": row["encode_img_per_s"], "decode_img_per_s": row["decode_img_per_s"],
                          "exact": row["exact"], "stamp": result["stamp"]}
                (folder / "speed.json").write_text(json.dumps(record, indent=2) + "\n")
                written.append(folder / "speed.json")
    return written


def codes_today(codec: str) -> bool:
    """Whether a row's codec can be run now: a bbcodec row's model must be installed (a
    results file keeps the rows of integer forms retired since it was measured)."""
    if not codec.startswith("bbcodec "):
        return True
    return codec.split()[1] in {m.name for m in zoo.list_models()}


def table(result: dict) -> str:
    """Markdown: each dataset's rows with speeds and their ratio to JPEG-XL effort 7."""
    lines = []
    for block in result["datasets"]:
        rows = [r for r in block["rows"] if codes_today(r["codec"])]
        ref = next((r for r in rows if r["codec"] == "JPEG-XL lossless e7"), None)
        lines += [f"**{block['title']}**", "",
                  "| codec | bits/dim | encode img/s | decode img/s | encode ÷ JPEG-XL e7 "
                  "| decode ÷ JPEG-XL e7 | exact |",
                  "|---|---:|---:|---:|---:|---:|:---:|"]
        for r in rows:
            ratio = ("—", "—") if ref is None else (f"{r['encode_img_per_s'] / ref['encode_img_per_s']:.3f}",
                                                    f"{r['decode_img_per_s'] / ref['decode_img_per_s']:.3f}")
            exact = "lossy" if r["exact"] is None else ("yes" if r["exact"] else "**NO**")
            lines.append(f"| {r['codec']} | {r['bits_per_dim']:.4f} | {r['encode_img_per_s']:.1f} | "
                         f"{r['decode_img_per_s']:.1f} | {ratio[0]} | {ratio[1]} | {exact} |")
        lines.append("")
    return "\n".join(lines)


def measure(args: argparse.Namespace, run_stamp: dict | None = None) -> dict:
    """One run: every requested model and the classical codecs on each dataset, with its
    stamp (``run_stamp``: that of the run this one is part of)."""
    runtime.reuse_freed_memory()
    result = {"stamp": run_stamp or stamp(), "datasets": []}
    for title, images, models in datasets(args.images, args.models):
        rows = []
        for model in models:
            rows.append(bbcodec_row(model, images))
            print(json.dumps(rows[-1]), flush=True)
        if models == [m for m in models if m in MNIST_MODELS] and not args.no_lossy:
            rows.append(lossy_row(images, min(args.lossy_decoded, len(images))))
            print(json.dumps(rows[-1]), flush=True)
        for name in CLASSICAL:
            rows.append(classical_row(name, images))
            print(json.dumps(rows[-1]), flush=True)
        result["datasets"].append({"title": title, "rows": rows})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="MNIST test digits (rgb: the 20 CIFAR-10 images)")
    parser.add_argument("--models", nargs="+", default=[*MNIST_MODELS, *BINARY_MODELS, "rgb"])
    parser.add_argument("--lossy-decoded", type=int, default=100,
                        help="digits the lossy row decodes (each costs the default draws' work)")
    parser.add_argument("--no-lossy", action="store_true", help="skip the --lossy row")
    parser.add_argument("--out", type=Path, default=PUBLISHED,
                        help="results file; only a run written to the default one also rewrites every model's "
                             "speed.json (the published numbers), any other is a trial of its own")
    parser.add_argument("--render-only", action="store_true", help="rewrite the table from OUT, measuring nothing")
    args = parser.parse_args()
    if args.render_only:
        (args.out.with_suffix(".md")).write_text(table(json.loads(args.out.read_text())))
        return
    result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.out.resolve() == PUBLISHED.resolve():
        write_model_speeds(result)
    (args.out.with_suffix(".md")).write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
