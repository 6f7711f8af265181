"""The CLI as a user drives it (click's CliRunner), on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbcodec.cli import main
from tests.conftest import random_digits


@pytest.fixture()
def digits(tmp_path) -> list[Path]:
    paths = []
    for i, img in enumerate(random_digits(3, 7)):
        p = tmp_path / f"digit{i}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_encode_decode_many_restores_names(zoo_env, digits, tmp_path):
    out = tmp_path / "all.bbc"
    r = run("encode", *digits, "-o", out, "--model", "tiny")
    assert r.exit_code == 0, r.output
    r = run("decode", out, "-o", tmp_path / "restored")
    assert r.exit_code == 0, r.output
    for p in digits:
        restored = np.asarray(Image.open(tmp_path / "restored" / p.name))
        np.testing.assert_array_equal(restored, np.asarray(Image.open(p)))


def test_single_image_verify_and_info_json(zoo_env, digits, tmp_path):
    out = tmp_path / "one.bbc"
    assert run("encode", digits[0], "-o", out, "--verify", "--model", "tiny").exit_code == 0
    r = run("info", out, "--json")
    info = json.loads(r.output)
    assert info["n_images"] == 1 and info["bits_per_dim"] > 0 and info["model"] == "tiny"
    png = tmp_path / "back.png"
    assert run("decode", out, "-o", png).exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(digits[0])))


def test_never_overwrites_without_force(zoo_env, digits, tmp_path):
    out = tmp_path / "x.bbc"
    out.write_bytes(b"precious")
    r = run("encode", digits[0], "-o", out, "--model", "tiny")
    assert r.exit_code == 8 and out.read_bytes() == b"precious"
    assert run("encode", digits[0], "-o", out, "--force", "--model", "tiny").exit_code == 0
    assert out.read_bytes()[:3] == b"BBC"


def test_stdin_stdout(zoo_env, digits):
    r = CliRunner().invoke(main, ["encode", "-", "-o", "-", "--model", "tiny"], input=digits[0].read_bytes())
    assert r.exit_code == 0
    data = r.stdout_bytes
    r = CliRunner().invoke(main, ["decode", "-", "-o", "-"], input=data)
    assert r.exit_code == 0
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_have_exit_codes_and_leave_nothing(zoo_env, digits, tmp_path):
    bad = tmp_path / "bad.bbc"
    bad.write_bytes(b"not a bbc file at all")
    r = run("decode", bad, "-o", tmp_path / "o.png")
    assert r.exit_code == 3 and "not a .bbc file" in r.output and not (tmp_path / "o.png").exists()
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8)).save(rgba)
    r = run("encode", rgba, "-o", tmp_path / "r.bbc")
    assert r.exit_code == 6 and "alpha" in r.output and not (tmp_path / "r.bbc").exists()
    r = run("encode", digits[0], "-o", tmp_path / "m.bbc", "--model", "nonexistent")
    assert r.exit_code == 4 and "not installed" in r.output
    assert list(tmp_path.glob("*.partial")) == [] and list(tmp_path.glob(".*partial")) == []


def test_models_lists_shipped(zoo_env):
    r = run("models", "--json")
    names = [m["name"] for m in json.loads(r.output)]
    assert "tiny" in names and "tiny-rgb" in names


def test_models_show_the_speed_a_bench_run_measured(tiny_zoo, tmp_path, monkeypatch):
    import shutil

    from bench.speed import bbcodec_row, write_model_speeds

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo / "tiny", zoo / "tiny")
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(zoo))
    row = bbcodec_row("tiny", list(random_digits(6, 9)))
    result = {"stamp": {"cpu": "test CPU", "cores": 2, "commit": "0" * 40}, "datasets": [{"title": "six", "rows": [row]}]}
    assert write_model_speeds(result, zoo) == [zoo / "tiny" / "speed.json"]
    listed = {m["name"]: m for m in json.loads(run("models", "--json").output)}
    assert listed["tiny"]["speed"]["decode_img_per_s"] == row["decode_img_per_s"] > 0
    assert listed["tiny"]["speed"]["cpu"] == "test CPU" and listed["tiny"]["speed"]["images"] == 6
    assert f"{row['encode_img_per_s']:.0f} / {row['decode_img_per_s']:.0f} img/s" in run("models").output


def test_float_weights_without_an_integer_form_are_no_model_and_name_the_one_that_codes_them(
        tiny_zoo, tmp_path, digits, monkeypatch):
    """A folder of float weights whose integer form is another model's (that model's recipe
    derives from it) is not listed, and naming it says which model to use."""
    import shutil

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo / "tiny-vlae-int8", zoo / "tiny-vlae-int8")
    (zoo / "tiny-vlae").mkdir()
    shutil.copy(tiny_zoo / "tiny-vlae" / "weights.safetensors", zoo / "tiny-vlae")
    (zoo / "tiny-vlae-int8" / "recipe.json").write_text(json.dumps({"derived_from": "tiny-vlae"}))
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(zoo))
    names = {m["name"] for m in json.loads(run("models", "--json").output)}
    assert "tiny-vlae-int8" in names and "tiny-vlae" not in names
    assert not [line for line in run("models").output.splitlines() if line.split()[0] == "tiny-vlae"]
    r = run("encode", digits[0], "-o", tmp_path / "v.bbc", "--model", "tiny-vlae")
    assert r.exit_code == 4 and "'tiny-vlae' is retired" in r.output and "--model tiny-vlae-int8" in r.output
    assert "still decode" not in r.output  # no integer form of its own: nothing of it decodes


def test_help_teaches():
    r = run("--help")
    assert "bits/dim" in r.output and "encode" in r.output


def test_hostile_stored_names_stay_inside_the_output_folder(zoo_env, tmp_path):
    import bbcodec

    imgs = list(random_digits(3, 8))
    data = bbcodec.compress(imgs, model="tiny", names=["../../evil.png", "x" * 300 + ".png", "a\tb/c.png"])
    (tmp_path / "h.bbc").write_bytes(data)
    r = run("decode", tmp_path / "h.bbc", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 3 and all(len(n) < 200 for n in written) and "evil.png" in written
    assert not (tmp_path.parent / "evil.png").exists()


def test_undecodable_file_names_are_stored_readably(zoo_env, tmp_path):
    import os

    src = tmp_path / os.fsdecode(b"\xff-digit.png")
    Image.fromarray(random_digits(1, 9)[0]).save(src)
    r = run("encode", src, "-o", tmp_path / "n.bbc", "--model", "tiny")
    assert r.exit_code == 0, r.output


def test_lossy_draws_are_recorded_and_shown(zoo_env, tmp_path):
    p = tmp_path / "small.png"
    Image.fromarray(random_digits(1, 4, size=12)[0]).save(p)
    out = tmp_path / "lossy.bbc"
    r = run("encode", p, "-o", out, "--model", "tiny-vlae", "--lossy-draws", "3", "--verify")
    assert r.exit_code == 0, r.output
    assert "mean of 3 draws" in run("info", out).output
    assert json.loads(run("info", out, "--json").output)["lossy_draws"] == 3
    assert run("decode", out, "-o", tmp_path / "back.png").exit_code == 0
    assert np.asarray(Image.open(tmp_path / "back.png")).shape == (12, 12)


def test_every_error_has_its_own_exit_code_and_help_lists_them_all():
    import bbcodec.errors as errors

    public = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BBCodecError)]
    codes = [c.exit_code for c in public]
    assert len(public) >= 7 and len(set(codes)) == len(codes)
    assert {c.exit_code for c in errors.BBCodecError.__subclasses__()} <= set(errors.EXIT_CODES)
    shown = run("--help").output
    for code, meaning in errors.EXIT_CODES.items():
        assert f"{code:<4} {meaning}" in shown
