"""Train/validation split by photo and the patches cut from each photo."""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict

import numpy as np

from photos.config import PATCH, RELATED_GROUPS, VAL_FRACTION
from photos.filtering import Photo


def allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to ``weights`` summing exactly to ``total``
    (largest remainder, ties by index, so the result is deterministic)."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.lexsort((np.arange(len(exact)), -(exact - counts)))
    counts[order[:rest]] += 1
    return counts


def assign_groups(photos: list[Photo]) -> None:
    """Group id = own sha256, unless the photo is listed in RELATED_GROUPS."""
    for p in photos:
        p.group = p.sha256[:16]
        for gi, (src, patterns) in enumerate(RELATED_GROUPS):
            if p.cand.source == src and any(fnmatch.fnmatchcase(p.cand.path, pat) for pat in patterns):
                p.group = f"related-{gi}"


def split_photos(photos: list[Photo], rng: np.random.Generator) -> None:
    """Hold out ~5% of the photos (whole related groups), stratified by source so the
    validation set has the same mix of sources as training."""
    by_source: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        p.split = "train"
        by_source[p.cand.source].append(p)
    for source in sorted(by_source):
        members = by_source[source]
        quota = math.floor(VAL_FRACTION * len(members) + 0.5)
        groups = sorted({p.group for p in members})
        taken = 0
        for gi in rng.permutation(len(groups)):
            if taken >= quota:
                break
            for p in members:
                if p.group == groups[gi]:
                    p.split = "val"
                    taken += 1


def cut_patches(photos: list[Photo], rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 32x32 windows, ``p.patches`` per photo, in photo order."""
    out = np.empty((sum(p.patches for p in photos), PATCH, PATCH, 3), dtype=np.uint8)
    k = 0
    for p in photos:
        assert p.small is not None
        h, w = p.small.shape[:2]
        ys = rng.integers(0, h - PATCH + 1, size=p.patches)
        xs = rng.integers(0, w - PATCH + 1, size=p.patches)
        for y, x in zip(ys, xs):
            out[k] = p.small[y: y + PATCH, x: x + PATCH]
            k += 1
    return out
