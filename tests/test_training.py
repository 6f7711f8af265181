"""training/train.py's phase hand-over: a recipe's ``init_from`` starts a new run from
trained weights, and refuses weights of a different model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.train import Trainer
from tests.conftest import TINY_VLAE_CONFIG, make_tiny, write_zoo_model


def write_recipe(folder: Path, config: dict, init_from: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {"arch": "vlae", "dataset": "mnist", "config": config, "init_from": str(init_from)}
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
