"""One benchmark row: a shipped model coding one dataset losslessly, beside its bounds."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import bbcodec
from bbcodec.api import padded_chw
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.zoo import load_float_model
from bbcodec.nn.objective import LN2, elbo_terms, iwae_bound
from bench.datasets import BenchSet

ROOT = Path(__file__).resolve().parents[1]
SINGLES_DECODED = 200  # one-image files also decoded (in process) and compared

# Decoding runs in a fresh process from the file on disk: the honest test of
# determinism, and a clean peak-memory figure for the decoder alone.
DECODE_SCRIPT = """
import json, resource, sys, time, numpy as np, bbcodec
data = open(sys.argv[1], 'rb').read()
expected = np.load(sys.argv[2], allow_pickle=False)
t = time.perf_counter()
images = bbcodec.decompress(data)
elapsed = time.perf_counter() - t
ok = len(images) == len(expected) and all(np.array_equal(a, b) for a, b in zip(images, expected))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork.
hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "bit_exact": ok, "peak_rss_mb": peak}))
"""


@torch.no_grad()
def model_bounds(model: torch.nn.Module, x: torch.Tensor, iwae_k: int, iwae_n: int,
                 integer: torch.nn.Module | None = None) -> dict:
    """The float model's −ELBO on all images and −L_k (Burda et al.) on the first ``iwae_n``,
    and the integer coding form's own −ELBO (what the coder pays), in bits/dim."""
    torch.manual_seed(0)
    dims = x[0].numel()

    def neg_elbo_bits(batch: torch.Tensor) -> float:
        return sum(elbo_terms(model, batch[i : i + 500]).negative_elbo().sum().item()
                   for i in range(0, len(batch), 500)) / LN2

    out = {"neg_elbo_bpd": neg_elbo_bits(x) / len(x) / dims}
    if integer is not None:
        bits = sum(negative_elbo_bits(integer, x[i : i + 100].numpy(), 8).sum() for i in range(0, len(x), 100))
        out["integer_neg_elbo_bpd"] = float(bits) / len(x) / dims
    if iwae_k > 1 and iwae_n > 0:
        sub = x[:iwae_n]
        lk = torch.cat([iwae_bound(model, sub[i : i + 4], iwae_k, chunk=min(iwae_k, 256)) for i in range(0, len(sub), 4)])
        out.update({"iwae_k": iwae_k, "iwae_images": len(sub), "iwae_bpd": lk.mean().item() / dims / LN2,
                    "neg_elbo_bpd_iwae_subset": neg_elbo_bits(sub) / len(sub) / dims})
    return out


def decode_in_fresh_process(data: bytes, expected: list[np.ndarray]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bbc, npy = Path(tmp) / "set.bbc", Path(tmp) / "expected.npy"
        bbc.write_bytes(data)
        np.save(npy, np.stack(expected))
        res = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(bbc), str(npy)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def lossless_row(model_name: str, data: BenchSet, singles: int, iwae_k: int, iwae_n: int) -> dict:
    """Every figure of one (model, dataset) pair; see ``python -m bench --help``."""
    integer, info = bbcodec.load_model(model_name)
    model = load_float_model(model_name)
    images = data.images
    dims = data.dims
    row: dict = {"dataset": data.title, "dataset_key": data.key, "model": model_name, "kind": "bbcodec lossless"}
    if len({img.shape for img in images}) == 1:
        x = torch.from_numpy(np.stack([padded_chw(img, info.downsampling) for img in images]))
        row.update(model_bounds(model, x, iwae_k, iwae_n, integer))
        if x[0].numel() != images[0].size:
            row["bounds_note"] = "bounds are per padded dimension"
    t = time.perf_counter()
    blob = bbcodec.compress(images, model=model_name)
    encode_s = time.perf_counter() - t
    fi = bbcodec.inspect(blob)
    decoded = decode_in_fresh_process(blob, images)
    single_sizes, single_exact, t = [], 0, time.perf_counter()
    for i, img in enumerate(images[:singles]):
        one = bbcodec.compress([img], model=model_name)
        single_sizes.append(len(one))
        if i < SINGLES_DECODED:  # decoding every one-image file would double the run
            single_exact += int(np.array_equal(bbcodec.decompress(one)[0], img))
    single_s = time.perf_counter() - t
    single_dims = sum(img.size for img in images[:singles])
    row.update({
        "file_bpd": 8 * len(blob) / dims,
        "net_bpd": (8 * fi.payload_bytes - fi.initial_bits) / dims,
        "single_image_bpd": 8 * sum(single_sizes) / single_dims if single_sizes else None,
        "single_image_bytes": float(np.mean(single_sizes)) if single_sizes else None,
        "single_images": len(single_sizes),
        "single_images_decoded_exact": f"{single_exact}/{min(singles, SINGLES_DECODED, len(images))}",
        "single_image_files_per_s": len(single_sizes) / single_s if single_sizes else None,
        "header_bytes": fi.header_bytes, "initial_bits": fi.initial_bits, "file_bytes": len(blob),
        "images": len(images),
        "encode_img_per_s": len(images) / encode_s,
        "decode_img_per_s": len(images) / decoded["seconds"],
        "decode_fresh_process_bit_exact": bool(decoded["bit_exact"]),
        "decode_peak_rss_mb": decoded["peak_rss_mb"],
        "bench_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    if "neg_elbo_bpd" in row:
        row["overhead_pct"] = 100 * (row["file_bpd"] / row["neg_elbo_bpd"] - 1)
    if data.binary:  # the binarised-MNIST literature reports nats per image
        per_image_dims = images[0].size
        for key in ("neg_elbo_bpd", "iwae_bpd", "file_bpd", "net_bpd", "single_image_bpd"):
            if row.get(key) is not None:
                row[key.replace("_bpd", "_nats")] = row[key] * per_image_dims * LN2
    return row


def importance_row(model_name: str, data: BenchSet, samples: int) -> dict:
    """Importance-weighted bits-back (``--samples K``): the file beside −ELBO and −L_K on
    the same images (both sampled once, seed 0)."""
    _, info = bbcodec.load_model(model_name)
    model = load_float_model(model_name)
    images = data.images
    x = torch.from_numpy(np.stack([padded_chw(img, info.downsampling) for img in images]))
    torch.manual_seed(0)
    with torch.no_grad():
        neg_l_k = sum(iwae_bound(model, x[i : i + 100], samples).sum().item() for i in range(0, len(x), 100))
    t = time.perf_counter()
    blob = bbcodec.compress(images, model=model_name, samples=samples)
    encode_s = time.perf_counter() - t
    fi = bbcodec.inspect(blob)
    decoded = decode_in_fresh_process(blob, images)
    return {
        "dataset": data.title, "dataset_key": data.key, "model": model_name, "kind": "bbcodec importance",
        "samples": samples, "images": len(images),
        "neg_elbo_bpd": model_bounds(model, x, 1, 0)["neg_elbo_bpd"],
        "iwae_all_bpd": neg_l_k / LN2 / data.dims,
        "file_bpd": 8 * len(blob) / data.dims,
        "net_bpd": (8 * fi.payload_bytes - fi.initial_bits) / data.dims,
        "initial_bits": fi.initial_bits,
        "plain_warm_up_groups": fi.plain_groups,
        "encode_img_per_s": len(images) / encode_s,
        "decode_img_per_s": len(images) / decoded["seconds"],
        "decode_fresh_process_bit_exact": bool(decoded["bit_exact"]),
    }
