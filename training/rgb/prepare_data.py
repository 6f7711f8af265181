#!/usr/bin/env python3
"""Build the RGB training set: 32x32 patches cut from real photographs found in Debian
packages (and 20 ImageNet samples from a PyPI wheel), reproducibly and offline-friendly.

    python training/rgb/prepare_data.py                    # ~200k patches (default)
    python training/rgb/prepare_data.py --patches 50000    # smaller set
    python training/rgb/prepare_data.py --force            # rebuild even if up to date

Why this way (see models/rgb/DATA.md for the longer story):

* There is no internet access except package registries, so the photographs come from
  packages whose data happens to contain photos (wallpapers, educational software,
  OpenCV samples). ``apt-get download`` + ``dpkg-deb -x`` fetch exactly one .deb each,
  without dependencies and without installing anything; the .deb is checked against the
  SHA256 in the apt index and cached in ``$BBCODEC_CACHE/rgb/debs`` so reruns are offline.
* Packages also ship icons, drawings, masks, screenshots and digital art. A codec model
  learns whatever statistics it is fed, so only real photographs are kept: automatic
  filters (size, grayscale, transparency, flat regions, few colours, duplicates) plus a
  short manual list of photos-of-paintings and digital renders that no simple statistic
  separates from photos. Every dropped file is recorded with its reason.
* Every source is lossy (JPEG/WebP). Downscaling by an integer factor 2-4 with a box
  filter averages away 8x8 block edges and ringing, so the model learns image
  statistics rather than compression artefacts.
* Patches are sampled in proportion to each photo's (capped) downscaled area; the
  validation split holds out whole *photos* so validation patches never overlap
  training pixels.
* Everything is driven by one seeded ``numpy.random.Generator`` (seed 0) and sorted
  inputs, so a rerun produces byte-identical .npy files; sources.json records the
  provenance (package, version, path, sha256, licence) of every photo used.

Only the standard library, numpy and Pillow are used.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE.parents[1] / "models" / "rgb"  # sources.json lives beside the model it trained
SCRIPT_VERSION = 1  # bump when the selection or sampling logic changes

# --------------------------------------------------------------------------- config

PATCH = 32
DEFAULT_PATCHES = 200_000
DEFAULT_SEED = 0
VAL_FRACTION = 0.05
MIN_SHORT_SIDE = 256  # photos smaller than this are thumbnails/icons, and /2 must stay >= 128
MIN_DOWNSCALED_SIDE = 128
DOWNSCALE_FACTORS = (4, 3, 2)  # largest first: the more averaging, the fewer artefacts
# Patch counts follow downscaled area, but an area cap keeps the ~50 multi-megapixel
# wallpapers (much smooth bokeh and sky) from supplying most of the data (55% uncapped,
# 46% with this cap) at the expense of ~225 ordinary photos.
DEFAULT_AREA_CAP = 512 * 512

# Photo-vs-graphic heuristics, measured on a 128x128 box-filtered copy. Thresholds were
# set by looking at every candidate (contact sheets) so that no real photo is lost.
STATS_SIDE = 128
GRAY_CHROMA = 12  # max-min over RGB above this counts as a "coloured" pixel
GRAY_MAX_COLOURED_FRACTION = 0.02  # fewer coloured pixels than this: grayscale photo
FLAT_MAX_FRACTION = 0.35  # pixels identical to right & lower neighbour: clip-art/cut-out
MIN_COLOURS = 200  # distinct colours (6 bits/channel); drawings/renders have few
NEAR_DUP_MAX_BITS = 24  # of 512 gradient-hash bits: same picture, other size/encoding

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class DebSource:
    """A Debian package and the glob patterns (relative to its root) holding photos.

    ``rcc`` names Qt resource bundles whose embedded images are candidates instead."""

    package: str
    globs: tuple[str, ...] = ()
    rcc: tuple[str, ...] = ()


GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"
DEB_SOURCES: tuple[DebSource, ...] = (
    # GCompris activities whose resources are photographs (WebP inside .rcc bundles).
    DebSource("gcompris-qt-data", rcc=tuple(f"{GCOMPRIS_RCC_DIR}/{a}.rcc" for a in (
        "explore_monuments", "erase", "explore_world_animals", "explore_farm_animals",
        "explore_world_music", "clickgame", "details", "categorization"))),
    DebSource("opencv-doc", ("usr/share/doc/opencv-doc/examples/**/*",)),
    DebSource("tuxpaint-data", ("usr/share/tuxpaint/templates/*",)),
    DebSource("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*",)),
    DebSource("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*",)),
    DebSource("plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images*/*",)),
    DebSource("lxqt-themes", ("usr/share/lxqt/wallpapers/*",)),
    DebSource("palapeli-data", ("usr/share/palapeli/collection/*",)),
    DebSource("lomiri-wallpapers-20.04", ("usr/share/backgrounds/*",)),
)

FOOLBOX_NAME = "foolbox"
FOOLBOX_VERSION = "3.3.4"
FOOLBOX_WHEEL_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
FOOLBOX_LICENCE = ("MIT (foolbox wheel); the pictures are ImageNet samples whose copyright "
                   "stays with their photographers (ImageNet terms: non-commercial research)")
# Only these members are read. The wheel's cifar10_*.png are the project's TEST images
# and must never reach training data; cifar100/fashionMNIST/mnist are tiny anyway.
FOOLBOX_MEMBER_RE = re.compile(r"^foolbox/data/imagenet_\d+_\d+\.jpg$")

# Found by visual review of every candidate that passes the automatic filters: these
# are not photographs of the real world (or are synthetic test images), and no simple
# statistic tells them apart from photos. Patterns use fnmatch against the package path.
MANUAL_EXCLUDE: tuple[tuple[str, str, str], ...] = (
    ("gcompris-qt-data", "*/details/resource/image/*Gogh*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/PortraitOfPereTanguy*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/Van_Gogh_*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/Eglise_dAuvers*", "painting (Van Gogh reproduction)"),
    ("opencv-doc", "*/starry_night.jpg", "painting (Van Gogh reproduction)"),
    ("opencv-doc", "*/fuzzy/input.png", "digital drawing (anime character)"),
    ("opencv-doc", "*/ximgproc/stanford.png", "map screenshot"),
    ("opencv-doc", "*/data/pic[1-6].png", "synthetic test pattern"),
    ("opencv-doc", "*/data/licenseplate_motion.jpg", "synthetically motion-blurred photo"),
    ("lomiri-wallpapers-16.04", "*/umang_by_Abhishek_Mudgal.jpg", "digital artwork (gradient)"),
    ("lomiri-wallpapers-16.04", "*/analogpattern_by_Peter_Nerlich.jpg", "digital artwork (pattern)"),
    ("lomiri-wallpapers-20.04", "*/Fossa_by_Jasper_Roks.jpg", "digital artwork"),
    ("lomiri-wallpapers-20.04", "*/Infinite-Sea_by_Aury88.jpg", "digital artwork"),
    ("lomiri-wallpapers-20.04", "*/Painting-Colors_by__herobrine7gamer.jpg", "digital artwork"),
    *(("plasma-workspace-wallpapers", f"usr/share/wallpapers/{w}/*", "digital artwork (render)")
      for w in ("Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
                "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills",
                "Patak", "SafeLanding", "Shell", "Volna")),
    *(("lxqt-themes", f"usr/share/lxqt/wallpapers/{w}", "digital artwork (render/logo)")
      for w in ("kde-plasma.png", "*origami*", "plasma-logo-*", "plasma_arch.png",
                "simple_blue_widescreen.png", "triangles*", "waves-*")),
)

# Different views of one scene (stereo pairs, before/after edits): kept, but always put
# in the same split so validation never sees a near copy of a training photo.
RELATED_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("opencv-doc", ("*/data/aloeL.jpg", "*/data/aloeR.jpg")),
    ("opencv-doc", ("*/data/leuvenA.jpg", "*/data/leuvenB.jpg")),
    ("opencv-doc", ("*/data/graf1.png", "*/data/graf3.png")),
    ("opencv-doc", ("*/data/ela_original.jpg", "*/data/ela_modified.jpg")),
    ("opencv-doc", ("*/data/left.jpg", "*/data/right.jpg")),
)


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


# --------------------------------------------------------------------- Debian packages

@dataclass
class DebPackage:
    """A downloaded, verified and extracted .deb."""

    package: str
    version: str
    deb: Path
    sha256: str
    root: Path
    verified: str  # how the .deb was checked


def _run(cmd: list[str], cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def apt_candidate(package: str) -> tuple[str | None, str | None]:
    """(candidate version, SHA256 of its .deb) from the apt index, or (None, None)."""
    if shutil.which("apt-cache") is None:
        return None, None
    res = _run(["apt-cache", "policy", package])
    m = re.search(r"^\s*Candidate:\s*(\S+)", res.stdout, re.MULTILINE)
    if res.returncode != 0 or not m or m.group(1) == "(none)":
        return None, None
    version = m.group(1)
    show = _run(["apt-cache", "show", f"{package}={version}"])
    sm = re.search(r"^SHA256:\s*([0-9a-f]{64})", show.stdout, re.MULTILINE)
    return version, sm.group(1) if sm else None


def deb_field(deb: Path, name: str) -> str:
    res = _run(["dpkg-deb", "-f", str(deb), name])
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
    res = _run(["apt-get", "download", f"{package}={version}"], cwd=debs_dir)
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
    res = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"dpkg-deb -x {deb.name} failed: {res.stderr.strip()}")
    (tmp / ".extracted-from").write_text(sha + "\n")
    os.replace(tmp, root)
    return root


# ------------------------------------------------------------------- DEP-5 licences

@dataclass
class CopyrightFile:
    """Machine-readable debian/copyright (DEP-5): Files stanzas -> licence short names."""

    stanzas: list[tuple[list[str], str]] = field(default_factory=list)  # (patterns, licence)
    all_licences: list[str] = field(default_factory=list)
    machine_readable: bool = False

    @classmethod
    def load(cls, path: Path) -> CopyrightFile:
        out = cls()
        if not path.exists():
            return out
        text = path.read_text(encoding="utf-8", errors="replace")
        paragraphs = re.split(r"\n\s*\n", text)
        out.machine_readable = paragraphs[0].lstrip().startswith("Format:")
        for para in paragraphs:
            fields: dict[str, str] = {}
            key = None
            for line in para.splitlines():
                if line[:1] in (" ", "\t") and key:
                    fields[key] += "\n" + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "license" in fields:
                short = fields["license"].split("\n", 1)[0].strip()
                if short and short not in out.all_licences:
                    out.all_licences.append(short)
                if "files" in fields:
                    out.stanzas.append((fields["files"].split(), short))
        return out

    def licence_for(self, path: str) -> tuple[str, str]:
        """(licence, basis) for a path inside the binary package.

        Patterns name *source* paths, which differ from installed ones (and GCompris
        converts .jpg sources to .webp at build time), so a pattern matches if it is a
        suffix of the installed path ignoring image extensions, or failing that if its
        literal basename matches. The last matching stanza wins, as DEP-5 specifies."""
        if not self.machine_readable or not self.stanzas:
            return "see copyright file", "copyright file is not machine-readable"
        stem = _strip_image_ext(path)
        best: tuple[int, int, str, str] | None = None
        default: str | None = None
        for idx, (patterns, lic) in enumerate(self.stanzas):
            for pat in patterns:
                if pat == "*":
                    default = lic
                    continue
                pstem = _strip_image_ext(pat)
                level = 0
                if fnmatch.fnmatchcase(stem, pstem) or fnmatch.fnmatchcase(stem, "*/" + pstem):
                    level = 2
                elif not any(c in pstem for c in "*?[") and pstem.rsplit("/", 1)[-1] == stem.rsplit("/", 1)[-1]:
                    level = 1
                if level and (best is None or (level, idx) >= best[:2]):
                    best = (level, idx, pat, lic)
        if best is not None:
            return best[3], f"copyright stanza 'Files: {best[2]}'"
        if default is not None:
            return default, "copyright stanza 'Files: *' (package default)"
        return "see copyright file", "no stanza matches"


def _strip_image_ext(p: str) -> str:
    low = p.lower()
    for ext in (*IMAGE_EXTS, ".svg", ".gif"):
        if low.endswith(ext):
            return p[: -len(ext)]
    return p


# ----------------------------------------------------------------- Qt .rcc resources

def parse_rcc(buf: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (resource path, data) for every file in a Qt binary resource (.rcc).

    Layout (qtbase/src/corelib/io/qresource.cpp): "qres", version, tree/data/names
    offsets (+ flags for v3). Tree nodes are 14 bytes (v1) or 22 (v2+, with mtime):
    name offset, flags, then either child count + first child (directory) or
    locale + data offset. A data entry is a 4-byte big-endian length then the bytes;
    flag 1 marks zlib (qCompress: 4-byte uncompressed length + zlib stream), flag 4
    zstd (not in the stdlib; such entries are skipped with a warning)."""
    magic, version, tree, data, names = struct.unpack_from(">4sIIII", buf, 0)
    if magic != b"qres" or version not in (1, 2, 3):
        raise ValueError(f"not a supported Qt rcc file (magic {magic!r}, version {version})")
    node_size = 14 if version == 1 else 22

    def name_at(off: int) -> str:
        (n,) = struct.unpack_from(">H", buf, names + off)
        return buf[names + off + 6: names + off + 6 + 2 * n].decode("utf-16-be")

    stack: list[tuple[int, str]] = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_off, flags = struct.unpack_from(">IH", buf, base)
        path = prefix + "/" + name_at(name_off) if index else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", buf, base + 6)
            stack.extend((c, path) for c in reversed(range(first, first + count)))
            continue
        (data_off,) = struct.unpack_from(">I", buf, base + 10)
        (length,) = struct.unpack_from(">I", buf, data + data_off)
        raw = buf[data + data_off + 4: data + data_off + 4 + length]
        if flags & 4:
            log(f"  warning: {path} is zstd-compressed, skipped")
            continue
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        yield path, raw


def scan_embedded_images(buf: bytes) -> Iterator[tuple[str, bytes]]:
    """Fallback when a bundle cannot be parsed: find RIFF/WEBP and PNG blobs by signature
    (their lengths are self-describing) plus images inside qCompress'd zlib entries."""
    for m in re.finditer(rb"RIFF(....)WEBP", buf, re.DOTALL):
        size = struct.unpack("<I", m.group(1))[0] + 8
        yield f"@{m.start():#x}.webp", buf[m.start(): m.start() + size]
    for m in re.finditer(rb"\x89PNG\r\n\x1a\n", buf):
        end = buf.find(b"IEND", m.start())
        if end > 0:
            yield f"@{m.start():#x}.png", buf[m.start(): end + 8]
    for m in re.finditer(rb"\x00\x00..\x78[\x01\x5e\x9c\xda]", buf, re.DOTALL):
        try:
            inner = zlib.decompressobj().decompress(buf[m.start() + 4:])
        except zlib.error:
            continue
        if inner[:4] == b"RIFF" or inner[:8] == b"\x89PNG\r\n\x1a\n" or inner[:3] == b"\xff\xd8\xff":
            ext = ".webp" if inner[:4] == b"RIFF" else ".png" if inner[:1] == b"\x89" else ".jpg"
            yield f"@{m.start():#x}{ext}", inner


# ---------------------------------------------------------------------- candidates

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
        res = _run([sys.executable, "-m", "pip", "download", "foolbox==3.3.4", "--no-deps",
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


# ------------------------------------------------------------------------ filtering

@dataclass
class Photo:
    """A candidate that passed every filter, with its pixels."""

    cand: Candidate
    sha256: str
    fmt: str
    size: tuple[int, int]
    mode: str
    rgb: np.ndarray  # full-resolution RGB uint8 (emptied once downscaled)
    stats: dict[str, float]
    dhash: np.ndarray
    group: str = ""
    factor: int = 0
    small: np.ndarray | None = None  # downscaled
    split: str = ""
    patches: int = 0


def manual_reason(source: str, path: str) -> str | None:
    for src, pattern, reason in MANUAL_EXCLUDE:
        if src == source and fnmatch.fnmatchcase(path, pattern):
            return f"manual review: {reason}"
    return None


def photo_stats(rgb: np.ndarray) -> dict[str, float]:
    """Cheap statistics that separate photographs from graphics.

    On a box-filtered 128x128 copy (downscaling averages away JPEG noise that would
    otherwise make flat graphics look textured): the fraction of clearly coloured
    pixels, the fraction of pixels exactly equal to their right and lower neighbours
    (flat fills, white cut-out backgrounds), and the number of distinct colours at
    6 bits per channel (drawings and renders use few)."""
    small = np.asarray(Image.fromarray(rgb).resize((STATS_SIDE, STATS_SIDE), Image.Resampling.BOX),
                       dtype=np.int32)
    chroma = small.max(axis=2) - small.min(axis=2)
    lum = small.sum(axis=2)
    flat = (lum[:-1, :-1] == lum[:-1, 1:]) & (lum[:-1, :-1] == lum[1:, :-1])
    q = small >> 2
    colours = np.unique((q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]).size
    return {"coloured_fraction": round(float((chroma > GRAY_CHROMA).mean()), 4),
            "flat_fraction": round(float(flat.mean()), 4),
            "colours": int(colours)}


def gradient_hash(rgb: np.ndarray) -> np.ndarray:
    """512-bit horizontal+vertical difference hash: robust to resizing and re-encoding,
    so the same picture shipped at two resolutions is recognised as a duplicate."""
    img = Image.fromarray(rgb).convert("L")
    h = np.asarray(img.resize((17, 16), Image.Resampling.BOX), dtype=np.int16)
    v = np.asarray(img.resize((16, 17), Image.Resampling.BOX), dtype=np.int16)
    return np.concatenate([(h[:, 1:] > h[:, :-1]).ravel(), (v[1:] > v[:-1]).ravel()])


def assess(cand: Candidate, sha: str) -> Photo | str:
    """Decode and classify one candidate: a Photo, or the reason it is dropped.

    Objective checks come first (size from the header, before decoding), then the
    manual list, then the pixel statistics."""
    try:
        img = Image.open(io.BytesIO(cand.data))
        fmt, size, mode = img.format or "?", img.size, img.mode
        if min(size) < MIN_SHORT_SIDE:
            return f"too small ({size[0]}x{size[1]} < {MIN_SHORT_SIDE} px short side)"
        reason = manual_reason(cand.source, cand.path)
        if reason:
            return reason
        img = ImageOps.exif_transpose(img)
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure just drops the file
        return f"cannot decode ({type(exc).__name__}: {exc})"
    if mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "F"):
        return f"grayscale (mode {mode})"
    if mode in ("P", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        if np.asarray(rgba.getchannel("A")).min() < 255:
            return "has transparent pixels (graphic or cut-out)"
        img = rgba
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    stats = photo_stats(rgb)
    if stats["coloured_fraction"] < GRAY_MAX_COLOURED_FRACTION:
        return f"grayscale content ({stats['coloured_fraction']:.1%} coloured pixels)"
    if stats["flat_fraction"] > FLAT_MAX_FRACTION:
        return f"clip-art/graphic: {stats['flat_fraction']:.0%} flat pixels"
    if stats["colours"] < MIN_COLOURS:
        return f"clip-art/graphic: only {stats['colours']} distinct colours"
    return Photo(cand, sha, fmt, size, mode, rgb, stats, gradient_hash(rgb))


def reason_category(reason: str) -> str:
    """Drop reason without the per-file details, for the summary counts."""
    if reason.startswith("manual review:"):
        return reason.split(" (")[0]
    return re.sub(r"\(.*|:.*| of .*|\d+.*", "", reason).strip()


def choose_factor(width: int, height: int) -> int:
    """Largest factor in 4, 3, 2 that keeps the short side >= 128 px."""
    for f in DOWNSCALE_FACTORS:
        if min(width, height) // f >= MIN_DOWNSCALED_SIDE:
            return f
    raise ValueError(f"{width}x{height} is too small to downscale by 2")


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Exact box filter: crop to a multiple of ``factor`` and average factor^2 blocks.
    Averaging (rather than Lanczos) has no ringing of its own and cancels JPEG/WebP block
    artefacts best; Pillow's ``reduce`` implements exactly this, with rounding."""
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb[: h - h % factor, : w - w % factor])
    return np.ascontiguousarray(np.asarray(img.reduce(factor), dtype=np.uint8))


# ---------------------------------------------------------------------- assembly

def allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to ``weights`` summing exactly to ``total``
    (largest remainder, ties by index, so the result is deterministic)."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.lexsort((np.arange(len(exact)), -(exact - counts)))
    counts[order[:rest]] += 1
    return counts


def assign_groups(photos: list[Photo]) -> None:
    """Group id = own sha256, unless the photo is listed in RELATED_GROUPS."""
    for p in photos:
        p.group = p.sha256[:16]
        for gi, (src, patterns) in enumerate(RELATED_GROUPS):
            if p.cand.source == src and any(fnmatch.fnmatchcase(p.cand.path, pat) for pat in patterns):
                p.group = f"related-{gi}"


def split_photos(photos: list[Photo], rng: np.random.Generator) -> None:
    """Hold out ~5% of the photos (whole related groups), stratified by source so the
    validation set has the same mix of sources as training."""
    by_source: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        p.split = "train"
        by_source[p.cand.source].append(p)
    for source in sorted(by_source):
        members = by_source[source]
        quota = math.floor(VAL_FRACTION * len(members) + 0.5)
        groups = sorted({p.group for p in members})
        taken = 0
        for gi in rng.permutation(len(groups)):
            if taken >= quota:
                break
            for p in members:
                if p.group == groups[gi]:
                    p.split = "val"
                    taken += 1


def cut_patches(photos: list[Photo], rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 32x32 windows, ``p.patches`` per photo, in photo order."""
    out = np.empty((sum(p.patches for p in photos), PATCH, PATCH, 3), dtype=np.uint8)
    k = 0
    for p in photos:
        assert p.small is not None
        h, w = p.small.shape[:2]
        ys = rng.integers(0, h - PATCH + 1, size=p.patches)
        xs = rng.integers(0, w - PATCH + 1, size=p.patches)
        for y, x in zip(ys, xs):
            out[k] = p.small[y: y + PATCH, x: x + PATCH]
            k += 1
    return out


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


def fingerprint(config: dict[str, Any], inputs: list[tuple[str, str]]) -> str:
    """Hash of everything the outputs depend on: this script, its config and the
    sha256 of every input archive; equal fingerprints mean identical outputs."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps(sorted(inputs)).encode())
    return h.hexdigest()


def up_to_date(sources_json: Path, fp: str, out_dir: Path) -> bool:
    if not sources_json.exists():
        return False
    try:
        meta = json.loads(sources_json.read_text())
        if meta.get("fingerprint") != fp:
            return False
        for name, info in meta["outputs"].items():
            f = out_dir / name
            if not f.exists() or sha256_file(f) != info["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=DEFAULT_PATCHES, help="total patches, train+val (default %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="numpy Generator seed (default %(default)s)")
    ap.add_argument("--area-cap", type=int, default=DEFAULT_AREA_CAP,
                    help="cap (pixels) on a photo's downscaled area when allocating patches; 0 = no cap (default %(default)s)")
    ap.add_argument("--cache", type=Path, default=None, help="cache dir (default $BBCODEC_CACHE/rgb or ~/.cache/bbcodec/rgb)")
    ap.add_argument("--out", type=Path, default=None, help="where the .npy files go (default: the cache dir)")
    ap.add_argument("--sources-json", type=Path, default=MODEL_DIR / "sources.json")
    ap.add_argument("--force", action="store_true", help="rebuild even if the outputs are up to date")
    args = ap.parse_args(argv)
    t0 = time.time()
    cache = (args.cache or cache_root()).expanduser()
    out_dir = (args.out or cache).expanduser()
    debs_dir, extract_dir = cache / "debs", cache / "extract"
    config = {"script_version": SCRIPT_VERSION, "patches": args.patches, "seed": args.seed,
              "area_cap": args.area_cap, "patch": PATCH, "val_fraction": VAL_FRACTION}

    # 1. inputs -------------------------------------------------------------------
    log(f"cache: {cache}")
    packages: dict[str, DebPackage] = {}
    skipped: list[dict[str, str]] = []
    for src in DEB_SOURCES:
        log(f"package {src.package}")
        got = fetch_deb(src.package, debs_dir)
        if isinstance(got, str):
            log(f"  SKIPPED: {got}")
            skipped.append({"source": src.package, "reason": got})
            continue
        deb, verified = got
        sha = sha256_file(deb)
        root = extract_deb(deb, sha, extract_dir)
        packages[src.package] = DebPackage(src.package, deb_field(deb, "Version"), deb, sha, root, verified)
        log(f"  {deb.name} ({verified})")
    log("wheel foolbox==3.3.4")
    wheel = foolbox_wheel(cache)
    if isinstance(wheel, str):
        log(f"  SKIPPED: {wheel}")
        skipped.append({"source": FOOLBOX_NAME, "reason": wheel})
    inputs = [(p.deb.name, p.sha256) for p in packages.values()]
    if not isinstance(wheel, str):
        inputs.append((wheel.name, FOOLBOX_WHEEL_SHA256))
    fp = fingerprint(config, inputs)
    if not args.force and up_to_date(args.sources_json, fp, out_dir):
        log(f"outputs are up to date ({args.sources_json}); use --force to rebuild")
        return 0

    # 2. candidates and filtering ------------------------------------------------
    def all_candidates() -> Iterator[Candidate]:
        for src in DEB_SOURCES:
            if src.package in packages:
                yield from deb_candidates(src, packages[src.package])
        if not isinstance(wheel, str):
            yield from wheel_candidates(wheel)

    photos: list[Photo] = []
    dropped: list[dict[str, Any]] = []
    by_sha: dict[str, str] = {}
    by_pixels: dict[str, str] = {}
    n_cand = 0
    for cand in all_candidates():
        n_cand += 1
        sha = sha256_bytes(cand.data)
        where = f"{cand.source}:{cand.path}"
        if sha in by_sha:
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha,
                            "reason": f"duplicate file of {by_sha[sha]}"})
            continue
        by_sha[sha] = where
        res = assess(cand, sha)
        if isinstance(res, str):
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha, "reason": res})
            continue
        pix = sha256_bytes(res.rgb.tobytes() + str(res.rgb.shape).encode())
        if pix in by_pixels:
            dropped.append({"source": cand.source, "path": cand.path, "sha256": sha,
                            "reason": f"same pixels as {by_pixels[pix]}"})
            continue
        by_pixels[pix] = where
        res.factor = choose_factor(*res.size)
        res.small = downscale(res.rgb, res.factor)
        res.rgb = np.empty((0,), dtype=np.uint8)  # keep only the downscaled pixels
        photos.append(res)
        if n_cand % 50 == 0:
            log(f"  {n_cand} candidates examined, {len(photos)} photos kept")
    log(f"{n_cand} candidates -> {len(photos)} photos before near-duplicate check")

    # near duplicates: keep the largest version of each picture
    photos.sort(key=lambda p: (-p.size[0] * p.size[1], p.cand.source, p.cand.path))
    kept: list[Photo] = []
    for p in photos:
        twin = next((k for k in kept if int((k.dhash != p.dhash).sum()) <= NEAR_DUP_MAX_BITS), None)
        if twin is not None:
            dropped.append({"source": p.cand.source, "path": p.cand.path, "sha256": p.sha256,
                            "reason": f"near-duplicate of {twin.cand.source}:{twin.cand.path}"})
        else:
            kept.append(p)
    photos = sorted(kept, key=lambda p: (p.cand.source, p.cand.path))
    if not photos:
        log("no photos found; nothing to do")
        return 1

    # 3. split, allocate and cut ------------------------------------------------------
    rng = np.random.default_rng(args.seed)
    assign_groups(photos)
    split_photos(photos, rng)
    areas = np.array([p.small.shape[0] * p.small.shape[1] for p in photos], dtype=np.float64)
    weights = np.minimum(areas, args.area_cap) if args.area_cap > 0 else areas
    for p, n in zip(photos, allocate(weights, args.patches)):
        p.patches = int(n)
    train = [p for p in photos if p.split == "train"]
    val = [p for p in photos if p.split == "val"]
    log(f"cutting {sum(p.patches for p in train)} train patches from {len(train)} photos, "
        f"{sum(p.patches for p in val)} val patches from {len(val)} photos")
    outputs: dict[str, dict[str, Any]] = {}
    for name, members in (("patches_train.npy", train), ("patches_val.npy", val)):
        arr = cut_patches(members, rng)
        arr = arr[rng.permutation(len(arr))]  # mixed sources in any contiguous slice
        digest = save_npy_atomic(out_dir / name, arr)
        outputs[name] = {"shape": list(arr.shape), "dtype": "uint8", "sha256": digest,
                         "photos": len(members)}
        log(f"  wrote {out_dir / name} {arr.shape} sha256 {digest}")
        del arr

    # 4. provenance -----------------------------------------------------------------
    per_source: dict[str, dict[str, int]] = {}
    for p in photos:
        s = per_source.setdefault(p.cand.source, {"photos": 0, "train": 0, "val": 0, "patches": 0})
        s["photos"] += 1
        s[p.split] += 1
        s["patches"] += p.patches
    reasons = Counter(reason_category(d["reason"]) for d in dropped)
    meta = {
        "description": "RGB 32x32 training patches for bbcodec; generated by training/rgb/prepare_data.py",
        "fingerprint": fp,
        "config": config | {"downscale_factors": list(DOWNSCALE_FACTORS), "min_short_side": MIN_SHORT_SIDE,
                            "min_downscaled_side": MIN_DOWNSCALED_SIDE,
                            "filters": {"gray_chroma": GRAY_CHROMA, "gray_max_coloured_fraction": GRAY_MAX_COLOURED_FRACTION,
                                        "flat_max_fraction": FLAT_MAX_FRACTION, "min_colours": MIN_COLOURS,
                                        "near_dup_max_bits": NEAR_DUP_MAX_BITS}},
        "outputs": outputs,
        "packages": [{"name": p.package, "version": p.version, "deb": p.deb.name, "sha256": p.sha256,
                      "verified": p.verified} for p in packages.values()]
                    + ([] if isinstance(wheel, str) else
                       [{"name": FOOLBOX_NAME, "version": FOOLBOX_VERSION, "wheel": wheel.name,
                         "sha256": FOOLBOX_WHEEL_SHA256, "members": "foolbox/data/imagenet_*.jpg only"}]),
        "skipped_sources": skipped,
        "summary": {"candidates": n_cand, "photos": len(photos), "dropped": len(dropped),
                    "per_source": per_source, "dropped_by_reason": dict(reasons.most_common())},
        "photos": [{
            "source": p.cand.source, "version": p.cand.version, "kind": p.cand.kind, "path": p.cand.path,
            "sha256": p.sha256, "bytes": len(p.cand.data), "format": p.fmt, "mode": p.mode,
            "width": p.size[0], "height": p.size[1], "downscale": p.factor,
            "downscaled": [p.small.shape[1], p.small.shape[0]] if p.small is not None else None,
            "licence": p.cand.licence, "licence_basis": p.cand.licence_basis,
            **({"licence_note": p.cand.licence_note} if p.cand.licence_note else {}),
            "split": p.split, "group": p.group, "patches": p.patches, "stats": p.stats,
        } for p in photos],
        "dropped": sorted(dropped, key=lambda d: (d["source"], d["path"])),
    }
    atomic_write_bytes(args.sources_json, (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode())
    log(f"wrote {args.sources_json}")
    for src, s in sorted(per_source.items()):
        log(f"  {src:30s} {s['photos']:4d} photos ({s['val']} val) {s['patches']:7d} patches")
    for reason, n in reasons.most_common():
        log(f"  dropped {n:4d}: {reason}")
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
