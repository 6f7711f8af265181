"""Coding speed while other processes keep cores busy: threads that follow the free
cores (:mod:`bbcodec.threads`) against a fixed thread count, side by side in one run.

    python -m bench.busy_speed                        # 2,000 MNIST test digits, 0 and 1 busy cores
    python -m bench.busy_speed --images 500 --busy 0 1 2 --models vlae-mnist-fast-q8

For each number of busy cores (0: this process alone), that many spinning processes
are started, then every model codes the same digits as one file (library API, as
``bench.speed`` times it), once with ``BBCODEC_FIXED_THREADS=1`` (all threads all the
time, as before the watching) and once following the free cores, alternating, and
every decoded digit is compared with its original. What to read is the ratio within
a row: the machine is the same for both. Results: ``bench/results/busy_speed.json``
with its stamp (command, commit, CPU model).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

import bbcodec
from bbcodec import runtime, threads
from bench.speed import bbcodec_row
from bench.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "busy_speed.json"
MODELS = ("vlae-mnist-fast-q8", "vlae-mnist-large-q8-int8enc")


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def timed(model: str, images: list[np.ndarray], fixed: bool) -> dict:
    """:func:`bench.speed.bbcodec_row`, threads fixed or following the free cores."""
    if fixed:
        os.environ[threads.FIXED_ENV] = "1"
    else:
        os.environ.pop(threads.FIXED_ENV, None)
    row = bbcodec_row(model, images)
    return {"threads": "fixed" if fixed else "following free cores", "encode_img_per_s": row["encode_img_per_s"],
            "decode_img_per_s": row["decode_img_per_s"], "bits_per_dim": row["bits_per_dim"], "exact": row["exact"]}


def measure(models: list[str], images: list[np.ndarray], busy: int, seconds: float) -> list[dict]:
    """Every model both ways with ``busy`` spinning processes running for at most ``seconds``."""
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_spin, args=(seconds,), daemon=True) for _ in range(busy)]
    for hog in hogs:
        hog.start()
    try:
        time.sleep(1.0 if hogs else 0.0)  # the spinning interpreters are up
        rows = []
        for model in models:
            for fixed in (True, False):
                row = {"model": model, "busy_cores": busy, **timed(model, images, fixed)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        return rows
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()


def table(result: dict) -> str:
    lines = [f"**{result['images']} MNIST test digits, one file; other processes spinning on `busy` cores "
             f"of {result['cores']}**", "",
             "| model | busy | threads | encode img/s | decode img/s | exact |", "|---|---:|---|---:|---:|:---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['busy_cores']} | {r['threads']} | {r['encode_img_per_s']:.1f} | "
                     f"{r['decode_img_per_s']:.1f} | {'yes' if r['exact'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="numbers of busy cores to run under")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    run_stamp = stamp()
    runtime.reuse_freed_memory()
    from bbcodec.data import load_mnist

    images = list(load_mnist("test")[0][: args.images])
    for model in args.models:  # load and compile before timing
        bbcodec.decompress(bbcodec.compress(images[:2], model=model))
    rows = []
    for busy in args.busy:
        rows += measure(args.models, images, busy, seconds=600.0)
    result = {"stamp": run_stamp, "images": len(images), "cores": len(os.sched_getaffinity(0)), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
