"""Every image file a source offers, with its licence, before any filtering."""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from photos.config import (
    DebSource,
    FOOLBOX_LICENCE,
    FOOLBOX_MEMBER_RE,
    FOOLBOX_NAME,
    FOOLBOX_VERSION,
    FOOLBOX_WHEEL_SHA256,
    IMAGE_EXTS,
)
from photos.files import log, sha256_file
from photos.debian import DebPackage, run_command
from photos.licences import CopyrightFile
from photos.resources import parse_rcc, scan_embedded_images


@dataclass
class Candidate:
    """One image file from a source, before any filtering."""

    source: str
    version: str
    kind: str  # "deb" or "wheel"
    path: str  # path inside the package ("bundle.rcc:/inner/path" for rcc entries)
    data: bytes
    licence: str
    licence_basis: str
    licence_note: str = ""


def upstream_licence_note(root: Path, rel: str) -> str:
    """Licence statements shipped next to the image, which debian/copyright may not
    spell out per file: a License/COPYING file in the same directory (LXQt wallpapers)
    or a KDE wallpaper package's metadata.json (License and author)."""
    here = (root / rel).parent
    for name in ("License", "LICENSE", "COPYING", "COPYRIGHT"):
        f = here / name
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            cc = re.search(r"creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)", text)
            what = f"CC-{cc.group(1).upper()}-{cc.group(2)}" if cc else text.strip().splitlines()[0][:80]
            return f"{f.relative_to(root).as_posix()}: {what}"
    for d in (here, *here.parents):
        if d == root or root not in d.parents:
            break
        meta = d / "metadata.json"
        if meta.is_file():
            try:
                plugin = json.loads(meta.read_text(encoding="utf-8")).get("KPlugin", {})
            except ValueError:
                return ""
            authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
            return f"{meta.relative_to(root).as_posix()}: License {plugin.get('License', '?')}, by {authors}"
    return ""


def deb_candidates(src: DebSource, pkg: DebPackage) -> Iterator[Candidate]:
    """Image files matched by the source's globs, or embedded in its .rcc bundles."""
    copyright_ = CopyrightFile.load(pkg.root / "usr/share/doc" / src.package / "copyright")

    def make(path: str, data: bytes, lic_path: str, note: str = "") -> Candidate:
        lic, basis = copyright_.licence_for(lic_path)
        return Candidate(src.package, pkg.version, "deb", path, data, lic, basis, note)

    for rel in src.rcc:
        bundle = pkg.root / rel
        if not bundle.exists():
            log(f"  warning: {rel} not found in {src.package}")
            continue
        buf = bundle.read_bytes()
        try:
            entries = list(parse_rcc(buf))
        except (ValueError, struct.error, zlib.error, UnicodeDecodeError) as exc:
            log(f"  warning: cannot parse {rel} ({exc}); scanning for embedded images instead")
            entries = list(scan_embedded_images(buf))
        for inner, data in sorted(entries):
            if inner.lower().endswith(IMAGE_EXTS):
                yield make(f"{rel}:{inner}", data, inner)
    seen: set[str] = set()
    for pattern in src.globs:
        for f in sorted(pkg.root.glob(pattern)):
            rel = f.relative_to(pkg.root).as_posix()
            if rel in seen or not f.is_file() or f.is_symlink() or not rel.lower().endswith(IMAGE_EXTS):
                continue
            seen.add(rel)
            yield make(rel, f.read_bytes(), rel, upstream_licence_note(pkg.root, rel))


def foolbox_wheel(cache: Path) -> Path | str:
    """The foolbox 3.3.4 wheel ($BBCODEC_FOOLBOX_WHEEL, the bbcodec cache, or pip)."""
    override = os.environ.get("BBCODEC_FOOLBOX_WHEEL")
    directory = cache.parent / "foolbox"
    found = [Path(override)] if override else sorted(directory.glob("foolbox-3.3.4-*.whl"))
    if not found:
        directory.mkdir(parents=True, exist_ok=True)
        log("  pip download foolbox==3.3.4 --no-deps")
        res = run_command([sys.executable, "-m", "pip", "download", "foolbox==3.3.4", "--no-deps",
                    "-d", str(directory), "-q"])
        if res.returncode != 0:
            return f"pip download foolbox==3.3.4 failed: {res.stderr.strip()[-300:]}"
        found = sorted(directory.glob("foolbox-3.3.4-*.whl"))
    if not found or not found[0].exists():
        return "foolbox wheel not found"
    if sha256_file(found[0]) != FOOLBOX_WHEEL_SHA256:
        return f"{found[0]} is not the official foolbox 3.3.4 wheel (sha256 mismatch)"
    return found[0]


def wheel_candidates(wheel: Path) -> Iterator[Candidate]:
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if FOOLBOX_MEMBER_RE.match(name):
                assert "cifar" not in name.lower()
                yield Candidate(FOOLBOX_NAME, FOOLBOX_VERSION, "wheel", name, zf.read(name),
                                FOOLBOX_LICENCE, "foolbox METADATA (License: MIT)")
