"""The library API on tiny models: shapes, batching rules and hostile payloads."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import bbcodec
from bbcodec import container
from tests.conftest import random_digits


def test_mixed_original_shapes_that_pad_alike_still_decode(zoo_env):
    imgs = list(random_digits(6, 3))
    imgs[2] = imgs[2][:27, :27]  # pads to 28x28 like its neighbours
    imgs[4] = imgs[4][:26, :]
    out = bbcodec.decompress(bbcodec.compress(imgs, model="tiny", settings=bbcodec.CoderSettings(max_group=4)))
    assert [o.shape for o in out] == [i.shape for i in imgs]
    assert all((a == b).all() for a, b in zip(out, imgs))


def test_rgb_array_is_one_image_and_batches_are_split(zoo_env):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 9, 3)).astype(np.uint8)
    (back,) = bbcodec.decompress(bbcodec.compress(rgb, model="tiny-rgb"))
    assert (back == rgb).all()
    batch = random_digits(3, 1)
    assert len(bbcodec.decompress(bbcodec.compress(batch, model="tiny"))) == 3


def test_zero_top_word_is_a_format_error(zoo_env):
    """A hand-made file whose top word is 0 (the writer never makes one) with a valid CRC."""
    data = bbcodec.compress([random_digits(1, 2)[0]], model="tiny")
    body = data[:-4] + bytes(4)
    body += zlib.crc32(body).to_bytes(4, "little")
    with pytest.raises(bbcodec.FormatError, match="top word is zero"):
        bbcodec.decompress(body)
    with pytest.raises(ValueError, match="nonzero"):
        container.payload_bytes(np.array([5, 0], np.uint32))


def test_every_single_bit_flip_is_an_error_never_wrong_pixels(zoo_env):
    data = bbcodec.compress([random_digits(1, 4)[0]], model="tiny", names=["a.png"])
    for i in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        with pytest.raises(bbcodec.BBCodecError):
            bbcodec.decompress(bytes(flipped))


def test_payload_edits_with_a_valid_crc_never_return_wrong_pixels(zoo_env):
    img = random_digits(1, 5)[0]
    data = bbcodec.compress([img], model="tiny")
    for i in range(len(data) - 12, len(data) - 4):
        body = bytearray(data[:-4])
        body[i] ^= 0x01
        forged = bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")
        try:
            (out,) = bbcodec.decompress(forged)
        except bbcodec.BBCodecError:
            continue
        assert (out == img).all()  # only an edit that changes nothing may decode
