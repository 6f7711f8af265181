"""One large image, end to end as a user runs it: ``bbcodec encode`` and ``bbcodec decode``,
each a fresh process, every pixel compared, time and peak memory each way, rate beside
PNG, WebP and JPEG-XL.

    python -m bench.large_image photo.jpg [--model rgb] [--out bench/results]

Large images are coded as tiles chained on one bits-back stack (bbcodec.tiling:
256x256, or 32x32 for models that decode pixel by pixel, like `rgb`), so memory is
bounded by one group of tiles, whatever the image.
Times run from the command's start to its exit (imports and model loading included);
peak memory is the command's VmHWM, read as it exits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bbcodec
from bbcodec.images import read_image
from bench.classical import classical_rows
from bench.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
# the command line's entry point, reporting the process's VmHWM to the file argv[1] at exit
COMMAND = """
import atexit, runpy, sys
report = sys.argv[1]
def peak():
    hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')]
    open(report, 'w').write(hwm[0].split()[1])
atexit.register(peak)
sys.argv = ['bbcodec', *sys.argv[2:]]
runpy.run_module('bbcodec', run_name='__main__', alter_sys=True)
"""


def run_command(args: list[str], report: Path) -> tuple[float, float]:
    """(seconds, peak MB) of ``bbcodec ARGS`` in a fresh process."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", COMMAND, str(report), *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, int(report.read_text()) / 1024


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
    with tempfile.TemporaryDirectory() as tmp:
        bbc, out, report = Path(tmp) / "image.bbc", Path(tmp) / "out", Path(tmp) / "peak"
        model = ["--model", args.model] if args.model else []
        encode_s, encode_peak = run_command(["encode", str(args.image.resolve()), "-o", str(bbc), *model], report)
        out.mkdir()
        decode_s, decode_peak = run_command(["decode", str(bbc), "-o", str(out)], report)
        info = bbcodec.inspect(bbc.read_bytes())
        decoded = [read_image(str(p)) for p in out.iterdir()]
    bit_exact = len(decoded) == 1 and np.array_equal(decoded[0], image)
    classical = {r["codec"]: r["bits_per_dim"] for r in classical_rows([image]) if r["note"] == "one file per image"}
    row = {
        "image": args.image.name, "height": image.shape[0], "width": image.shape[1],
        "channels": 1 if image.ndim == 2 else image.shape[2], "model": info.model,
        "bits_per_dim": info.bits_per_dim, "file_bytes": info.total_bytes, "coding_units": info.coding_units,
        "tile": info.tile, "measured": "bbcodec encode / decode, each a fresh process, start to exit",
        "encode_seconds": encode_s, "encode_peak_rss_mb": encode_peak,
        "decode_seconds": decode_s, "decode_peak_rss_mb": decode_peak, "bit_exact": bool(bit_exact),
        "classical_bits_per_dim": classical,
        "image_sha256": hashlib.sha256(args.image.read_bytes()).hexdigest(), "stamp": run_stamp,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"large_image_{args.image.stem}.json"
    path.write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))
    sys.exit(0 if row["bit_exact"] else 1)


if __name__ == "__main__":
    main()
