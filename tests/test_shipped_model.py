"""The shipped, trained model on real MNIST digits: exact, and as cheap as its ELBO."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbcodec
from bbcodec.data import load_mnist
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.nn.objective import elbo_terms, iwae_bound
from bbcodec.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images, _ = load_mnist("test")
    return images[:200]


def test_default_models_for_grayscale_are_the_shipped_ones(monkeypatch):
    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    info = bbcodec.api.choose_model([np.zeros((28, 28), np.uint8)], None)
    assert info.name == "vlae-mnist-large-q8-int8enc"
    assert bbcodec.api.choose_model([np.zeros((30, 41), np.uint8)], None).name == "mnist-int8-w7"
    # Lossy ranks on its own measurements (label agreement at a rate), not the lossless rate.
    lossy = bbcodec.api.choose_model([np.zeros((28, 28), np.uint8)], None, lossy=True)
    assert lossy.name == bbcodec.zoo.LOSSY_PREFERENCE[0] == "vlae-mnist-wide-q8"


@pytest.mark.parametrize("name,later", [("mnist", "mnist-int8-w7"), ("vlae-mnist-large", "vlae-mnist-large-int8"),
                                        ("vlae-mnist-wide", "vlae-mnist-wide-int8"),
                                        ("vlae-mnist-binary", "vlae-mnist-binary-int8")])
def test_a_retired_integer_form_is_no_model_and_names_the_one_that_codes_its_weights(name, later, monkeypatch):
    """These float weights code only through their int8 form: not listed, refused by name
    (their old forms still decode their files: tests/test_golden.py)."""
    import json

    from click.testing import CliRunner

    from bbcodec.cli import main

    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    listed = {m["name"] for m in json.loads(CliRunner().invoke(main, ["models", "--json"]).output)}
    assert later in listed and name not in listed
    with pytest.raises(bbcodec.ModelMismatchError, match=f"'{name}' is retired: .* as '{later}'.*still decode"):
        bbcodec.load_model(name)


def test_chain_of_real_digits_costs_the_elbo_and_decodes_exactly_in_a_fresh_process(digits, tmp_path):
    data = bbcodec.compress(list(digits))
    info = bbcodec.inspect(data)
    model, _ = bbcodec.load_model(info.model)
    elbo_bpd = negative_elbo_bits(model, digits[:, None].copy(), 8).mean() / 784  # the integer model's own bound
    net_bpd = (8 * info.payload_bytes - info.initial_bits) / digits.size
    assert net_bpd < elbo_bpd * 1.01 + 0.005, (net_bpd, elbo_bpd)
    (tmp_path / "d.bbc").write_bytes(data)
    np.save(tmp_path / "d.npy", digits)
    script = ("import sys, torch, numpy as np, bbcodec; torch.set_num_threads(int(sys.argv[3])); "
              "imgs = bbcodec.decompress(open(sys.argv[1], 'rb').read()); "
              "exp = np.load(sys.argv[2]); sys.exit(0 if all((a == b).all() for a, b in zip(imgs, exp)) else 1)")
    for threads in ("1", "3"):  # a fresh process, with either thread count
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "d.bbc"), str(tmp_path / "d.npy"), threads],
                       check=True, cwd=ROOT)


def test_trained_biva_elbo_is_what_one_importance_sample_says(digits):
    """The training objective must be the bound the coder pays. For BIVA's bottom-up
    latents a closed-form KL is biased (their priors read top-down latents that saw
    the sample); the trained biva-mnist exploits such a bias by ~3%, so a wrong
    estimator fails here. The reference is −log w of a single importance sample,
    which is the ELBO by definition."""
    model, _ = load_weights(bbcodec.zoo.find_model("biva-mnist").path.with_name("weights.safetensors"))
    x = torch.from_numpy(digits[:100, None].copy())
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = np.mean([elbo_terms(model, x).negative_elbo().mean().item() for _ in range(4)])
        one_sample = np.mean([iwae_bound(model, x, 1).mean().item() for _ in range(4)])
    assert elbo == pytest.approx(one_sample, rel=0.004), (elbo, one_sample)


def test_partition_does_not_change_correctness(digits):
    """Different group sizes give different (valid) files that all decode exactly."""
    for max_group in (1, 7, 64):
        data = bbcodec.compress(list(digits[:40]), settings=bbcodec.CoderSettings(max_group=max_group))
        assert all((a == b).all() for a, b in zip(bbcodec.decompress(data), digits[:40]))


def test_odd_sizes_are_padded_and_cropped(digits):
    odd = [digits[0][:27, :25], np.tile(digits[1], (2, 3))[:50, :61]]
    restored = bbcodec.decompress(bbcodec.compress(odd))
    assert [r.shape for r in restored] == [(27, 25), (50, 61)]
    assert all((a == b).all() for a, b in zip(odd, restored))


def test_wrong_weights_are_refused(digits, tmp_path, monkeypatch):
    import zlib

    for images, error in (([digits[0], digits[1]], "different weights"), ([digits[0]], "no installed model has")):
        data = bytearray(bbcodec.compress(images))
        data[6 + data[5]] ^= 0xFF  # the weights hash follows magic, version, flags and the name
        body = bytes(data[:-4])
        with pytest.raises(bbcodec.ModelMismatchError, match=error):
            bbcodec.decompress(body + zlib.crc32(body).to_bytes(4, "little"))


def test_the_tree_tracks_no_checkpoint_of_a_shipped_model():
    """Shipped weights never change, so their training checkpoints have no place in the repo."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "-C", str(root), "ls-files", "models"], capture_output=True, text=True,
                             check=True).stdout.split()
    shipped = {m.name for m in bbcodec.list_models()}
    stale = [p for p in tracked if p.split("/")[1] in shipped and "/ckpt/" in p]
    assert not stale, stale


def test_the_fast_preset_codes_digits_exactly_from_the_command_line(digits, tmp_path, monkeypatch):
    """`encode --fast` codes with the shipped fast preset (its file names it) and every
    pixel comes back; naming a model as well is a usage error that writes nothing."""
    import json

    from click.testing import CliRunner
    from PIL import Image

    from bbcodec.cli import main

    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    paths = []
    for i, img in enumerate(digits[:3]):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray(img).save(paths[-1])
    run = lambda *args: CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)  # noqa: E731
    assert run("encode", *paths, "-o", tmp_path / "f.bbc", "--fast").exit_code == 0
    assert json.loads(run("info", tmp_path / "f.bbc", "--json").output)["model"] == bbcodec.zoo.FAST_PRESET
    assert run("decode", tmp_path / "f.bbc", "-o", tmp_path / "out").exit_code == 0
    for i, img in enumerate(digits[:3]):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"d{i}.png")), img)
    both = run("encode", paths[0], "-o", tmp_path / "g.bbc", "--fast", "--model", "vlae-mnist-large-q8-int8enc")
    assert both.exit_code == 2 and "--fast" in both.output and not (tmp_path / "g.bbc").exists()
