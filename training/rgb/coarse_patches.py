"""Coarse-scale 32x32 patches of the same photographs (run after prepare_data.py).

    python training/rgb/coarse_patches.py      # writes patches_coarse_{train,val}.npy

Why: prepare_data.py downscales each photo only 2-4x, so its patches are smooth
close-ups. Measured: after 1,000 training steps on them the RGB model scored 4.4
bits/dim on those patches but 5.5 on the 20 CIFAR-10 test images, whose 32x32
pictures are whole scenes shrunk 10x or more. These patches come from the same
photos (same train/val split, same checksums, listed in sources.json) shrunk further
with a box filter until the short side is one of COARSE_SIDES pixels, so the model
sees every scale from close-up to thumbnail. Seeded and deterministic.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from photos.candidates import deb_candidates, foolbox_wheel, wheel_candidates  # noqa: E402
from photos.config import DEB_SOURCES, MODEL_DIR  # noqa: E402
from photos.debian import DebPackage, deb_field, extract_deb, fetch_deb  # noqa: E402
from photos.files import cache_root, log, save_npy_atomic, sha256_bytes, sha256_file  # noqa: E402
from photos.filtering import assess, downscale  # noqa: E402

COARSE_SIDES = (32, 40, 48, 64, 80, 96, 128)  # short side after shrinking
PATCHES_PER_AREA = 8.0  # random windows per 32x32 of shrunk area (overlap is fine: scales differ)
SEED = 1


def shrink(small: np.ndarray, side: int) -> np.ndarray | None:
    """Box-filter ``small`` so its short side is ``side`` (None if it is not larger)."""
    h, w = small.shape[:2]
    if min(h, w) <= side:
        return None
    scale = side / min(h, w)
    size = (max(32, round(w * scale)), max(32, round(h * scale)))
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def photos_by_sha(sources: dict) -> dict[str, dict]:
    return {p["sha256"]: p for p in sources["photos"]}


def candidates(cache: Path):
    """The same candidate files prepare_data.py examined (from its offline cache)."""
    for src in DEB_SOURCES:
        got = fetch_deb(src.package, cache / "debs")
        if isinstance(got, str):
            continue
        deb, verified = got
        sha = sha256_file(deb)
        root = extract_deb(deb, sha, cache / "extract")
        yield from deb_candidates(src, DebPackage(src.package, deb_field(deb, "Version"), deb, sha,
                                                            root, verified))
    wheel = foolbox_wheel(cache)
    if not isinstance(wheel, str):
        yield from wheel_candidates(wheel)


def listed_photos(cache: Path):
    """Yield (metadata, photo after prepare_data.py's 2-4x downscale) for every photo in
    sources.json, in a fixed order; fails if one is missing or would now be dropped, so
    every patch set derived from the photos uses exactly the listed ones."""
    wanted = photos_by_sha(json.loads((MODEL_DIR / "sources.json").read_text()))
    seen: set[str] = set()
    for cand in candidates(cache):
        sha = sha256_bytes(cand.data)
        meta = wanted.get(sha)
        if meta is None or sha in seen:
            continue
        photo = assess(cand, sha)
        if isinstance(photo, str):
            raise SystemExit(f"{cand.path}: listed in sources.json but now dropped ({photo})")
        seen.add(sha)
        yield meta, downscale(photo.rgb, meta["downscale"])
    if len(seen) != len(wanted):
        raise SystemExit(f"found {len(seen)} of the {len(wanted)} photos listed in sources.json")


def save_shuffled(cache: Path, prefix: str, parts: dict[str, list[np.ndarray]], rng: np.random.Generator) -> None:
    """Concatenate each split, shuffle it with ``rng`` (train first, then val, so the
    files are reproducible from the seed) and write ``<prefix>_<split>.npy`` atomically."""
    for split, chunks in parts.items():
        arr = np.concatenate(chunks)
        arr = arr[rng.permutation(len(arr))]
        digest = save_npy_atomic(cache / f"{prefix}_{split}.npy", arr)
        log(f"wrote {prefix}_{split}.npy {arr.shape} sha256 {digest}")


def main() -> int:
    t0 = time.time()
    cache = cache_root()
    rng = np.random.default_rng(SEED)
    patches: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for meta, small in listed_photos(cache):
        for side in COARSE_SIDES:
            img = shrink(small, side)
            if img is None:
                continue
            h, w = img.shape[:2]
            n = max(1, round(PATCHES_PER_AREA * h * w / 1024))
            ys, xs = rng.integers(0, h - 31, size=n), rng.integers(0, w - 31, size=n)
            patches[meta["split"]].append(np.stack([img[y : y + 32, x : x + 32] for y, x in zip(ys, xs)]))
    save_shuffled(cache, "patches_coarse", patches, rng)
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
