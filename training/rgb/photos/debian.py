"""Fetch one .deb with apt (checked against the apt index's SHA256) and extract it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from photos.files import log, sha256_file


@dataclass
class DebPackage:
    """A downloaded, verified and extracted .deb."""

    package: str
    version: str
    deb: Path
    sha256: str
    root: Path
    verified: str  # how the .deb was checked


def run_command(cmd: list[str], cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def apt_candidate(package: str) -> tuple[str | None, str | None]:
    """(candidate version, SHA256 of its .deb) from the apt index, or (None, None)."""
    if shutil.which("apt-cache") is None:
        return None, None
    res = run_command(["apt-cache", "policy", package])
    m = re.search(r"^\s*Candidate:\s*(\S+)", res.stdout, re.MULTILINE)
    if res.returncode != 0 or not m or m.group(1) == "(none)":
        return None, None
    version = m.group(1)
    show = run_command(["apt-cache", "show", f"{package}={version}"])
    sm = re.search(r"^SHA256:\s*([0-9a-f]{64})", show.stdout, re.MULTILINE)
    return version, sm.group(1) if sm else None


def deb_field(deb: Path, name: str) -> str:
    res = run_command(["dpkg-deb", "-f", str(deb), name])
    if res.returncode != 0:
        raise RuntimeError(f"dpkg-deb -f {deb.name} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def fetch_deb(package: str, debs_dir: Path) -> tuple[Path, str] | str:
    """Return (path to a verified .deb, how it was verified), or a reason for skipping.

    A cached .deb of the apt candidate version is reused when its SHA256 matches the
    index; without apt (or offline with no index entry) any cached .deb is used as is."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    version, want_sha = apt_candidate(package)
    cached = sorted(debs_dir.glob(f"{package}_*.deb"))
    if version is None:
        if cached:
            return cached[-1], "cached .deb (package not in the apt index here; unverified)"
        return f"not available from apt (apt-cache policy shows no candidate for {package})"
    for deb in cached:
        try:
            if deb_field(deb, "Version") != version:
                continue
        except RuntimeError:
            continue
        if want_sha is None or sha256_file(deb) == want_sha:
            return deb, "cached .deb, sha256 matches apt index" if want_sha else "cached .deb"
        log(f"  {deb.name}: sha256 mismatch with apt index, downloading again")
        deb.unlink()
    log(f"  apt-get download {package} (= {version})")
    res = run_command(["apt-get", "download", f"{package}={version}"], cwd=debs_dir)
    if res.returncode != 0:
        why = (res.stderr or res.stdout).strip()[-300:]
        left = sorted(debs_dir.glob(f"{package}_*.deb"))
        if left:
            return left[-1], f"cached .deb of another version (apt-get download failed: {why})"
        return f"apt-get download failed: {why}"
    for deb in sorted(debs_dir.glob(f"{package}_*.deb")):
        if deb_field(deb, "Version") == version:
            if want_sha is not None and sha256_file(deb) != want_sha:
                deb.unlink()
                return "downloaded .deb does not match the SHA256 in the apt index"
            return deb, "downloaded, sha256 matches apt index" if want_sha else "downloaded"
    return "apt-get download reported success but left no matching .deb"


def extract_deb(deb: Path, sha: str, extract_dir: Path) -> Path:
    """``dpkg-deb -x`` into a cache dir named after the .deb; a marker holding the .deb's
    sha256 makes reruns skip extraction (and redo it if the .deb changed)."""
    root = extract_dir / deb.stem
    marker = root / ".extracted-from"
    if marker.exists() and marker.read_text().strip() == sha:
        return root
    if root.exists():
        shutil.rmtree(root)
    tmp = extract_dir / f".{deb.stem}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    res = run_command(["dpkg-deb", "-x", str(deb), str(tmp)])
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"dpkg-deb -x {deb.name} failed: {res.stderr.strip()}")
    (tmp / ".extracted-from").write_text(sha + "\n")
    os.replace(tmp, root)
    return root
