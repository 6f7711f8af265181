"""Images embedded in Qt .rcc resource bundles (GCompris ships its photos this way)."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

from photos.files import log


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
