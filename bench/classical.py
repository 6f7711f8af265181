"""Classical lossless codecs on the same images, for the comparison rows."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import numpy as np
from PIL import Image


def png_size(img: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.tell()


def webp_lossless_size(img: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", lossless=True, quality=100, method=6)
    return buf.tell()


def jpegxl_lossless_size(img: np.ndarray) -> int | None:
    """JPEG-XL lossless at effort 9 through imagecodecs, if it is installed."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return len(imagecodecs.jpegxl_encode(img, lossless=True, effort=9))


PER_IMAGE = {"PNG": png_size, "WebP lossless": webp_lossless_size, "JPEG-XL lossless e9": jpegxl_lossless_size}
WHOLE_SET = {
    "gzip -9 (whole set)": lambda raw: len(gzip.compress(raw, 9)),
    "bz2 -9 (whole set)": lambda raw: len(bz2.compress(raw, 9)),
    "lzma -9e (whole set)": lambda raw: len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)),
}


def classical_rows(images: list[np.ndarray]) -> list[dict]:
    """bits/dim of each classical codec: per-image files averaged, or the raw set compressed."""
    dims = sum(img.size for img in images)
    rows = []
    for name, size_of in PER_IMAGE.items():
        sizes = [size_of(img) for img in images]
        if any(s is None for s in sizes):
            rows.append({"codec": name, "bits_per_dim": None, "note": "imagecodecs not installed"})
            continue
        rows.append({"codec": name, "bits_per_dim": 8 * sum(sizes) / dims, "note": "one file per image"})
    raw = b"".join(np.ascontiguousarray(img).tobytes() for img in images)
    for name, size_of in WHOLE_SET.items():
        rows.append({"codec": name, "bits_per_dim": 8 * size_of(raw) / dims, "note": "raw pixels of all images"})
    return rows
