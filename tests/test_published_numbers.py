"""Every number the README's integer-coder block and the model cards state is generated
from committed files: rendering them again from those files gives the same text."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted(p.parent.name for p in (ROOT / "models").glob("*/CARD.md"))  # models and float sources


def test_the_readme_integer_block_is_what_the_results_files_render(monkeypatch):
    from bench import exact_report

    monkeypatch.delenv("BBCODEC_MODELS_DIR", raising=False)
    text = (ROOT / "README.md").read_text()
    start = text.index(exact_report.BEGIN) + len(exact_report.BEGIN)
    assert text[start : text.index(exact_report.END)].strip() == exact_report.render().strip()


@pytest.mark.parametrize("name", CARDS)
def test_each_card_is_what_its_logs_recipe_and_results_render(name):
    from training.card import render

    assert (ROOT / "models" / name / "CARD.md").read_text() == render(ROOT / "models" / name)
