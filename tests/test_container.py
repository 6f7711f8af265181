"""The .bbc container: round trips, compact headers, and hostile bytes -> FormatError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbcodec import container
from bbcodec.container import Header, ImageShape
from bbcodec.errors import FormatError


def _header(n=3, names=None, machine_bound=""):
    return Header(model_name="mnist", weights_hash=b"\x01\x02\x03\x04", latent_precision=8,
                  shapes=[ImageShape(28, 28, 1)] * n, groups=[1] * n, initial_words=4096,
                  untouched_initial_words=4000, pixel_crc=0xDEADBEEF, names=names, machine_bound=machine_bound)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300), st.sampled_from([1, 3])), min_size=1, max_size=20),
       st.lists(st.integers(0, 2**32 - 1), max_size=49), st.integers(1, 2**32 - 1), st.booleans(),
       st.integers(2, 12))
def test_pack_unpack_round_trip(shapes, lower_words, top_word, with_names, precision):
    words = lower_words + [top_word]  # the coder's top word (ANS head's upper half) is never 0
    sh = [ImageShape(*s) for s in shapes]
    groups, start = [], 0
    while start < len(sh):  # groups of equal shape, as the encoder makes them
        size = 1
        while start + size < len(sh) and sh[start + size] == sh[start] and size < 3:
            size += 1
        groups.append(size)
        start += size
    names = [f"img{i}.png" for i in range(len(sh))] if with_names else None
    h = Header("m", b"abcd", precision, sh, groups, 10, 3, 123, names)
    data = container.pack(h, np.array(words, dtype=np.uint32))
    h2, w2 = container.unpack(data)
    assert h2 == h
    assert w2.tolist() == words


def test_zero_top_word_is_refused_not_truncated():
    # Trimming the top word's high zero bytes is only reversible when that word is nonzero.
    with pytest.raises(ValueError, match="nonzero"):
        container.pack(_header(), np.array([5, 0], dtype=np.uint32))


def test_single_image_header_is_small():
    data = container.pack(_header(1), np.zeros(0, np.uint32))
    assert len(data) <= 40, len(data)


def test_bad_magic_version_and_empty():
    good = container.pack(_header(), np.arange(5, dtype=np.uint32))
    for bad in (b"", b"BBC", b"PNG\x89" + good[4:], good[:3] + b"\x09" + good[4:]):
        with pytest.raises(FormatError):
            container.unpack(bad)


def test_every_truncation_and_bit_flip_is_caught():
    good = container.pack(_header(names=["a.png", "b.png", "c.png"]), np.arange(20, dtype=np.uint32))
    for cut in range(len(good)):
        with pytest.raises(FormatError):
            container.unpack(good[:cut])
    for i in range(len(good)):
        for bit in (0, 3, 7):
            flipped = bytearray(good)
            flipped[i] ^= 1 << bit
            with pytest.raises(FormatError):
                container.unpack(bytes(flipped))


def _repack_crc(body: bytes) -> bytes:
    import zlib

    return body + zlib.crc32(body).to_bytes(4, "little")


def test_edited_header_fields_with_valid_crc_are_refused_before_allocation():
    # 10^7 images of 65536 x 65536 declared in a few bytes: refused by limits, not allocated.
    body = bytearray(b"BBC\x02\x00\x05mnist\x01\x02\x03\x04\x08")
    container._put_varint(body, 1)
    for v in (10_000_000, 65536, 65536, 1):
        container._put_varint(body, v)
    with pytest.raises(FormatError, match="limit"):
        container.unpack(_repack_crc(bytes(body)))


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(blob):
    for data in (blob, b"BBC\x02" + blob, _repack_crc(b"BBC\x02" + blob)):
        try:
            container.unpack(data)
        except FormatError:
            pass


def test_a_group_too_large_for_memory_is_refused(monkeypatch):
    h = _header(1)
    h.shapes = [ImageShape(4096, 4096, 1)]
    monkeypatch.setattr(container, "check_packable", lambda *a: None)  # forge what bbcodec never writes
    with pytest.raises(FormatError, match="more (pixels|samples) than one batch"):
        container.unpack(container.pack(h, np.arange(3, dtype=np.uint32)))


def test_many_group_runs_parse_in_linear_time():
    import time

    n = 50000  # one shape run of n 1x1 images, then n group runs of (1, 1): ~150 KB
    body = bytearray(b"BBC\x02\x00\x01m" + b"abcd" + b"\x08")
    for v in (1, n, 1, 1, 1, n):
        container._put_varint(body, v)
    body += b"\x01\x01" * n
    for v in (10, 3):
        container._put_varint(body, v)
    body += b"\x00" * 4 + np.arange(1, 3, dtype="<u4").tobytes()
    t = time.perf_counter()
    header, _ = container.unpack(_repack_crc(bytes(body)))
    assert header.groups == [1] * n
    assert time.perf_counter() - t < 2.0


def test_encoder_refuses_what_the_parser_would_refuse():
    from bbcodec.errors import UnsupportedImageError

    with pytest.raises(UnsupportedImageError):
        container.check_packable([ImageShape(1, 70000, 1)], None)
    with pytest.raises(ValueError):
        container.check_packable([ImageShape(2, 2, 1)], ["x" * 5000])
    with pytest.raises(ValueError):
        container.check_packable([ImageShape(2, 2, 1)], ["bad\udcff.png"])


def test_warm_up_groups_round_trip_and_are_refused_where_they_cannot_belong():
    words = np.array([7, 9], dtype=np.uint32)
    header = _header(n=3)
    header.samples, header.plain_groups = 8, 2
    back, _ = container.unpack(container.pack(header, words))
    assert (back.samples, back.plain_groups) == (8, 2)
    for samples, plain in ((1, 1), (8, 4)):  # not importance-weighted; more than the 3 groups
        header.samples, header.plain_groups = samples, plain
        with pytest.raises(ValueError, match="warm-up"):
            container.pack(header, words)
    # The parser refuses the same edits made behind the encoder's back.
    header.samples, header.plain_groups = 8, 2
    data = bytearray(container.pack(header, words)[:-4])
    flags_at = 4
    no_importance = bytes(data[:flags_at]) + bytes([data[flags_at] & ~container.FLAG_IMPORTANCE]) + bytes(data[flags_at + 1:])
    with pytest.raises(FormatError, match="warm-up"):
        container.unpack(_repack_crc(no_importance))


def test_float_format_files_name_the_release_that_reads_them():
    old = (Path(__file__).resolve().parent / "golden" / "v1" / "digits.bbc").read_bytes()
    with pytest.raises(FormatError, match=r"format version 1 .*bbcodec 0\.1"):
        container.unpack(old)


def test_machine_bound_flag_round_trips():
    header = _header(machine_bound="float model, x86_64/avx512")
    assert container.unpack(container.pack(header, np.arange(3, dtype=np.uint32)))[0].machine_bound == header.machine_bound


def test_a_lossy_header_keeps_its_draws_and_latent_crc_apart_from_samples_and_pixels():
    words = np.array([7, 9], dtype=np.uint32)
    header = _header(n=2)
    header.initial_words = header.untouched_initial_words = 0
    header.pixel_crc, header.lossy, header.lossy_step = 0, True, 1.0
    header.lossy_draws, header.latent_crc = 16, 0xC0FFEE
    back, _ = container.unpack(container.pack(header, words))
    assert (back.lossy_draws, back.latent_crc, back.samples, back.pixel_crc) == (16, 0xC0FFEE, 1, 0)
    header.samples = 4
    with pytest.raises(ValueError, match="bits-back chain"):
        container.pack(header, words)
