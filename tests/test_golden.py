"""Golden files pin the .bbc format on every machine: each file of the current format
decodes bit-exact and its inputs re-encode to the very same bytes here, whatever CPU
wrote it (``golden/v2/MANIFEST.json`` names it); files of the float format (``v1/``)
are refused with the release that reads them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import bbcodec
from bbcodec.errors import FormatError

GOLDEN = Path(__file__).resolve().parent / "golden"
V2 = GOLDEN / "v2"
MANIFEST = json.loads((V2 / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return dict(np.load(V2 / "inputs.npz"))


@pytest.fixture()
def golden_zoo(monkeypatch):
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(GOLDEN / "zoo"))


def test_every_shipped_model_and_mode_has_a_golden_file():
    models = {entry["model"] for entry in MANIFEST.values()}
    assert {"vlae-mnist-wide-int8", "vlae-mnist-binary-int8", "mnist-int8-w7", "biva-mnist", "rgb", None} <= models
    assert {m.name for m in bbcodec.list_models()} - {bbcodec.zoo.DEFAULT_MODEL} <= models
    options = [entry["options"] for entry in MANIFEST.values()]
    assert any("samples" in o for o in options) and any("lossy_step" in o for o in options)
    names = set(MANIFEST)
    assert {"rgb_tiled.bbc", "default_int8_one_digit.bbc", "binary_int8_digits.bbc"} <= names


def _retired(entry: dict) -> bool:
    return entry["model"] is not None and bbcodec.zoo.successor(entry["model"]) is not None


def test_every_golden_file_names_a_model_that_codes_or_a_retired_form(golden_zoo):
    """A golden file pins bytes that an installed model writes today, or a retired form's
    file that must keep decoding."""
    coding = {m.name for m in bbcodec.list_models()}
    for name, entry in MANIFEST.items():
        assert entry["model"] is None or entry["model"] in coding or _retired(entry), name
    assert any(_retired(entry) for entry in MANIFEST.values())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes_exactly(golden_zoo, inputs, name):
    entry = MANIFEST[name]
    data = (V2 / name).read_bytes()
    decoded = bbcodec.decompress(data)  # raises on a checksum mismatch (lossy: the latent code's CRC)
    expected = inputs[entry["input"]]
    assert len(decoded) == len(expected)
    if "lossy_step" in entry["options"]:  # the picture drawn from the latents, pinned by the manifest
        assert hashlib.sha256(np.stack(decoded).tobytes()).hexdigest() == entry["reconstruction_sha256"]
    else:
        for got, want in zip(decoded, expected, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_encoder_reproduces_golden_bytes(golden_zoo, inputs, name):
    entry = MANIFEST[name]
    if _retired(entry):
        with pytest.raises(bbcodec.ModelMismatchError, match="retired"):
            bbcodec.compress(list(inputs[entry["input"]]), model=entry["model"], **entry["options"])
        return
    data = bbcodec.compress(list(inputs[entry["input"]]), model=entry["model"], **entry["options"])
    assert data == (V2 / name).read_bytes(), f"{name} was written on {entry['cpu']}"


def test_one_image_header_names_the_model_by_hash_alone(golden_zoo):
    data = (V2 / "tiny_one_digit.bbc").read_bytes()
    assert data[:4] == b"BBC\x02" and data[5] == 0  # model name length 0
    info = bbcodec.inspect(data)
    assert info.model == "tiny" and info.initial_bits == 0 and info.header_bytes <= 32
    assert info.machine_bound == ""


def test_importance_golden_file_warms_up_on_plain_groups(golden_zoo):
    info = bbcodec.inspect((V2 / "tiny_importance.bbc").read_bytes())
    assert (info.samples, info.n_images) == (4, 30) and 1 <= info.plain_groups


@pytest.mark.parametrize("name", ["digits.bbc", "digits_anchored.bbc", "digits_importance.bbc", "one_digit.bbc"])
def test_float_format_files_are_refused_with_the_release_that_reads_them(golden_zoo, name):
    with pytest.raises(FormatError, match=r"bbcodec 0\.1"):
        bbcodec.decompress((GOLDEN / "v1" / name).read_bytes())
