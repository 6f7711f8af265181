"""The .bbc file format: bytes <-> (header, ANS words). Spec: docs/FORMAT.md.

Everything is little-endian; counts are LEB128 varints so a one-image file pays a
few dozen bytes of header. Parsing checks every declared size against hard limits
and against the bytes actually present *before* allocating anything, and the whole
file carries a CRC-32, so a truncated or edited file is a FormatError, never a crash
or a memory blow-up.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from bbcodec.errors import FormatError

MAGIC = b"BBC"
FORMAT_VERSION = 1
FLAG_NAMES = 1
FLAG_LOSSY = 2
KNOWN_FLAGS = FLAG_NAMES | FLAG_LOSSY

MAX_IMAGES = 10_000_000
MAX_SIDE = 1 << 16
MAX_CHANNELS = 4
MAX_TOTAL_PIXELS = 1 << 34
MAX_NAME_BYTES = 4096
MAX_INITIAL_WORDS = 1 << 24
MAX_GROUP_PIXELS = 1 << 22  # one network batch: bounds the decoder's memory (~1 GB of activations)
MAX_GROUP_IMAGES = 4096
MAX_LATENT_PRECISION = 12
LOSSY_STEP_UNIT = 1.0 / 256.0  # lossy files store their quantisation step in these units
MIN_LOSSY_STEP_UNITS, MAX_LOSSY_STEP_UNITS = 4, 4096  # steps 1/64 .. 16


@dataclass(frozen=True)
class ImageShape:
    """One image's geometry: height, width and channels (1 = grayscale, 3 = RGB)."""

    height: int
    width: int
    channels: int

    @property
    def dims(self) -> int:
        return self.height * self.width * self.channels


@dataclass
class Header:
    """Everything a decoder needs besides the words, in the order it is written."""

    model_name: str
    weights_hash: bytes  # first 4 bytes of the weights file's sha256
    latent_precision: int
    shapes: list[ImageShape]
    groups: list[int]  # images per network batch, in coding order
    initial_words: int
    untouched_initial_words: int
    pixel_crc: int
    names: list[str] | None = None
    lossy: bool = False
    lossy_step: float | None = None  # latent quantisation step of a lossy file
    extra: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.shapes)


# --- varints ------------------------------------------------------------------------


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("varints are unsigned")
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise FormatError("file is truncated (header ends early)")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError("file is truncated (header ends early)")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def varint(self, limit: int, what: str) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise FormatError(f"{what}: varint too long")
        if value > limit:
            raise FormatError(f"{what} = {value} exceeds the limit {limit}")
        return value


def _runs(values: list) -> list[tuple[object, int]]:
    runs: list[tuple[object, int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    return runs


# --- writing -------------------------------------------------------------------------


def pixel_crc(images: list[np.ndarray]) -> int:
    """CRC-32 over every image's shape and pixels, in file order."""
    crc = 0
    for img in images:
        crc = zlib.crc32(np.asarray(img.shape, dtype="<u4").tobytes(), crc)
        crc = zlib.crc32(np.ascontiguousarray(img, dtype=np.uint8).tobytes(), crc)
    return crc


def check_packable(shapes: list[ImageShape], names: list[str] | None) -> None:
    """Refuse, before any coding work, what :func:`unpack` would refuse to read back."""
    from bbcodec.errors import UnsupportedImageError

    if len(shapes) > MAX_IMAGES:
        raise UnsupportedImageError(f"at most {MAX_IMAGES} images per file")
    for s in shapes:
        if max(s.height, s.width) > MAX_SIDE or s.channels > MAX_CHANNELS:
            raise UnsupportedImageError(f"image of {s.height}x{s.width}x{s.channels} exceeds the format's limits "
                                        f"(sides <= {MAX_SIDE}, <= {MAX_CHANNELS} channels)")
        if s.dims > MAX_GROUP_PIXELS:
            raise UnsupportedImageError(
                f"image of {s.height}x{s.width}x{s.channels} exceeds {MAX_GROUP_PIXELS} samples; this version codes "
                "an image in one piece (tiled coding of large photos is not implemented yet)")
    for name in names or []:
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"image name {name!r} is not valid UTF-8") from exc
        if len(raw) > MAX_NAME_BYTES:
            raise ValueError(f"image name longer than {MAX_NAME_BYTES} bytes")
        if b"\0" in raw:
            raise ValueError("image names cannot contain NUL")


def pack(header: Header, words: np.ndarray) -> bytes:
    check_packable(header.shapes, header.names)
    if not 2 <= header.latent_precision <= MAX_LATENT_PRECISION:
        raise ValueError(f"latent precision must lie in [2, {MAX_LATENT_PRECISION}]")
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    flags = (FLAG_NAMES if header.names is not None else 0) | (FLAG_LOSSY if header.lossy else 0)
    out.append(flags)
    name = header.model_name.encode("ascii")
    if not 0 < len(name) < 256:
        raise ValueError("model name must be 1..255 ASCII bytes")
    out.append(len(name))
    out += name
    if len(header.weights_hash) != 4:
        raise ValueError("weights_hash must be 4 bytes")
    out += header.weights_hash
    out.append(header.latent_precision)
    shape_runs = _runs([(s.height, s.width, s.channels) for s in header.shapes])
    _put_varint(out, len(shape_runs))
    for (h, w, c), count in shape_runs:
        for v in (count, h, w, c):
            _put_varint(out, v)
    group_runs = _runs(header.groups)
    _put_varint(out, len(group_runs))
    for size, count in group_runs:
        _put_varint(out, size)
        _put_varint(out, count)
    _put_varint(out, header.initial_words)
    _put_varint(out, header.untouched_initial_words)
    out += header.pixel_crc.to_bytes(4, "little")
    if header.lossy:
        units = round((header.lossy_step or 0.0) / LOSSY_STEP_UNIT)
        if not MIN_LOSSY_STEP_UNITS <= units <= MAX_LOSSY_STEP_UNITS:
            raise ValueError("a lossy file needs a quantisation step in [1/64, 16]")
        _put_varint(out, units)
    if header.names is not None:
        raw = b"\0".join(n.encode("utf-8") for n in header.names)
        packed = zlib.compress(raw, 9)
        method, block = (1, packed) if len(packed) < len(raw) else (0, raw)
        out.append(method)
        _put_varint(out, len(block))
        out += block
    out += np.asarray(words, dtype="<u4").tobytes()
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


# --- reading -------------------------------------------------------------------------


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Parse and validate a .bbc file; raises FormatError on anything malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if len(data) < 8 or data[:3] != MAGIC:
        raise FormatError("not a .bbc file (bad magic bytes)")
    if data[3] != FORMAT_VERSION:
        raise FormatError(f"unsupported .bbc format version {data[3]} (this bbcodec reads version {FORMAT_VERSION})")
    body, stored_crc = data[:-4], int.from_bytes(data[-4:], "little")
    if zlib.crc32(body) != stored_crc:
        raise FormatError("file checksum mismatch: the file is truncated or corrupted")
    r = _Reader(body)
    r.take(4)
    flags = r.byte()
    if flags & ~KNOWN_FLAGS:
        raise FormatError(f"unknown flags {flags:#x}")
    name_len = r.byte()
    if name_len == 0:
        raise FormatError("empty model name")
    try:
        model_name = r.take(name_len).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError("model name is not ASCII") from exc
    weights_hash = r.take(4)
    precision = r.byte()
    if not 2 <= precision <= MAX_LATENT_PRECISION:
        raise FormatError(f"latent precision {precision} out of range")
    shapes: list[ImageShape] = []
    total_pixels = 0
    for _ in range(r.varint(MAX_IMAGES, "shape runs")):
        count = r.varint(MAX_IMAGES - len(shapes), "images in a shape run")
        h, w = r.varint(MAX_SIDE, "height"), r.varint(MAX_SIDE, "width")
        c = r.varint(MAX_CHANNELS, "channels")
        if count == 0 or h == 0 or w == 0 or c == 0:
            raise FormatError("zero-sized image run")
        total_pixels += count * h * w * c
        if total_pixels > MAX_TOTAL_PIXELS:
            raise FormatError("declared pixel count exceeds the limit")
        shapes.extend([ImageShape(h, w, c)] * count)
    if not shapes:
        raise FormatError("file declares no images")
    groups: list[int] = []
    covered = 0
    for _ in range(r.varint(len(shapes), "group runs")):
        size = r.varint(min(len(shapes), MAX_GROUP_IMAGES), "group size")
        count = r.varint(len(shapes), "group count")
        if size == 0 or count == 0:
            raise FormatError("empty group")
        covered += size * count
        if covered > len(shapes):
            raise FormatError("groups cover more images than the file declares")
        groups.extend([size] * count)
    if covered != len(shapes):
        raise FormatError("groups do not cover the declared images")
    _check_groups_uniform(shapes, groups)
    initial = r.varint(MAX_INITIAL_WORDS, "initial words")
    untouched = r.varint(initial, "untouched initial words")
    crc = int.from_bytes(r.take(4), "little")
    lossy_step = None
    if flags & FLAG_LOSSY:
        units = r.varint(MAX_LOSSY_STEP_UNITS, "lossy step")
        if units < MIN_LOSSY_STEP_UNITS:
            raise FormatError(f"lossy step {units} units is below the minimum {MIN_LOSSY_STEP_UNITS}")
        lossy_step = units * LOSSY_STEP_UNIT
    names = _read_names(r, len(shapes)) if flags & FLAG_NAMES else None
    rest = len(body) - r.pos
    if rest % 4:
        raise FormatError("payload is not a whole number of 32-bit words")
    words = np.frombuffer(body, dtype="<u4", offset=r.pos).astype(np.uint32)
    header = Header(model_name, weights_hash, precision, shapes, groups, initial, untouched, crc, names,
                    lossy=bool(flags & FLAG_LOSSY), lossy_step=lossy_step)
    return header, words


def _read_names(r: _Reader, count: int) -> list[str]:
    """The names block: UTF-8 names joined by NUL (names never hold NUL), stored raw
    (method 0) or zlib-compressed (method 1), whichever is shorter."""
    method = r.byte()
    if method not in (0, 1):
        raise FormatError(f"unknown names method {method}")
    block = r.take(r.varint(len(r.data), "names block length"))
    limit = count * (MAX_NAME_BYTES + 1)
    if method == 0:
        raw = block
    else:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(block, limit)
        except zlib.error as exc:
            raise FormatError("the names block is corrupt") from exc
        if inflater.unconsumed_tail or not inflater.eof:
            raise FormatError("the names block is corrupt or too large")
    parts = raw.split(b"\0")
    if len(parts) != count or any(len(p) > MAX_NAME_BYTES for p in parts):
        raise FormatError("the names block does not hold one name per image")
    try:
        return [p.decode("utf-8") for p in parts]
    except UnicodeDecodeError as exc:
        raise FormatError("an image name is not UTF-8") from exc


def _check_groups_uniform(shapes: list[ImageShape], groups: list[int]) -> None:
    start = 0
    for size in groups:
        if len(set(shapes[start : start + size])) != 1:
            raise FormatError("a group mixes image shapes")
        if size * shapes[start].dims > MAX_GROUP_PIXELS:  # also bounds a group's table memory
            raise FormatError("a group declares more pixels than one batch may hold")
        start += size


def group_shapes(header: Header) -> list[ImageShape]:
    """The shape shared by the images of each group."""
    out, start = [], 0
    for size in header.groups:
        out.append(header.shapes[start])
        start += size
    return out
