"""Photographs only: decode, classify (size, grayscale, transparency, flat fills, colours), downscale."""

from __future__ import annotations

import fnmatch
import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from photos.config import (
    DOWNSCALE_FACTORS,
    FLAT_MAX_FRACTION,
    GRAY_CHROMA,
    GRAY_MAX_COLOURED_FRACTION,
    MANUAL_EXCLUDE,
    MIN_COLOURS,
    MIN_DOWNSCALED_SIDE,
    MIN_SHORT_SIDE,
    STATS_SIDE,
)
from photos.candidates import Candidate


@dataclass
class Photo:
    """A candidate that passed every filter, with its pixels."""

    cand: Candidate
    sha256: str
    fmt: str
    size: tuple[int, int]
    mode: str
    rgb: np.ndarray  # full-resolution RGB uint8 (emptied once downscaled)
    stats: dict[str, float]
    dhash: np.ndarray
    group: str = ""
    factor: int = 0
    small: np.ndarray | None = None  # downscaled
    split: str = ""
    patches: int = 0


def manual_reason(source: str, path: str) -> str | None:
    for src, pattern, reason in MANUAL_EXCLUDE:
        if src == source and fnmatch.fnmatchcase(path, pattern):
            return f"manual review: {reason}"
    return None


def photo_stats(rgb: np.ndarray) -> dict[str, float]:
    """Cheap statistics that separate photographs from graphics.

    On a box-filtered 128x128 copy (downscaling averages away JPEG noise that would
    otherwise make flat graphics look textured): the fraction of clearly coloured
    pixels, the fraction of pixels exactly equal to their right and lower neighbours
    (flat fills, white cut-out backgrounds), and the number of distinct colours at
    6 bits per channel (drawings and renders use few)."""
    small = np.asarray(Image.fromarray(rgb).resize((STATS_SIDE, STATS_SIDE), Image.Resampling.BOX),
                       dtype=np.int32)
    chroma = small.max(axis=2) - small.min(axis=2)
    lum = small.sum(axis=2)
    flat = (lum[:-1, :-1] == lum[:-1, 1:]) & (lum[:-1, :-1] == lum[1:, :-1])
    q = small >> 2
    colours = np.unique((q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]).size
    return {"coloured_fraction": round(float((chroma > GRAY_CHROMA).mean()), 4),
            "flat_fraction": round(float(flat.mean()), 4),
            "colours": int(colours)}


def gradient_hash(rgb: np.ndarray) -> np.ndarray:
    """512-bit horizontal+vertical difference hash: robust to resizing and re-encoding,
    so the same picture shipped at two resolutions is recognised as a duplicate."""
    img = Image.fromarray(rgb).convert("L")
    h = np.asarray(img.resize((17, 16), Image.Resampling.BOX), dtype=np.int16)
    v = np.asarray(img.resize((16, 17), Image.Resampling.BOX), dtype=np.int16)
    return np.concatenate([(h[:, 1:] > h[:, :-1]).ravel(), (v[1:] > v[:-1]).ravel()])


def assess(cand: Candidate, sha: str) -> Photo | str:
    """Decode and classify one candidate: a Photo, or the reason it is dropped.

    Objective checks come first (size from the header, before decoding), then the
    manual list, then the pixel statistics."""
    try:
        img = Image.open(io.BytesIO(cand.data))
        fmt, size, mode = img.format or "?", img.size, img.mode
        if min(size) < MIN_SHORT_SIDE:
            return f"too small ({size[0]}x{size[1]} < {MIN_SHORT_SIDE} px short side)"
        reason = manual_reason(cand.source, cand.path)
        if reason:
            return reason
        img = ImageOps.exif_transpose(img)
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure just drops the file
        return f"cannot decode ({type(exc).__name__}: {exc})"
    if mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "F"):
        return f"grayscale (mode {mode})"
    if mode in ("P", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        if np.asarray(rgba.getchannel("A")).min() < 255:
            return "has transparent pixels (graphic or cut-out)"
        img = rgba
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    stats = photo_stats(rgb)
    if stats["coloured_fraction"] < GRAY_MAX_COLOURED_FRACTION:
        return f"grayscale content ({stats['coloured_fraction']:.1%} coloured pixels)"
    if stats["flat_fraction"] > FLAT_MAX_FRACTION:
        return f"clip-art/graphic: {stats['flat_fraction']:.0%} flat pixels"
    if stats["colours"] < MIN_COLOURS:
        return f"clip-art/graphic: only {stats['colours']} distinct colours"
    return Photo(cand, sha, fmt, size, mode, rgb, stats, gradient_hash(rgb))


def reason_category(reason: str) -> str:
    """Drop reason without the per-file details, for the summary counts."""
    if reason.startswith("manual review:"):
        return reason.split(" (")[0]
    return re.sub(r"\(.*|:.*| of .*|\d+.*", "", reason).strip()


def choose_factor(width: int, height: int) -> int:
    """Largest factor in 4, 3, 2 that keeps the short side >= 128 px."""
    for f in DOWNSCALE_FACTORS:
        if min(width, height) // f >= MIN_DOWNSCALED_SIDE:
            return f
    raise ValueError(f"{width}x{height} is too small to downscale by 2")


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Exact box filter: crop to a multiple of ``factor`` and average factor^2 blocks.
    Averaging (rather than Lanczos) has no ringing of its own and cancels JPEG/WebP block
    artefacts best; Pillow's ``reduce`` implements exactly this, with rounding."""
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb[: h - h % factor, : w - w % factor])
    return np.ascontiguousarray(np.asarray(img.reduce(factor), dtype=np.uint8))
