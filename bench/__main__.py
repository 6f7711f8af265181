"""Benchmark: achieved file rates against the model's own bounds and classical codecs.

    python -m bench --quick          # < 2 minutes: 500 MNIST test digits
    python -m bench                  # all 10,000 MNIST test digits

\b
Metrics (bits/dim = bits / (H x W x C)):
  neg_elbo_bpd      the model's -ELBO on the same images (what bits-back should cost)
  iwae_bpd          the tighter -L_k bound (k importance samples, on a subset)
  file_bpd          size of ONE .bbc file holding all images, header and initial bits included
  net_bpd           file_bpd without header and initial bits: the steady-state cost per image
  single_image_bpd  mean size of one-image .bbc files: what a CLI user sees for one image
  overhead_pct      file_bpd over neg_elbo_bpd, in percent
  encode/decode_img_per_s   throughput; decode runs in a fresh process from the file on disk
  peak_rss_mb       peak resident memory of the benchmark process
Results: <out>/results.json (one record per row), <out>/results.md and
<out>/mnist_rates.png (bar chart); <out> is bench/results (committed) or bench/out.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bbcodec  # noqa: E402
from bbcodec.data import load_mnist  # noqa: E402
from bbcodec.nn.objective import LN2, elbo_terms, iwae_bound  # noqa: E402
from bench.classical import classical_rows  # noqa: E402
from bench.plots import kl_per_layer, rate_bars  # noqa: E402

DECODE_SCRIPT = """
import sys, time, numpy as np, bbcodec
data = open(sys.argv[1], 'rb').read()
expected = np.load(sys.argv[2])
t = time.perf_counter()
images = bbcodec.decompress(data)
elapsed = time.perf_counter() - t
ok = len(images) == len(expected) and all(np.array_equal(a, b) for a, b in zip(images, expected))
print(elapsed, int(ok))
"""


@torch.no_grad()
def model_bounds(model: torch.nn.Module, images: np.ndarray, iwae_k: int, iwae_n: int) -> dict:
    x = torch.from_numpy(images[:, None].copy())
    torch.manual_seed(0)
    total = sum(elbo_terms(model, x[i : i + 500]).negative_elbo().sum().item() for i in range(0, len(x), 500))
    dims = images[0].size
    out = {"neg_elbo_bpd": total / len(x) / dims / LN2}
    if iwae_k > 1 and iwae_n > 0:
        sub = x[:iwae_n]
        lk = torch.cat([iwae_bound(model, sub[i : i + 4], iwae_k, chunk=min(iwae_k, 256)) for i in range(0, len(sub), 4)])
        sub_elbo = sum(elbo_terms(model, sub[i : i + 500]).negative_elbo().sum().item() for i in range(0, len(sub), 500))
        out.update({"iwae_k": iwae_k, "iwae_images": iwae_n, "iwae_bpd": lk.mean().item() / dims / LN2,
                    "neg_elbo_bpd_iwae_subset": sub_elbo / iwae_n / dims / LN2})
    return out


def bench_mnist(n: int, singles: int, iwae_k: int, iwae_n: int, out_dir: Path) -> list[dict]:
    images, _ = load_mnist("test")
    images = images[:n]
    dims = int(images.size)
    model, info = bbcodec.load_model("mnist")
    rows: list[dict] = []
    bounds = model_bounds(model, images, iwae_k, iwae_n)
    t = time.perf_counter()
    data = bbcodec.compress(list(images), model="mnist")
    encode_s = time.perf_counter() - t
    fi = bbcodec.inspect(data)
    with tempfile.TemporaryDirectory() as tmp:
        bbc, npy = Path(tmp) / "mnist.bbc", Path(tmp) / "expected.npy"
        bbc.write_bytes(data)
        np.save(npy, images)
        res = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(bbc), str(npy)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        decode_s, ok = res.stdout.split()
    single_sizes = [len(bbcodec.compress([img], model="mnist")) for img in images[:singles]]
    file_bpd = 8 * len(data) / dims
    rows.append({
        "dataset": f"MNIST test ({n})", "model": "mnist", "kind": "bbcodec lossless",
        **bounds,
        "file_bpd": file_bpd,
        "net_bpd": (8 * fi.payload_bytes - fi.initial_bits) / dims,
        "single_image_bpd": 8 * float(np.mean(single_sizes)) / images[0].size if single_sizes else None,
        "single_image_bytes": float(np.mean(single_sizes)) if single_sizes else None,
        "single_images": singles,
        "overhead_pct": 100 * (file_bpd / bounds["neg_elbo_bpd"] - 1),
        "header_bytes": fi.header_bytes, "initial_bits": fi.initial_bits, "file_bytes": len(data),
        "encode_img_per_s": n / encode_s, "decode_img_per_s": n / float(decode_s),
        "decode_fresh_process_bit_exact": bool(int(ok)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    for row in classical_rows(list(images)):
        rows.append({"dataset": f"MNIST test ({n})", "model": None, "kind": "classical", **row})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| dataset | codec | bits/dim | −ELBO | IWAE | net | single image | enc img/s | dec img/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, p=3: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{p}f}"  # noqa: E731
    for r in rows:
        if r["kind"] == "classical":
            lines.append(f"| {r['dataset']} | {r['codec']} | {fmt(r['bits_per_dim'])} | | | | | | |")
        else:
            iwae = (f"{fmt(r.get('iwae_bpd'))} (k={r['iwae_k']}, first {r['iwae_images']} images, "
                    f"whose −ELBO is {fmt(r['neg_elbo_bpd_iwae_subset'])})") if "iwae_bpd" in r else "—"
            lines.append(
                f"| {r['dataset']} | **bbcodec `{r['model']}`** | **{fmt(r['file_bpd'])}** | {fmt(r['neg_elbo_bpd'])} | "
                f"{iwae} | {fmt(r['net_bpd'])} | {fmt(r['single_image_bpd'])} | "
                f"{fmt(r['encode_img_per_s'], 0)} | {fmt(r['decode_img_per_s'], 0)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 images, 20 single-image files, k=16 on 20 images")
    parser.add_argument("--images", type=int, default=10_000, help="MNIST test images in the chained file")
    parser.add_argument("--singles", type=int, default=200, help="images coded one per file for single_image_bpd")
    parser.add_argument("--iwae-k", type=int, default=1000, help="importance samples for the IWAE bound")
    parser.add_argument("--iwae-images", type=int, default=100, help="images the IWAE bound is computed on")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: bench/results for a full run, bench/out for --quick)")
    parser.add_argument("--render-only", action="store_true",
                        help="re-render table, plot (and README with --update-readme) from <out>/results.json")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the results table in README.md with this run's table")
    args = parser.parse_args()
    if args.quick:
        args.images, args.singles, args.iwae_k, args.iwae_images = 500, 20, 16, 20
    if args.out is None:
        args.out = ROOT / "bench" / ("out" if args.quick else "results")
    if args.render_only:
        saved = json.loads((args.out / "results.json").read_text())
        meta, rows = saved["meta"], saved["rows"]
    else:
        rows = bench_mnist(args.images, args.singles, args.iwae_k, args.iwae_images, args.out)
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    rate_bars(rows, args.out / "mnist_rates.png")
    kl_per_layer(bbcodec.load_model("mnist")[1].kl_bits_per_layer, "mnist", args.out / "mnist_kl_per_layer.png")
    table = markdown(rows)
    (args.out / "results.md").write_text(table)
    print(table)
    if args.update_readme:
        update_readme(table, meta)


README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def update_readme(table: str, meta: dict) -> None:
    """Splice the generated table into README.md: results are never typed by hand."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    stamp = f"\n_Generated by `python -m bench` on {meta['time']} (torch {meta['torch']}, {meta['threads']} threads)._\n\n"
    readme.write_text(text[:start] + stamp + table + text[end:])


if __name__ == "__main__":
    main()
