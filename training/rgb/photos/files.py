"""Cache location, logging, checksums and atomic writes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """$BBCODEC_CACHE/rgb (default ~/.cache/bbcodec/rgb), matching bbcodec.data.cache_dir."""
    root = os.environ.get("BBCODEC_CACHE") or Path.home() / ".cache" / "bbcodec"
    return Path(root) / "rgb"


def log(msg: str) -> None:
    """Progress goes to stdout, flushed, so a long run can be followed in a log file."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Streamed, so the ~600 MB patch files are never read into memory at once."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-then-rename so an interrupted run never leaves a truncated file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_npy_atomic(path: Path, array: np.ndarray) -> str:
    """np.save to a temp file in the same directory, fsync, rename; returns sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return sha256_file(path)
