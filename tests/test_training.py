"""training/train.py's phase hand-over: a recipe's ``init_from`` starts a new run from
trained weights, and refuses weights of a different model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bbcodec.nn import build_model
from training.train import Trainer
from tests.conftest import TINY_VLAE_CONFIG, make_tiny, write_zoo_model


def write_recipe(folder: Path, config: dict, init_from: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {"arch": "vlae", "dataset": "mnist", "config": config, "init_from": str(init_from), **extra}
    path = folder / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def test_init_from_loads_trained_weights_into_model_and_ema(tmp_path):
    trained = make_tiny(TINY_VLAE_CONFIG, seed=7)
    weights = write_zoo_model(tmp_path / "zoo", "phase1", trained) / "weights.safetensors"
    trainer = Trainer(write_recipe(tmp_path / "phase2", TINY_VLAE_CONFIG.to_dict(), weights))
    assert trainer.step == 0
    for module in (trainer.model, trainer.ema):
        for (name, got), want in zip(module.state_dict().items(), trained.state_dict().values()):
            torch.testing.assert_close(got, want, rtol=0, atol=0, msg=name)
    log = [json.loads(line) for line in (tmp_path / "phase2" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "initialised" and log[-1]["from"] == str(weights)


def test_init_from_refuses_a_different_model(tmp_path):
    weights = write_zoo_model(tmp_path / "zoo", "phase1", make_tiny(TINY_VLAE_CONFIG, seed=7)) / "weights.safetensors"
    other = {**TINY_VLAE_CONFIG.to_dict(), "hidden": 24}
    with pytest.raises(SystemExit, match="different model"):
        Trainer(write_recipe(tmp_path / "phase2", other, weights))


SMALLER_PIXEL_NET = ["local.", "cond_high."]  # what a VLAE's pixel-net width reaches


def test_init_fresh_starts_a_smaller_pixel_net_under_the_trained_rest(tmp_path):
    """A model with a narrower per-pixel network loads every other trained parameter
    (encoder, prior, conditioning network) and keeps its own fresh pixel net."""
    trained = make_tiny(TINY_VLAE_CONFIG, seed=7)
    weights = write_zoo_model(tmp_path / "zoo", "phase1", trained) / "weights.safetensors"
    other = {**TINY_VLAE_CONFIG.to_dict(), "hidden": TINY_VLAE_CONFIG.hidden // 2}
    trainer = Trainer(write_recipe(tmp_path / "small", other, weights, init_fresh=SMALLER_PIXEL_NET))
    source, fresh = trained.state_dict(), build_model("vlae", other).state_dict()
    loaded = 0
    for name, got in trainer.ema.state_dict().items():
        if name.startswith(tuple(SMALLER_PIXEL_NET)):
            assert got.shape == fresh[name].shape, name
        else:
            torch.testing.assert_close(got, source[name], rtol=0, atol=0, msg=name)
            loaded += 1
    assert loaded > 0 and any(n.startswith("encoder") for n in source)
    log = [json.loads(line) for line in (tmp_path / "small" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "initialised" and log[-1]["fresh"] == SMALLER_PIXEL_NET


def test_init_fresh_refuses_a_misfit_outside_its_prefixes(tmp_path):
    weights = write_zoo_model(tmp_path / "zoo", "phase1", make_tiny(TINY_VLAE_CONFIG, seed=7)) / "weights.safetensors"
    other = {**TINY_VLAE_CONFIG.to_dict(), "hidden": TINY_VLAE_CONFIG.hidden // 2}
    with pytest.raises(SystemExit, match="cond_high"):
        Trainer(write_recipe(tmp_path / "small", other, weights, init_fresh=["local."]))


def test_the_log_records_the_precision_a_run_used_and_the_card_states_it(tmp_path):
    from training.card import precision_text
    from training.train import PRECISION_FP32

    weights = write_zoo_model(tmp_path / "zoo", "phase1", make_tiny(TINY_VLAE_CONFIG, seed=7)) / "weights.safetensors"
    Trainer(write_recipe(tmp_path / "phase2", TINY_VLAE_CONFIG.to_dict(), weights))
    log = [json.loads(line) for line in (tmp_path / "phase2" / "train_log.jsonl").read_text().splitlines()]
    started = [r for r in log if r.get("event") == "started"]
    assert [r["precision"] for r in started] == [PRECISION_FP32]  # the recipe sets no bf16: fp32
    assert precision_text(log) == PRECISION_FP32
    assert precision_text([r for r in log if r.get("event") != "started"]) == "not recorded in the training log"


def test_a_quantisation_aware_phase_starts_from_float_weights_and_calibrates_its_codes(tmp_path):
    """A recipe that differs from its float start only in the pixel head's quantisation
    settings loads those weights, sets its 8-bit code ranges from training images once
    (logged), and its head then emits values on the grids the integer form uses."""
    from bbcodec.nn.fake_quant import SiluCodes, code_grid
    from tests.conftest import random_digits

    trained = make_tiny(TINY_VLAE_CONFIG, seed=7)
    weights = write_zoo_model(tmp_path / "zoo", "phase1", trained) / "weights.safetensors"
    config = {**TINY_VLAE_CONFIG.to_dict(), "pixel_code_bits": 8, "pixel_weight_bits": 7}
    trainer = Trainer(write_recipe(tmp_path / "phase2", config, weights))
    torch.testing.assert_close(trainer.model.local.window.weight, trained.local.window.weight, rtol=0, atol=0)
    codes = trainer.model.local.head.codes
    assert isinstance(codes, SiluCodes) and not codes.calibrated
    trainer.calibrate(torch.from_numpy(random_digits(16, seed=3, size=12)[:, None].copy()))
    assert codes.calibrated and torch.equal(trainer.ema.local.head.codes.top, codes.top)
    tops = codes.top.clone()
    trainer.calibrate(torch.zeros(4, 1, 12, 12, dtype=torch.uint8))  # once only: a resumed run keeps its ranges
    assert torch.equal(codes.top, tops)
    h = torch.randn(50, TINY_VLAE_CONFIG.hidden) * 3
    step, q_min = code_grid(float(tops[0]))
    q = codes(h, 0) / step
    assert torch.allclose(q, q.round(), atol=1e-3), (q - q.round()).abs().max()
    assert q.round().min() >= q_min and q.round().max() <= q_min + 255
    log = [json.loads(line) for line in (tmp_path / "phase2" / "train_log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log if r.get("event") == "calibrated"] == ["calibrated"]


def test_a_float_config_reads_as_it_always_did():
    """Quantisation settings left at float are not written into a config (stored
    configs of float models stay byte for byte what they were)."""
    assert "pixel_code_bits" not in TINY_VLAE_CONFIG.to_dict()
    from bbcodec.nn.vlae import VLAEConfig

    quantised = VLAEConfig(**{**TINY_VLAE_CONFIG.__dict__, "pixel_code_bits": 8})
    assert VLAEConfig.from_dict(quantised.to_dict()) == quantised
