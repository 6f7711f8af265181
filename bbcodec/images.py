"""Image files <-> uint8 arrays, strictly: lossless means nothing is converted.

Accepted: 8-bit grayscale (mode L) and 8-bit RGB, from any format pillow reads
(PNG, PGM, BMP, TIFF, WebP, a JPEG's decoded pixels). Anything whose pixels would
change on the way in (alpha, palettes, 16-bit, bilevel, CMYK, ...) is refused with
the conversion the user can make, never converted silently. Pixels are taken as
stored: an EXIF orientation tag is not applied (it would move pixels).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from bbcodec.errors import UnsupportedImageError

SUPPORTED_MODES = {"L": 1, "RGB": 3}
MODE_ADVICE = {
    "RGBA": "it has an alpha channel; alpha is not coded yet (drop it explicitly if it is opaque)",
    "LA": "it has an alpha channel; alpha is not coded yet",
    "P": "it is a palette image; convert it to RGB or L explicitly",
    "1": "it is a 1-bit image; convert it to L explicitly (values become 0/255)",
    "I;16": "it has 16-bit samples; bbcodec codes 8-bit images",
    "I": "it has 32-bit integer samples; bbcodec codes 8-bit images",
    "F": "it has floating-point samples; bbcodec codes 8-bit images",
    "CMYK": "it is CMYK; convert it to RGB explicitly",
}


def as_image_array(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: uint8, HxW or HxWxC with C in (1, 3)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise UnsupportedImageError(f"images must be uint8 arrays, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise UnsupportedImageError(f"images must be HxW (grayscale) or HxWx3 (RGB), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnsupportedImageError("empty image")
    return np.ascontiguousarray(arr)


def channels_of(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def read_image(source: str | os.PathLike | bytes) -> np.ndarray:
    """Read one image file (or its bytes) into a uint8 array, refusing lossy conversions."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            img.load()
            mode = img.mode
            if mode not in SUPPORTED_MODES:
                advice = MODE_ADVICE.get(mode, "this pixel mode is not supported")
                raise UnsupportedImageError(f"cannot code {_label(source)} losslessly: mode {mode}: {advice}")
            if getattr(img, "n_frames", 1) > 1:
                raise UnsupportedImageError(f"{_label(source)} has several frames; only single images are coded")
            return as_image_array(np.asarray(img))
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, UnsupportedImageError):
            raise
        raise UnsupportedImageError(f"cannot read {_label(source)} as an image: {exc}") from exc


def _label(source: object) -> str:
    return "the input" if isinstance(source, bytes) else str(source)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an array as PNG (lossless) in memory."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, image: np.ndarray) -> None:
    Path(path).write_bytes(png_bytes(image))
