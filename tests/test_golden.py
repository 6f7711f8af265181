"""Golden files pin the .bbc format: old files must keep decoding, bit-exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bbcodec

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture()
def golden_zoo(monkeypatch):
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(GOLDEN / "zoo"))


def test_golden_file_decodes_exactly(golden_zoo):
    images = bbcodec.decompress((GOLDEN / "digits.bbc").read_bytes())
    expected = np.load(GOLDEN / "digits.npy")
    assert len(images) == 3
    for got, want in zip(images, expected):
        np.testing.assert_array_equal(got, want)
    assert bbcodec.inspect((GOLDEN / "digits.bbc").read_bytes()).names == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("name", ["digits_anchored.bbc", "one_digit.bbc"])
def test_current_golden_files_decode_exactly(golden_zoo, name):
    images = bbcodec.decompress((GOLDEN / name).read_bytes())
    expected = np.load(GOLDEN / "digits.npy")[: len(images)]
    assert len(images) == (3 if name.startswith("digits") else 1)
    for got, want in zip(images, expected):
        np.testing.assert_array_equal(got, want)


def test_encoder_reproduces_golden_bytes(golden_zoo):
    """Encoding is deterministic: the same images give the same bytes (this platform)."""
    images = list(np.load(GOLDEN / "digits.npy"))
    data = bbcodec.compress(images, model="tiny", names=["a.png", "b.png", "c.png"])
    assert data == (GOLDEN / "digits_anchored.bbc").read_bytes()
    assert bbcodec.compress(images[:1], model="tiny") == (GOLDEN / "one_digit.bbc").read_bytes()


def test_importance_weighted_golden_file_decodes_exactly(golden_zoo):
    """Pins the warm-up flag: plain groups first, then groups of 4 importance samples.

    Written on an earlier machine (AVX2 only); it decodes here (AVX-512) because the
    coder pins torch's AVX2 kernels (bbcodec.numerics). Without the pin it did not."""
    data = (GOLDEN / "digits_importance.bbc").read_bytes()
    info = bbcodec.inspect(data)
    assert (info.samples, info.plain_groups, info.n_images) == (4, 4, 30)
    expected = list(np.load(GOLDEN / "digits.npy")) * 10
    for got, want in zip(bbcodec.decompress(data), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_encoder_reproduces_the_importance_golden_bytes_written_elsewhere(golden_zoo):
    """The strongest portability check available on one machine: the same bytes as
    the earlier machine wrote, through the float-heaviest path (importance weights)."""
    images = list(np.load(GOLDEN / "digits.npy")) * 10
    assert bbcodec.compress(images, model="tiny", samples=4) == (GOLDEN / "digits_importance.bbc").read_bytes()


def test_one_image_header_names_the_model_by_hash_alone(golden_zoo):
    data = (GOLDEN / "one_digit.bbc").read_bytes()
    assert data[:4] == b"BBC\x01" and data[5] == 0  # model name length 0
    info = bbcodec.inspect(data)
    assert info.model == "tiny" and info.initial_bits == 0 and info.header_bytes <= 32


def test_golden_header_layout():
    data = (GOLDEN / "digits.bbc").read_bytes()
    assert data[:4] == b"BBC\x01"
    assert data[6:10] == b"tiny"
