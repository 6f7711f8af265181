"""Every hostile image class has a documented behaviour: coded exactly, or refused.

Lossless means lossless: bbcodec never converts pixels silently. 8-bit grayscale
and RGB are coded exactly at any size (padded internally, cropped on decode);
everything whose pixels would change is refused with a message saying what to do.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import bbcodec
from bbcodec.images import read_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Image.new("I;16", (8, 8), 40000), "16-bit"),
        (lambda: Image.new("P", (8, 8)), "palette"),
        (lambda: Image.new("RGBA", (8, 8)), "alpha"),
        (lambda: Image.new("LA", (8, 8)), "alpha"),
        (lambda: Image.new("1", (8, 8)), "1-bit"),
    ],
)
def test_lossy_conversions_are_refused(make, message):
    with pytest.raises(bbcodec.UnsupportedImageError, match=message):
        read_image(_png(make()))


def test_cmyk_is_refused():
    data = _png(Image.new("CMYK", (8, 8), (10, 20, 30, 40)), format="TIFF")
    with pytest.raises(bbcodec.UnsupportedImageError, match="CMYK"):
        read_image(data)


def test_not_an_image_is_refused():
    with pytest.raises(bbcodec.UnsupportedImageError, match="cannot read"):
        read_image(b"this is not an image")


def test_decompression_bomb_guard_stays_on():
    """A PNG whose header claims 60000 x 60000 pixels is refused before decoding."""
    data = bytearray(_png(Image.new("L", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 60000, 60000)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    with pytest.raises(bbcodec.UnsupportedImageError, match="decompression bomb|exceeds"):
        read_image(bytes(data))


@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (700, 1), (3, 5), (5, 3, 3)])
def test_tiny_and_very_wide_images_code_exactly(zoo_env, shape):
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    model = "tiny-rgb" if len(shape) == 3 else "tiny"
    (back,) = bbcodec.decompress(bbcodec.compress([img], model=model))
    assert back.shape == img.shape and (back == img).all()


def test_exif_rotated_jpeg_is_coded_as_stored(zoo_env, tmp_path):
    """Pixels are taken as stored; the EXIF orientation tag is not applied (it would move pixels)."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24)).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=90)
    pixels = read_image(path)
    assert pixels.shape == (16, 24)  # not 24 x 16: orientation not applied
    (back,) = bbcodec.decompress(bbcodec.compress([pixels], model="tiny"))
    assert (back == np.asarray(Image.open(path))).all()


def test_grayscale_image_with_rgb_model_is_refused_clearly(zoo_env):
    with pytest.raises(bbcodec.UnsupportedImageError, match="RGB images; got grayscale"):
        bbcodec.compress([np.zeros((4, 4), np.uint8)], model="tiny-rgb")


def test_non_uint8_arrays_are_refused():
    with pytest.raises(bbcodec.UnsupportedImageError, match="uint8"):
        bbcodec.compress([np.zeros((4, 4), np.uint16)])
