"""The whole run: sources -> candidates -> photos -> deduplicated, split, sampled patches."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from photos.config import (
    DEB_SOURCES,
    DEFAULT_AREA_CAP,
    DEFAULT_PATCHES,
    DEFAULT_SEED,
    DOWNSCALE_FACTORS,
    FLAT_MAX_FRACTION,
    FOOLBOX_NAME,
    FOOLBOX_VERSION,
    FOOLBOX_WHEEL_SHA256,
    GRAY_CHROMA,
    GRAY_MAX_COLOURED_FRACTION,
    MIN_COLOURS,
    MIN_DOWNSCALED_SIDE,
    MIN_SHORT_SIDE,
    MODEL_DIR,
    NEAR_DUP_MAX_BITS,
    PATCH,
    SCRIPT_VERSION,
    VAL_FRACTION,
)
from photos.files import atomic_write_bytes, cache_root, log, save_npy_atomic, sha256_bytes, sha256_file
from photos.debian import DebPackage, deb_field, extract_deb, fetch_deb
from photos.candidates import Candidate, deb_candidates, foolbox_wheel, wheel_candidates
from photos.filtering import Photo, assess, choose_factor, downscale, reason_category
from photos.sampling import allocate, assign_groups, cut_patches, split_photos


def fingerprint(config: dict[str, Any], inputs: list[tuple[str, str]]) -> str:
    """Hash of everything the outputs depend on: this package's code, its config and
    the sha256 of every input archive; equal fingerprints mean identical outputs."""
    h = hashlib.sha256()
    for module in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(module.read_bytes())
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps(sorted(inputs)).encode())
    return h.hexdigest()


def up_to_date(sources_json: Path, fp: str, out_dir: Path) -> bool:
    if not sources_json.exists():
        return False
    try:
        meta = json.loads(sources_json.read_text())
        if meta.get("fingerprint") != fp:
            return False
        for name, info in meta["outputs"].items():
            f = out_dir / name
            if not f.exists() or sha256_file(f) != info["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=DEFAULT_PATCHES, help="total patches, train+val (default %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="numpy Generator seed (default %(default)s)")
    ap.add_argument("--area-cap", type=int, default=DEFAULT_AREA_CAP,
                    help="cap (pixels) on a photo's downscaled area when allocating patches; 0 = no cap (default %(default)s)")
    ap.add_argument("--cache", type=Path, default=None, help="cache dir (default $BBCODEC_CACHE/rgb or ~/.cache/bbcodec/rgb)")
    ap.add_argument("--out", type=Path, default=None, help="where the .npy files go (default: the cache dir)")
    ap.add_argument("--sources-json", type=Path, default=MODEL_DIR / "sources.json")
    ap.add_argument("--force", action="store_true", help="rebuild even if the outputs are up to date")
    args = ap.parse_args(argv)
    t0 = time.time()
    cache = (args.cache or cache_root()).expanduser()
    out_dir = (args.out or cache).expanduser()
    debs_dir, extract_dir = cache / "debs", cache / "extract"
    config = {"script_version": SCRIPT_VERSION, "patches": args.patches, "seed": args.seed,
              "area_cap": args.area_cap, "patch": PATCH, "val_fraction": VAL_FRACTION}

    # 1. inputs -------------------------------------------------------------------
    log(f"cache: {cache}")
    packages: dict[str, DebPackage] = {}
    skipped: list[dict[str, str]] = []
    for src in DEB_SOURCES:
        log(f"package {src.package}")
        got = fetch_deb(src.package, debs_dir)
        if isinstance(got, str):
            log(f"  SKIPPED: {got}")
            skipped.append({"source": src.package, "reason": got})
            continue
        deb, verified = got
        sha = sha256_file(deb)
        root = extract_deb(deb, sha, extract_dir)
        packages[src.package] = DebPackage(src.package, deb_field(deb, "Version"), deb, sha, root, verified)
        log(f"  {deb.name} ({verified})")
    log("wheel foolbox==3.3.4")
    wheel = foolbox_wheel(cache)
    if isinstance(wheel, str):
        log(f"  SKIPPED: {wheel}")
        skipped.append({"source": FOOLBOX_NAME, "reason": wheel})
    inputs = [(p.deb.name, p.sha256) for p in packages.values()]
    if not isinstance(wheel, str):
        inputs.append((wheel.name, FOOLBOX_WHEEL_SHA256))
    fp = fingerprint(config, inputs)
    if not args.force and up_to_date(args.sources_json, fp, out_dir):
        log(f"outputs are up to date ({args.sources_json}); use --force to rebuild")
        return 0

    # 2. candidates and filtering ------------------------------------------------
    def all_candidates() -> Iterator[Candidate]:
        for src in DEB_SOURCES:
            if src.package in packages:
                yield from deb_candidates(src, packages[src.package])
        if not isinstance(wheel, str):
            yield from wheel_candidates(wheel)

    photos: list[Photo] = []
    dropped: list[dict[str, Any]] = []
    by_sha: dict[str, str] = {}
    by_pixels: dict[str, str] = {}
    n_cand = 0
    for cand in all_candidates():
        n_cand += 1
        sha = sha256_bytes(cand.data)
        where = f"{cand.source}:{cand.path}"
        if sha in by_sha:
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha,
                            "reason": f"duplicate file of {by_sha[sha]}"})
            continue
        by_sha[sha] = where
        res = assess(cand, sha)
        if isinstance(res, str):
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha, "reason": res})
            continue
        pix = sha256_bytes(res.rgb.tobytes() + str(res.rgb.shape).encode())
        if pix in by_pixels:
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha,
                            "reason": f"same pixels as {by_pixels[pix]}"})
            continue
        by_pixels[pix] = where
        res.factor = choose_factor(*res.size)
        res.small = downscale(res.rgb, res.factor)
        res.rgb = np.empty((0,), dtype=np.uint8)  # keep only the downscaled pixels
        photos.append(res)
        if n_cand % 50 == 0:
            log(f"  {n_cand} candidates examined, {len(photos)} photos kept")
    log(f"{n_cand} candidates -> {len(photos)} photos before near-duplicate check")

    # near duplicates: keep the largest version of each picture
    photos.sort(key=lambda p: (-p.size[0] * p.size[1], p.cand.source, p.cand.path))
    kept: list[Photo] = []
    for p in photos:
        twin = next((k for k in kept if int((k.dhash != p.dhash).sum()) <= NEAR_DUP_MAX_BITS), None)
        if twin is not None:
            dropped.append({"source": p.cand.source, "path": p.cand.path, "sha256": p.sha256,
                            "reason": f"near-duplicate of {twin.cand.source}:{twin.cand.path}"})
        else:
            kept.append(p)
    photos = sorted(kept, key=lambda p: (p.cand.source, p.cand.path))
    if not photos:
        log("no photos found; nothing to do")
        return 1

    # 3. split, allocate and cut ------------------------------------------------------
    rng = np.random.default_rng(args.seed)
    assign_groups(photos)
    split_photos(photos, rng)
    areas = np.array([p.small.shape[0] * p.small.shape[1] for p in photos], dtype=np.float64)
    weights = np.minimum(areas, args.area_cap) if args.area_cap > 0 else areas
    for p, n in zip(photos, allocate(weights, args.patches)):
        p.patches = int(n)
    train = [p for p in photos if p.split == "train"]
    val = [p for p in photos if p.split == "val"]
    log(f"cutting {sum(p.patches for p in train)} train patches from {len(train)} photos, "
        f"{sum(p.patches for p in val)} val patches from {len(val)} photos")
    outputs: dict[str, dict[str, Any]] = {}
    for name, members in (("patches_train.npy", train), ("patches_val.npy", val)):
        arr = cut_patches(members, rng)
        arr = arr[rng.permutation(len(arr))]  # mixed sources in any contiguous slice
        digest = save_npy_atomic(out_dir / name, arr)
        outputs[name] = {"shape": list(arr.shape), "dtype": "uint8", "sha256": digest,
                         "photos": len(members)}
        log(f"  wrote {out_dir / name} {arr.shape} sha256 {digest}")
        del arr

    # 4. provenance -----------------------------------------------------------------
    per_source: dict[str, dict[str, int]] = {}
    for p in photos:
        s = per_source.setdefault(p.cand.source, {"photos": 0, "train": 0, "val": 0, "patches": 0})
        s["photos"] += 1
        s[p.split] += 1
        s["patches"] += p.patches
    reasons = Counter(reason_category(d["reason"]) for d in dropped)
    meta = {
        "description": "RGB 32x32 training patches for bbcodec; generated by training/rgb/prepare_data.py",
        "fingerprint": fp,
        "config": config | {"downscale_factors": list(DOWNSCALE_FACTORS), "min_short_side": MIN_SHORT_SIDE,
                            "min_downscaled_side": MIN_DOWNSCALED_SIDE,
                            "filters": {"gray_chroma": GRAY_CHROMA, "gray_max_coloured_fraction": GRAY_MAX_COLOURED_FRACTION,
                                        "flat_max_fraction": FLAT_MAX_FRACTION, "min_colours": MIN_COLOURS,
                                        "near_dup_max_bits": NEAR_DUP_MAX_BITS}},
        "outputs": outputs,
        "packages": [{"name": p.package, "version": p.version, "deb": p.deb.name, "sha256": p.sha256,
                      "verified": p.verified} for p in packages.values()]
                    + ([] if isinstance(wheel, str) else
                       [{"name": FOOLBOX_NAME, "version": FOOLBOX_VERSION, "wheel": wheel.name,
                         "sha256": FOOLBOX_WHEEL_SHA256, "members": "foolbox/data/imagenet_*.jpg only"}]),
        "skipped_sources": skipped,
        "summary": {"candidates": n_cand, "photos": len(photos), "dropped": len(dropped),
                    "per_source": per_source, "dropped_by_reason": dict(reasons.most_common())},
        "photos": [{
            "source": p.cand.source, "version": p.cand.version, "kind": p.cand.kind, "path": p.cand.path,
            "sha256": p.sha256, "bytes": len(p.cand.data), "format": p.fmt, "mode": p.mode,
            "width": p.size[0], "height": p.size[1], "downscale": p.factor,
            "downscaled": [p.small.shape[1], p.small.shape[0]] if p.small is not None else None,
            "licence": p.cand.licence, "licence_basis": p.cand.licence_basis,
            **({"licence_note": p.cand.licence_note} if p.cand.licence_note else {}),
            "split": p.split, "group": p.group, "patches": p.patches, "stats": p.stats,
        } for p in photos],
        "dropped": sorted(dropped, key=lambda d: (d["source"], d["path"])),
    }
    atomic_write_bytes(args.sources_json, (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode())
    log(f"wrote {args.sources_json}")
    for src, s in sorted(per_source.items()):
        log(f"  {src:30s} {s['photos']:4d} photos ({s['val']} val) {s['patches']:7d} patches")
    for reason, n in reasons.most_common():
        log(f"  dropped {n:4d}: {reason}")
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
