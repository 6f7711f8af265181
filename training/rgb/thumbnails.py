"""Whole-scene 32x32 thumbnails of the same photographs (run after prepare_data.py).

    python training/rgb/thumbnails.py      # writes thumbs_{train,val}.npy

Why: a 32x32 CIFAR-10 picture is a whole scene shrunk ten times or more, squashed to
a square by an antialiasing filter. Measured on the first `rgb` model: 3.74 bits/dim
on held-out photo patches (close-up and coarse windows) but 4.95 on the 20 CIFAR-10
test images. Windows cut from a shrunk photo keep its local statistics; a thumbnail
of a random crop (20-100% of the photo's area, aspect 3:4 to 4:3, squashed to 32x32
by a randomly chosen box, bilinear, bicubic or Lanczos filter) has the statistics of a
tiny image instead. Same photos and train/val split as prepare_data.py (sources.json);
seeded and deterministic. None of the 20 CIFAR-10 test images is used.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import coarse_patches  # noqa: E402
from photos.files import cache_root, log  # noqa: E402

THUMBS_PER_PHOTO = 600
WORKING_SHORT_SIDE = 384  # shrink (box) to this first: crops are then cheap to resize
AREA_RANGE = (0.2, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
FILTERS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
SEED = 2


def working_copy(small: np.ndarray) -> Image.Image:
    img = Image.fromarray(small)
    h, w = small.shape[:2]
    if min(h, w) > WORKING_SHORT_SIDE:
        scale = WORKING_SHORT_SIDE / min(h, w)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return img


def random_thumbnail(img: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """One random-resized crop squashed to 32x32 (the crop never leaves the photo)."""
    w, h = img.size
    area = rng.uniform(*AREA_RANGE) * w * h
    aspect = float(np.exp(rng.uniform(np.log(ASPECT_RANGE[0]), np.log(ASPECT_RANGE[1]))))
    cw = int(min(w, max(32, round(np.sqrt(area * aspect)))))
    ch = int(min(h, max(32, round(np.sqrt(area / aspect)))))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    resample = FILTERS[int(rng.integers(len(FILTERS)))]
    thumb = img.resize((32, 32), resample, box=(x, y, x + cw, y + ch))
    return np.asarray(thumb, dtype=np.uint8)


def main() -> int:
    t0 = time.time()
    cache = cache_root()
    rng = np.random.default_rng(SEED)
    thumbs: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for meta, small in coarse_patches.listed_photos(cache):
        img = working_copy(small)
        thumbs[meta["split"]].append(np.stack([random_thumbnail(img, rng) for _ in range(THUMBS_PER_PHOTO)]))
    coarse_patches.save_shuffled(cache, "thumbs", thumbs, rng)
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
