"""Benchmark: achieved file rates against the models' own bounds, the papers' numbers
and classical codecs, all measured in one run.

    python -m bench --quick                  # a few minutes (CI smoke test)
    python -m bench                          # full: all 10,000 MNIST / binarised MNIST test digits
    python -m bench --publish                # the published run: also every model's files, cards, README
    python -m bench --cifar10 cifar-10-python.tar.gz --folder photos/

\b
Datasets: mnist (8-bit test set), mnist-binary (test set binarised with seed 0),
cifar10-samples (the 20 CIFAR-10 test PNGs of foolbox 3.3.4, always), cifar10
(official tarball, with --cifar10), folder (any images, with --folder).
\b
Metrics (bits/dim = bits / (H x W x C); binarised MNIST also in nats per image):
  neg_elbo_bpd      the model's -ELBO (L1) on the same images: what bits-back should cost
  iwae_bpd          the tighter -L_k bound (k importance samples) on the first iwae_images images
  file_bpd          size of ONE .bbc file holding all images, header and initial bits included
  net_bpd           file_bpd without header and initial bits: the steady-state cost per image
  single_image_bpd  mean size of one-image .bbc files (--singles of them; the first 200
                    also decoded and compared): what a CLI user sees for one image
  importance rows   --samples K: one file coded with K importance samples per image,
                    beside -ELBO and the -L_K bound on all its images (iwae_all_bpd)
  overhead_pct      file_bpd over neg_elbo_bpd, in percent
  encode/decode_img_per_s   throughput; decode runs in a fresh process from the file on disk
  decode_peak_rss_mb        peak memory of that decoding process
  lossy rows: bits_per_image (whole file / images), psnr_db, label_agreement (a classifier
  trained on MNIST train gives the same label to original and reconstruction)
Outputs in <out> (bench/results for a full run, bench/out for --quick): results.json
(schema: bench/README.md), results.md, and PNG plots. The README's results block, the
model cards and `bbcodec models` are generated from one --publish run, never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bbcodec
from bbcodec.api import choose_model
from bbcodec.errors import BBCodecError
from bench import datasets
from bench.classical import classical_rows
from bench.lossless import importance_row, lossless_row
from bench.plots import image_grid, kl_per_layer, lossy_tradeoff, rate_bars
from bench.runs import merge_runs, run_meta, stamp

REPORTED = Path(__file__).resolve().parent / "reported.json"
DATASETS = ("mnist", "mnist-binary", "cifar10-samples", "cifar10", "folder")


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def models_for(data: datasets.BenchSet) -> list[str]:
    """Every shipped model that codes this dataset's images as they are."""
    if data.key.startswith("folder"):
        try:
            return [choose_model(data.images, None).name]
        except BBCodecError as exc:  # e.g. no shipped model codes RGB yet: classical rows only
            data.notes.append(str(exc))
            return []
    channels = 3 if data.images[0].ndim == 3 else 1
    h, w = data.images[0].shape[:2]
    return [m.name for m in bbcodec.list_models() if m.image_channels == channels and m.accepts(h, w)
            and m.pixel_levels == (2 if data.binary else 256)]


def reported_rows(key: str) -> list[dict]:
    if not REPORTED.exists():
        return []
    family = "mnist-binarized" if key.startswith("mnist-binarized") else key  # static and dynamic side by side
    return [r for r in json.loads(REPORTED.read_text())["rows"] if r.get("dataset", "").startswith(family)]


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    wanted = set(args.datasets)
    sets = []
    if "mnist" in wanted:
        sets.append(datasets.mnist(args.images))
    if "mnist-binary" in wanted:
        sets.append(datasets.mnist_binary(args.images))
    if "cifar10-samples" in wanted:
        sets.append(datasets.cifar10_samples())
    if args.cifar10 and "cifar10" in wanted:
        sets.append(datasets.cifar10(args.cifar10, args.images))
    if args.folder and "folder" in wanted:
        sets.extend(datasets.folder(args.folder))
    rows: list[dict] = []
    grids: dict = {}
    for data in sets:
        for name in models_for(data):
            if args.models and name not in args.models:
                continue
            progress(f"{data.title}: {name} lossless ({len(data.images)} images)")
            rows.append(lossless_row(name, data, args.singles, args.iwae_k, args.iwae_images))
            if len({img.shape for img in data.images}) == 1:
                for k in args.samples:
                    subset = data.first(args.samples_images)
                    progress(f"{subset.title}: {name} importance-weighted, K={k}")
                    rows.append({**importance_row(name, subset, k), "dataset": data.title})
        progress(f"{data.title}: classical codecs")
        shown = [img * 255 for img in data.images] if data.binary else data.images
        for row in classical_rows(shown):
            rows.append({"dataset": data.title, "dataset_key": data.key, "model": None, "kind": "classical", **row,
                         **({"note": row["note"] + "; pixels as 0/255"} if data.binary else {})})
        if data.key == "mnist-8bit":
            from bench.lossy_eval import lossy_rows

            for info in bbcodec.list_models():
                if (info.image_size == 28 and info.pixel_levels == 256 and info.image_channels == 1
                        and (not args.models or info.name in args.models) and args.lossy_images):
                    progress(f"{data.title}: {info.name} lossy, steps {args.lossy_steps}")
                    subset = data.first(args.lossy_images)
                    lossy, grid = lossy_rows(info.name, subset, args.lossy_steps, args.lossy_draws)
                    rows.extend(lossy)
                    grids[info.name] = grid
    return rows, grids


def fmt(v, p: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if p == 0 and abs(v) < 10:  # slow rates (e.g. pixel-by-pixel RGB) need their decimals
        return f"{v:.2g}"
    return f"{v:.{p}f}"


def markdown(rows: list[dict], reported: list[dict]) -> str:
    out = []
    for title in dict.fromkeys(r["dataset"] for r in rows if r["kind"] != "lossy"):
        group = [r for r in rows if r["dataset"] == title]
        key = group[0]["dataset_key"]
        binary = key.startswith("mnist-binarized")
        out += [f"### {title}", "", "| codec / bound | bits/dim | " + ("nats/image | " if binary else "")
                + "−ELBO | IWAE | net | single image | enc img/s | dec img/s | exact |",
                "|---|---|---|---|---|---|---|---|---|" + ("---|" if binary else "")]
        for r in group:
            if r["kind"] == "bbcodec lossless":
                iwae = (f"{fmt(r.get('iwae_bpd'))} (k={r['iwae_k']}, first {r['iwae_images']}; their −ELBO "
                        f"{fmt(r['neg_elbo_bpd_iwae_subset'])})") if "iwae_bpd" in r else "—"
                nats = (f"{fmt(r.get('file_nats'), 2)} (−ELBO {fmt(r.get('neg_elbo_nats'), 2)}) | " if binary else "")
                out.append(f"| **bbcodec `{r['model']}`** | **{fmt(r['file_bpd'])}** | {nats}{fmt(r.get('neg_elbo_bpd'))} | "
                           f"{iwae} | {fmt(r['net_bpd'])} | {fmt(r['single_image_bpd'])} | "
                           f"{fmt(r['encode_img_per_s'], 0)} | {fmt(r['decode_img_per_s'], 0)} | "
                           f"{'yes' if r['decode_fresh_process_bit_exact'] else '**NO**'} |")
            elif r["kind"] == "bbcodec importance":
                first = f", first {r['images']}" if r["images"] < group[0].get("images", r["images"]) else ""
                out.append(f"| **bbcodec `{r['model']}` --samples {r['samples']}{first}** | **{fmt(r['file_bpd'])}** | "
                           + ("| " if binary else "")
                           + f"{fmt(r['neg_elbo_bpd'])} | {fmt(r['iwae_all_bpd'])} (k={r['samples']}, same images) | "
                           f"{fmt(r['net_bpd'])} | | {fmt(r['encode_img_per_s'], 0)} | {fmt(r['decode_img_per_s'], 0)} | "
                           f"{'yes' if r['decode_fresh_process_bit_exact'] else '**NO**'} |")
            elif r["kind"] == "classical":
                out.append(f"| {r['codec']} | {fmt(r['bits_per_dim'])} | " + ("| " if binary else "") + "| | | | | | |")
        family = "mnist-binarized" if binary else key
        for r in [x for x in reported if x["dataset"].startswith(family)]:
            value = f"{r['value']:.2f} nats" if r["unit"].startswith("nats") else f"{r['value']:.2f}"
            mark = "" if r.get("verified") else " (unverified)"
            setup = " static binarisation" if r["dataset"].endswith("static") else ""
            label = f"{r['system']} ({r['kind']}, {r.get('bound', '')}{setup}), paper{mark}"
            if r["unit"].startswith("nats"):
                out.append(f"| {label} | | {value} | | | | | | | |" if binary else f"| {label} | {value} | | | | | | | |")
            else:
                out.append(f"| {label} | {value} | " + ("| " if binary else "") + "| | | | | | |")
        out.append("")
    lossy = [r for r in rows if r["kind"] == "lossy"]
    if lossy:
        heading = (f"### Lossy: {lossy[0]['dataset']}, classifier accuracy on originals "
                   f"{fmt(lossy[0].get('classifier_accuracy_on_originals'), 4)}")
        out += [heading, "",
                "| codec | bits/image | label agreement | PSNR dB | one-image file bits | enc img/s | dec img/s |",
                "|---|---|---|---|---|---|---|"]
        for r in lossy:
            out.append(f"| {r['codec']} | {fmt(r['bits_per_image'], 1)} | {fmt(r['label_agreement'], 4)} | "
                       f"{fmt(r['psnr_db'], 2)} | {r['single_image_file_bits']} | {fmt(r.get('encode_img_per_s'), 0)} | "
                       f"{fmt(r.get('decode_img_per_s'), 0)} |")
        out.append("")
    return "\n".join(out)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def render(rows: list[dict], reported: list[dict], out: Path) -> list[Path]:
    plots = []
    for key in dict.fromkeys(r["dataset_key"] for r in rows if r["kind"] != "lossy"):
        group = [r for r in rows if r["dataset_key"] == key and r["kind"] != "lossy"]
        papers = [r for r in reported if r["dataset"] == key and r["unit"] == "bits/dim"]
        path = rate_bars(group, out / f"{slug(key)}_rates.png", papers)
        plots += [path] if path else []
    for info in bbcodec.list_models():
        path = kl_per_layer(list(info.kl_bits_per_layer), info.name, out / f"{slug(info.name)}_kl_per_layer.png",
                            list(info.latent_part_names))
        plots += [path] if path else []
    lossy = [r for r in rows if r["kind"] == "lossy"]
    if lossy:
        path = lossy_tradeoff(lossy, out / "mnist_lossy_tradeoff.png")
        plots += [path] if path else []
    return plots


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke test: 100 images, 2 single-image files, k=16 on 4 images, 100 lossy images, no --samples rows")
    parser.add_argument("--images", type=int, default=10_000, help="test images per dataset in the chained file")
    parser.add_argument("--singles", type=int, default=200,
                        help="images coded one per file for single_image_bpd (all 10,000: python -m bench.single_files)")
    parser.add_argument("--samples", type=int, nargs="*", default=[8],
                        help="importance-weighted bits-back rows with these K (none: skip)")
    parser.add_argument("--samples-images", type=int, default=500,
                        help="first N images of each dataset for the --samples rows (K times the coding work)")
    parser.add_argument("--iwae-k", type=int, default=200, help="importance samples for the IWAE bound")
    parser.add_argument("--iwae-images", type=int, default=20,
                        help="images the IWAE bound is computed on (k float passes each)")
    parser.add_argument("--lossy-images", type=int, default=500,
                        help="first N MNIST test images for the lossy rows (4 draws: 4 times the decoding work)")
    parser.add_argument("--lossy-steps", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0],
                        help="latent quantisation steps of the lossy rows")
    parser.add_argument("--lossy-draws", type=int, nargs="+", default=[1, 4],
                        help="draws averaged per pixel in the lossy rows (each step is run with each)")
    parser.add_argument("--cifar10", type=Path, default=None, help="path to the official cifar-10-python.tar.gz")
    parser.add_argument("--folder", type=Path, default=None, help="also benchmark every image in this folder")
    parser.add_argument("--models", nargs="+", default=None, help="only these shipped models (default: every one)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS,
                        help="which datasets to run (cifar10 needs --cifar10, folder needs --folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: bench/results for a full run, bench/out for --quick)")
    parser.add_argument("--render-only", action="store_true",
                        help="re-render tables and plots (and README with --update-readme) from <out>/results.json")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], metavar="RESULTS_JSON",
                        help="with --render-only: fold these partial runs' rows into <out>/results.json first")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the results section of README.md with this run's tables")
    parser.add_argument("--publish", action="store_true",
                        help="the published run: also rewrite every shipped model's scores, validation and speed "
                             "files (bench/publish.py), the model cards and the README's results block, so that "
                             "every number the package states comes from this run")
    args = parser.parse_args()
    if args.merge and not args.render_only:
        parser.error("--merge folds finished runs into <out>/results.json: use it with --render-only")
    if args.publish and (args.quick or args.render_only or args.models or args.out or args.images < 10_000
                         or set(args.datasets) != set(DATASETS)):
        parser.error("--publish is the full run: every model and dataset, all test images, bench/results")
    if args.quick:
        args.images, args.singles, args.iwae_k, args.iwae_images, args.lossy_images = 100, 2, 16, 4, 100
        args.samples = []  # tests/test_importance.py checks that path; here it would double the run
        args.lossy_steps, args.lossy_draws = [1.0], [1, 4]
    if args.out is None:
        args.out = ROOT / "bench" / ("out" if args.quick else "results")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        saved = json.loads((args.out / "results.json").read_text())
        for path in args.merge:
            saved = merge_runs(saved, json.loads(path.read_text()))
        if args.merge:
            (args.out / "results.json").write_text(json.dumps(saved, indent=1))
        meta, rows, reported = saved["meta"], saved["rows"], saved["reported"]
    else:
        meta = run_meta(args.quick)  # one stamp for everything the run writes, taken before it writes
        if args.publish:  # first: it needs every model's validation data, and fails fast without it
            from bench import publish

            progress("validation sets")
            publish.write_validations([m.name for m in bbcodec.list_models()], publish.run_stamp(meta))
        rows, grids = run(args)
        keys = {r["dataset_key"] for r in rows}
        reported = [r for key in sorted(keys) for r in reported_rows(key)]
        (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows, "reported": reported}, indent=1))
        for name, grid in grids.items():
            image_grid(grid, args.out / f"{slug(name)}_lossy_grid.png")
    render(rows, reported, args.out)
    table = markdown(rows, reported)
    (args.out / "results.md").write_text(table)
    print(table)
    if args.publish:
        publish_model_files(rows, meta)
    if args.update_readme or args.publish:
        update_readme(args.out)


def publish_model_files(rows: list[dict], meta: dict) -> None:
    """Every shipped model's scores and speed files and every card, from this run (its
    validation files were written before its measurements)."""
    from bench import publish

    names = [m.name for m in bbcodec.list_models()]
    publish.write_scores(rows, meta)
    progress("speed: every model beside the classical codecs")
    publish.write_speeds(names, 2000, publish.run_stamp(meta))
    publish.write_cards()


README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def readme_block(out: Path) -> str:
    """The README's results block, from the committed files of one run in ``out``: its stamp,
    the shipped models, each dataset's tables and the speed table."""
    from bench import model_table, speed

    results = json.loads((out / "results.json").read_text())
    parts = [stamp(results["meta"]), "", "### Shipped models", "", model_table.render(results), "",
             markdown(results["rows"], results["reported"])]
    speed_file = out / "speed.json"
    if speed_file.exists():
        parts += ["### Speed: every codec on the same images, one after another in one process", "",
                  speed.table(json.loads(speed_file.read_text()))]
    return "\n".join(parts)


def update_readme(out: Path) -> None:
    """Splice the generated block into README.md: results are never typed by hand."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_block(out).rstrip() + "\n" + text[end:])


if __name__ == "__main__":
    main()
