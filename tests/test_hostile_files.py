"""Hostile .bbc files: hypothesis-driven mutations of real files never crash, hang or
return wrong pixels; interrupted or failing CLI runs leave nothing behind."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bbcodec
from tests.conftest import random_digits

IMAGES = list(random_digits(3, 21))


@pytest.fixture(scope="module")
def valid_file(tiny_zoo):
    import os

    old = os.environ.get("BBCODEC_MODELS_DIR")
    os.environ["BBCODEC_MODELS_DIR"] = str(tiny_zoo)
    try:
        yield bbcodec.compress(IMAGES, model="tiny", names=["a.png", "b.png", "c.png"])
    finally:
        if old is None:
            os.environ.pop("BBCODEC_MODELS_DIR")
        else:
            os.environ["BBCODEC_MODELS_DIR"] = old


def _decode_outcome(data: bytes) -> str:
    try:
        out = bbcodec.decompress(data)
    except bbcodec.BBCodecError:
        return "refused"
    assert len(out) == len(IMAGES) and all((a == b).all() for a, b in zip(out, IMAGES)), "WRONG PIXELS"
    return "exact"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_files_are_refused_or_exact(zoo_env, valid_file, data):
    body = bytearray(valid_file[:-4])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), min_size=1, max_size=4))
    for pos, value in edits:
        body[pos] = value
    fix_crc = data.draw(st.booleans())
    tail = zlib.crc32(bytes(body)).to_bytes(4, "little") if fix_crc else valid_file[-4:]
    cut = data.draw(st.integers(0, len(body) + 4))
    _decode_outcome((bytes(body) + tail)[: cut if data.draw(st.booleans()) else None])


def test_absent_model_is_named(zoo_env, valid_file, monkeypatch, tmp_path):
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(tmp_path))
    with pytest.raises(bbcodec.ModelMismatchError, match="needs model 'tiny'"):
        bbcodec.decompress(valid_file)


def test_ctrl_c_leaves_no_output(zoo_env, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image

    from bbcodec import cli

    src = tmp_path / "d.png"
    Image.fromarray(IMAGES[0]).save(src)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.bbcodec, "compress", interrupted)
    r = CliRunner().invoke(cli.main, ["encode", str(src), "-o", str(tmp_path / "out.bbc")])
    assert r.exit_code == 130 and "interrupted" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_write_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    import os

    from bbcodec import cli

    def disk_full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: disk_full(fd, b""))
    with pytest.raises(cli.OutputError, match="No space left"):
        cli.atomic_write(tmp_path / "x.bbc", b"data", force=False)
    assert list(tmp_path.iterdir()) == []
