"""Every number the README's results block and the model cards state is generated from
committed files of one run: rendering them again from those files gives the same text,
every per-model file carries that run's commit and CPU, and the prose types no measured
number of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted(p.parent.name for p in (ROOT / "models").glob("*/CARD.md"))  # models and float sources
RESULTS = ROOT / "bench" / "results"


def readme_outside_the_block() -> str:
    """The README's prose: without the generated block and without code blocks."""
    from bench.__main__ import README_BEGIN, README_END

    text = (ROOT / "README.md").read_text()
    text = text[: text.index(README_BEGIN)] + text[text.index(README_END) :]
    return re.sub(r"```.*?```", "", text, flags=re.S)


def test_the_readme_results_block_is_what_the_committed_run_renders(monkeypatch):
    from bench.__main__ import README_BEGIN, README_END, readme_block

    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    text = (ROOT / "README.md").read_text()
    start = text.index(README_BEGIN) + len(README_BEGIN)
    assert text[start : text.index(README_END)].strip() == readme_block(RESULTS).strip()


def test_the_published_run_is_one_full_run_on_a_committed_tree():
    meta = json.loads((RESULTS / "results.json").read_text())["meta"]
    assert meta["command"].endswith("-m bench --publish") and not meta["quick"]
    assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"]), "the published run must run on a clean, committed tree"
    assert meta["cpu"] not in ("", "x86_64") and meta["cores"] >= 1


def test_every_model_file_comes_from_the_published_run(monkeypatch):
    from bench.model_table import foreign_sources

    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    meta = json.loads((RESULTS / "results.json").read_text())["meta"]
    assert foreign_sources(meta) == []
    speed = json.loads((RESULTS / "speed.json").read_text())["stamp"]
    assert (speed["commit"], speed["cpu"]) == (meta["commit"], meta["cpu"])


MEASURED = re.compile(r"\d[\d,]*(\.\d+)?\s*(bits/dim|bits per|nats|digits/s|img/s|images/s|%|dB|ms\b|s each)"
                      r"|\b\d+\.\d+\b(?!\.\d)")  # a unit of a measurement, or any decimal that is not a version


def test_the_readme_prose_types_no_measured_number():
    prose = readme_outside_the_block()
    versions = re.compile(r"\d+(\.\d+){2,}|bbcodec \d+\.\d+")  # package versions and bbcodec releases
    found = [m.group(0) for m in MEASURED.finditer(versions.sub("", prose))]
    assert found == [], f"typed numbers in the README's prose (generate them into the block instead): {found}"


@pytest.mark.parametrize("name", CARDS)
def test_each_card_is_what_its_logs_recipe_and_results_render(name):
    from training.card import render

    assert (ROOT / "models" / name / "CARD.md").read_text() == render(ROOT / "models" / name)
