"""What the portable kernels cost: coding speed with torch's kernels pinned to AVX2
(how bbcodec codes, :mod:`bbcodec.numerics`) against the machine's native kernels
(AVX-512 where the CPU has it), side by side in one run.

    python -m bench.kernel_speed --model vlae-mnist-wide --images 2000 --repeats 2 --out bench/results/kernel_speed.json

Each measurement is a fresh Python process (the kernel choice is fixed per process
at torch's first kernel); the two kinds alternate, so a noisy neighbour hits both.
The native runs bypass the pin inside their own process only: their files are for
timing, never kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.runs import run_meta

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, sys, time
from bbcodec import numerics
if sys.argv[1] == "native":  # timing only: code with whatever kernels the CPU offers
    numerics.pin = lambda: None
    numerics.current_profile = lambda: numerics.PORTABLE_PROFILE
import torch, bbcodec
from bbcodec.data import load_mnist
x = load_mnist("test")[0][: int(sys.argv[3])]
images = [img.reshape(28, 28) for img in x]
t = time.perf_counter(); data = bbcodec.compress(images, model=sys.argv[2]); enc = time.perf_counter() - t
t = time.perf_counter(); out = bbcodec.decompress(data); dec = time.perf_counter() - t
exact = all((a == b).all() for a, b in zip(out, images))
print(json.dumps({"kernels": sys.argv[1], "capability": torch.backends.cpu.get_cpu_capability(),
                  "encode_img_per_s": len(images) / enc, "decode_img_per_s": len(images) / dec,
                  "bytes": len(data), "exact": bool(exact)}))
"""


def measure(kind: str, model: str, images: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", _MEASURE, kind, model, str(images)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vlae-mnist-wide")
    parser.add_argument("--images", type=int, default=2000, help="MNIST test digits, one file")
    parser.add_argument("--repeats", type=int, default=2, help="alternating pinned/native pairs")
    parser.add_argument("--out", type=Path, help="write the rows and their means as JSON")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        for kind in ("pinned", "native"):
            rows.append(measure(kind, args.model, args.images))
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for kind in ("pinned", "native"):
        mine = [r for r in rows if r["kernels"] == kind]
        for key in ("encode_img_per_s", "decode_img_per_s"):
            summary[f"{kind}_{key}"] = sum(r[key] for r in mine) / len(mine)
    for key in ("encode_img_per_s", "decode_img_per_s"):
        summary[f"pinned_over_native_{key.split('_')[0]}"] = summary[f"pinned_{key}"] / summary[f"native_{key}"]
    print(json.dumps(summary, indent=1))
    if args.out:
        document = {"meta": run_meta(), "model": args.model, "images": args.images, "rows": rows, "summary": summary}
        args.out.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
