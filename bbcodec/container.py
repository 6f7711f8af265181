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
from bbcodec.limits import (  # noqa: F401  (also read as container.MAX_...)
    LOSSY_STEP_UNIT,
    MAX_CHANNELS,
    MAX_GROUP_IMAGES,
    MAX_GROUP_PIXELS,
    MAX_IMAGES,
    MAX_INITIAL_WORDS,
    MAX_LATENT_PRECISION,
    MAX_LOSSY_STEP_UNITS,
    MAX_NAME_BYTES,
    MAX_SAMPLES,
    MAX_SIDE,
    MAX_TILE,
    MAX_TOTAL_PIXELS,
    MAX_UNITS,
    MIN_LOSSY_STEP_UNITS,
    MIN_TILE,
)
from bbcodec.tiling import ImageShape, group_shapes_from, run_lengths, unit_shape_runs_of, units_of

MAGIC = b"BBC"
FORMAT_VERSION = 2  # 2: integer coding (bbcodec.exact); 1: float coding, read by bbcodec 0.1
LEGACY_READERS = {1: "bbcodec 0.1.x"}  # older format versions and the release that reads them
FLAG_NAMES = 1
FLAG_LOSSY = 2
FLAG_TILED = 4
FLAG_ANCHORED = 8
FLAG_IMPORTANCE = 16
FLAG_WARMUP = 32  # an importance-weighted file whose leading groups are plain bits-back
FLAG_MACHINE_BOUND = 64  # probabilities from a float model: decodes only where they compute alike (named)
KNOWN_FLAGS = (FLAG_NAMES | FLAG_LOSSY | FLAG_TILED | FLAG_ANCHORED | FLAG_IMPORTANCE | FLAG_WARMUP
               | FLAG_MACHINE_BOUND)
MAX_PROFILE_BYTES = 64

@dataclass
class Header:
    """Everything a decoder needs besides the words, in the order it is written."""

    model_name: str  # "" when the weights hash alone names the model (one-image files)
    weights_hash: bytes  # first 4 bytes of the weights file's sha256
    latent_precision: int
    shapes: list[ImageShape]
    groups: list[int]  # images per network batch, in coding order
    initial_words: int
    untouched_initial_words: int
    pixel_crc: int  # CRC-32 of the images (container.pixel_crc); 0 in a lossy file
    names: list[str] | None = None
    lossy: bool = False
    lossy_step: float | None = None  # latent quantisation step of a lossy file
    lossy_draws: int = 1  # seeded draws a lossy file's reconstruction averages (bbcodec.lossy)
    latent_crc: int = 0  # a lossy file's CRC-32 of its quantised latent code (bbcodec.lossy)
    tile: int | None = None  # images larger than tile x tile are coded as tiles (bbcodec.tiling)
    anchor_step: float | None = None  # the first image's latents are sent outright (bbcodec.bitsback)
    samples: int = 1  # importance samples per image (bbcodec.importance; 1 = plain bits-back)
    # Leading groups of an importance-weighted file coded at K = 1 (bbcodec.bitsback).
    plain_groups: int = 0
    # "" for a file coded by an integer model (decodes on every machine); else the
    # machine and float kernels of a float model coded directly (bbcodec.exact.machine_bound).
    machine_bound: str = ""
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


def pixel_crc(images: list[np.ndarray]) -> int:
    """CRC-32 over every image's shape and pixels, in file order."""
    crc = 0
    for img in images:
        crc = zlib.crc32(np.asarray(img.shape, dtype="<u4").tobytes(), crc)
        crc = zlib.crc32(np.ascontiguousarray(img, dtype=np.uint8).tobytes(), crc)
    return crc


def check_packable(shapes: list[ImageShape], names: list[str] | None, tile: int | None = None) -> None:
    """Refuse, before any coding work, what :func:`unpack` would refuse to read back."""
    from bbcodec.errors import UnsupportedImageError

    if len(shapes) > MAX_IMAGES:
        raise UnsupportedImageError(f"at most {MAX_IMAGES} images per file")
    if tile is not None and not MIN_TILE <= tile <= MAX_TILE:
        raise ValueError(f"tile side must lie in [{MIN_TILE}, {MAX_TILE}]")
    for s in shapes:
        if max(s.height, s.width) > MAX_SIDE or s.channels > MAX_CHANNELS:
            raise UnsupportedImageError(f"image of {s.height}x{s.width}x{s.channels} exceeds the format's limits "
                                        f"(sides <= {MAX_SIDE}, <= {MAX_CHANNELS} channels)")
        if s.dims > MAX_GROUP_PIXELS and not tile:
            raise UnsupportedImageError(
                f"image of {s.height}x{s.width}x{s.channels} exceeds {MAX_GROUP_PIXELS} samples and the file is "
                "not tiled (bbcodec.compress tiles large images automatically)")
    if units_of(shapes, tile) > MAX_UNITS:
        raise UnsupportedImageError(f"the images make more than {MAX_UNITS} coding units")
    for name in names or []:
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"image name {name!r} is not valid UTF-8") from exc
        if len(raw) > MAX_NAME_BYTES:
            raise ValueError(f"image name longer than {MAX_NAME_BYTES} bytes")
        if b"\0" in raw:
            raise ValueError("image names cannot contain NUL")


def payload_bytes(words: np.ndarray) -> bytes:
    """The words, little-endian, without the high zero bytes of the last (top) word.

    The top word is the ANS head's upper half: never 0, often small. Dropping its
    leading zero bytes saves 1.5 bytes per file on average, which matters only for
    one-image files, and the reader restores them by padding with zeros.
    """
    raw = np.asarray(words, dtype="<u4").tobytes()
    if raw and int(words[-1]) == 0:
        raise ValueError("the top ANS word must be nonzero")
    end = len(raw)
    while end % 4 != 1 and end > 0 and raw[end - 1] == 0:
        end -= 1
    return raw[:end]


def _put_step(out: bytearray, step: float | None) -> None:
    units = round((step or 0.0) / LOSSY_STEP_UNIT)
    if not MIN_LOSSY_STEP_UNITS <= units <= MAX_LOSSY_STEP_UNITS or units * LOSSY_STEP_UNIT != step:
        raise ValueError("a quantisation step must be a multiple of 1/256 in [1/64, 16]")
    _put_varint(out, units)


def pack(header: Header, words: np.ndarray) -> bytes:
    _check_header(header)
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out.append(_flags(header))
    name = header.model_name.encode("ascii")
    out.append(len(name))
    out += name
    out += header.weights_hash
    out.append(header.latent_precision)
    _put_runs(out, run_lengths([(s.height, s.width, s.channels) for s in header.shapes]))
    _put_runs(out, run_lengths(header.groups), count_first=False)
    _put_varint(out, header.initial_words)
    _put_varint(out, header.untouched_initial_words)
    out += (header.latent_crc if header.lossy else header.pixel_crc).to_bytes(4, "little")
    _put_options(out, header)
    if header.names is not None:
        _put_names(out, header.names)
    out += payload_bytes(words)
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


def _per_image(header: Header) -> int:
    """One slot counts the importance samples, or in a lossy file the draws (never both)."""
    return header.lossy_draws if header.lossy else header.samples


def _check_header(header: Header) -> None:
    """Refuse (ValueError) a header that :func:`unpack` would refuse or misread."""
    check_packable(header.shapes, header.names, header.tile)
    if not 2 <= header.latent_precision <= MAX_LATENT_PRECISION:
        raise ValueError(f"latent precision must lie in [2, {MAX_LATENT_PRECISION}]")
    if not (1 <= header.samples <= MAX_SAMPLES and 1 <= header.lossy_draws <= MAX_SAMPLES):
        raise ValueError(f"importance samples and lossy draws must lie in [1, {MAX_SAMPLES}]")
    if header.lossy and header.samples != 1:
        raise ValueError("importance samples need a bits-back chain; a lossy file has none")
    if header.lossy and header.anchor_step is not None:
        raise ValueError("a lossy file has no bits-back chain to anchor")
    if header.plain_groups and (header.lossy or header.samples < 2 or header.plain_groups > len(header.groups)):
        raise ValueError("warm-up groups belong to an importance-weighted file and cannot outnumber its groups")
    if not len(header.model_name.encode("ascii")) < 256:
        raise ValueError("model name must be 0..255 ASCII bytes")
    if len(header.weights_hash) != 4:
        raise ValueError("weights_hash must be 4 bytes")
    if len(header.machine_bound.encode("ascii")) > MAX_PROFILE_BYTES:
        raise ValueError(f"a machine profile name has at most {MAX_PROFILE_BYTES} ASCII bytes")


def _flags(header: Header) -> int:
    return ((FLAG_NAMES if header.names is not None else 0) | (FLAG_LOSSY if header.lossy else 0)
            | (FLAG_TILED if header.tile else 0) | (FLAG_ANCHORED if header.anchor_step is not None else 0)
            | (FLAG_IMPORTANCE if _per_image(header) > 1 else 0) | (FLAG_WARMUP if header.plain_groups else 0)
            | (FLAG_MACHINE_BOUND if header.machine_bound else 0))


def _put_runs(out: bytearray, runs: list[tuple[object, int]], count_first: bool = True) -> None:
    """Shape runs as (count, h, w, c); group runs as (size, count)."""
    _put_varint(out, len(runs))
    for value, count in runs:
        fields = (count, *value) if count_first else (value, count)
        for v in fields:
            _put_varint(out, v)


def _put_options(out: bytearray, header: Header) -> None:
    """The flagged fields, in the order :func:`unpack` reads them."""
    if header.lossy:
        _put_step(out, header.lossy_step)
    if header.anchor_step is not None:
        _put_step(out, header.anchor_step)
    if _per_image(header) > 1:
        _put_varint(out, _per_image(header))
    if header.plain_groups:
        _put_varint(out, header.plain_groups)
    if header.tile:
        _put_varint(out, header.tile)
    if header.machine_bound:
        profile = header.machine_bound.encode("ascii")
        out.append(len(profile))
        out += profile


def _put_names(out: bytearray, names: list[str]) -> None:
    raw = b"\0".join(n.encode("utf-8") for n in names)
    packed = zlib.compress(raw, 9)
    method, block = (1, packed) if len(packed) < len(raw) else (0, raw)
    out.append(method)
    _put_varint(out, len(block))
    out += block


# --- reading -------------------------------------------------------------------------


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Parse and validate a .bbc file; raises FormatError on anything malformed."""
    body = _checked_body(data)
    r = _Reader(body)
    r.take(4)
    flags = r.byte()
    if flags & ~KNOWN_FLAGS:
        raise FormatError(f"unknown flags {flags:#x}")
    model_name, weights_hash, precision = _read_model(r)
    shapes = _read_shapes(r)
    group_runs, covered = _read_group_runs(r)
    initial = r.varint(MAX_INITIAL_WORDS, "initial words")
    untouched = r.varint(initial, "untouched initial words")
    crc = int.from_bytes(r.take(4), "little")
    options = _read_options(r, flags)
    tile = options["tile"]
    if units_of(shapes, tile) > MAX_UNITS:
        raise FormatError("the declared images make too many coding units")
    if tile is None and any(s.dims > MAX_GROUP_PIXELS for s in shapes):
        raise FormatError("an untiled image declares more samples than one batch may hold")
    options["machine_bound"] = _read_profile(r) if flags & FLAG_MACHINE_BOUND else ""
    if covered != units_of(shapes, tile):
        raise FormatError("groups do not cover the declared images")
    groups = [size for size, count in group_runs for _ in range(count)]
    if options["plain_groups"] > len(groups):
        raise FormatError("the file declares more warm-up groups than it has groups")
    names = _read_names(r, len(shapes)) if flags & FLAG_NAMES else None
    words = _read_words(body, r.pos)
    lossy, per_image = bool(flags & FLAG_LOSSY), options.pop("per_image")
    header = Header(model_name, weights_hash, precision, shapes, groups, initial, untouched, 0 if lossy else crc,
                    names, lossy=lossy, lossy_draws=per_image if lossy else 1, latent_crc=crc if lossy else 0,
                    samples=1 if lossy else per_image, **options)
    _check_groups_uniform(unit_shape_runs(header), groups, header.lossy_draws)
    return header, words


def _checked_body(data: bytes) -> bytes:
    """The file without its CRC, after checking magic, version and CRC."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if len(data) < 8 or data[:3] != MAGIC:
        raise FormatError("not a .bbc file (bad magic bytes)")
    if data[3] in LEGACY_READERS:
        raise FormatError(f"this .bbc file has format version {data[3]} (float coding), which "
                          f"{LEGACY_READERS[data[3]]} reads; this bbcodec reads version {FORMAT_VERSION}")
    if data[3] != FORMAT_VERSION:
        raise FormatError(f"unsupported .bbc format version {data[3]} (this bbcodec reads version {FORMAT_VERSION})")
    body, stored_crc = data[:-4], int.from_bytes(data[-4:], "little")
    if zlib.crc32(body) != stored_crc:
        raise FormatError("file checksum mismatch: the file is truncated or corrupted")
    return body


def _read_model(r: _Reader) -> tuple[str, bytes, int]:
    name_len = r.byte()
    try:
        model_name = r.take(name_len).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError("model name is not ASCII") from exc
    weights_hash = r.take(4)
    precision = r.byte()
    if not 2 <= precision <= MAX_LATENT_PRECISION:
        raise FormatError(f"latent precision {precision} out of range")
    return model_name, weights_hash, precision


def _read_shapes(r: _Reader) -> list[ImageShape]:
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
    return shapes


def _read_group_runs(r: _Reader) -> tuple[list[tuple[int, int]], int]:
    """(size, count) runs of the groups and the coding units they cover."""
    group_runs, covered = [], 0
    for _ in range(r.varint(MAX_UNITS, "group runs")):
        size = r.varint(MAX_GROUP_IMAGES, "group size")
        count = r.varint(MAX_UNITS, "group count")
        if size == 0 or count == 0:
            raise FormatError("empty group")
        group_runs.append((size, count))
        covered += size * count
        if covered > MAX_UNITS:
            raise FormatError("groups cover more coding units than a file may hold")
    return group_runs, covered


def _read_options(r: _Reader, flags: int) -> dict:
    """The flagged fields: steps, the per-image count, warm-up groups and the tile side."""
    if flags & FLAG_LOSSY and flags & FLAG_ANCHORED:
        raise FormatError("a lossy file declares an anchored bits-back chain")
    lossy_step = _read_step(r, "lossy step") if flags & FLAG_LOSSY else None
    anchor_step = _read_step(r, "anchor step") if flags & FLAG_ANCHORED else None
    per_image = 1
    if flags & FLAG_IMPORTANCE:
        per_image = r.varint(MAX_SAMPLES, "lossy draws" if flags & FLAG_LOSSY else "importance samples")
        if per_image < 2:
            raise FormatError("the importance flag needs at least 2 samples (or lossy draws)")
    plain_groups = 0
    if flags & FLAG_WARMUP:
        if flags & FLAG_LOSSY or not flags & FLAG_IMPORTANCE:
            raise FormatError("warm-up groups are declared by a file that is not importance-weighted")
        plain_groups = r.varint(MAX_UNITS, "warm-up groups")
        if plain_groups == 0:
            raise FormatError("the warm-up flag needs at least one warm-up group")
    tile = None
    if flags & FLAG_TILED:
        tile = r.varint(MAX_TILE, "tile side")
        if tile < MIN_TILE:
            raise FormatError(f"tile side {tile} is below the minimum {MIN_TILE}")
    return {"lossy_step": lossy_step, "anchor_step": anchor_step, "per_image": per_image,
            "plain_groups": plain_groups, "tile": tile}


def _read_profile(r: _Reader) -> str:
    length = r.byte()
    if not 0 < length <= MAX_PROFILE_BYTES:
        raise FormatError(f"machine profile name of {length} bytes (1..{MAX_PROFILE_BYTES} allowed)")
    try:
        return r.take(length).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError("machine profile name is not ASCII") from exc


def _read_words(body: bytes, pos: int) -> np.ndarray:
    payload = body[pos:] + bytes(-(len(body) - pos) % 4)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    if len(words) and words[-1] == 0:
        raise FormatError("the coded data is malformed (its top word is zero)")
    return words


def _read_step(r: _Reader, what: str) -> float:
    units = r.varint(MAX_LOSSY_STEP_UNITS, what)
    if units < MIN_LOSSY_STEP_UNITS:
        raise FormatError(f"{what} {units} units is below the minimum {MIN_LOSSY_STEP_UNITS}")
    return units * LOSSY_STEP_UNIT


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


def _check_groups_uniform(unit_runs: list[tuple[ImageShape, int]], groups: list[int], copies: int = 1) -> None:
    """Every group holds coding units of one shape, within the batch limits (a lossy
    file decodes ``copies`` draws of each unit in one batch)."""
    shapes = iter(group_shapes_from(unit_runs, groups))
    for size in groups:
        shape = next(shapes)
        if shape is None:
            raise FormatError("a group mixes image shapes")
        if size * copies * shape.dims > MAX_GROUP_PIXELS:  # also bounds a group's table memory
            raise FormatError("a group declares more pixels than one batch may hold")


def unit_shape_runs(header: Header) -> list[tuple[ImageShape, int]]:
    """(shape, count) runs of the header's coding units in coding order."""
    return unit_shape_runs_of(header.shapes, header.tile)


def group_shapes(header: Header) -> list[ImageShape]:
    """The shape shared by the coding units of each group (of a validated header)."""
    shapes = group_shapes_from(unit_shape_runs(header), header.groups)
    assert all(s is not None for s in shapes)
    return shapes  # type: ignore[return-value]
