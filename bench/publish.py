"""What a full ``python -m bench`` run writes besides its results.json.

`bbcodec models`, the model cards and the README's summary table read per-model files
(``models/NAME/scores.json``, ``validation.json``, ``speed.json``). A full run rewrites
every one of them, each with the run's one stamp (taken before it writes anything, so
its own outputs never mark the tree as changed), then the cards, so that every number the
package and the README publish comes from one run on one commit and one CPU:

* ``scores.json``: the integer form's and the float model's test −ELBO, from the model's
  lossless row on its whole test set (the same pass that measured the file);
* ``validation.json``: the integer form's −ELBO on its validation set
  (:func:`training.export.validate`), what choices about a model are measured on;
* ``speed.json`` (and ``bench/results/speed.json``): :mod:`bench.speed`, every model beside
  PNG, WebP and JPEG-XL in one pass over the same images;
* ``CARD.md``: ``training/card.py`` from the recipe, the training log and those files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bbcodec

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
STAMP_KEYS = ("command", "commit", "cpu", "cores", "threads", "torch", "constriction", "numpy", "python", "date")
# A model's own test set, as the bench names it: (dataset_key, title prefix).
TEST_SETS = {"mnist": ("mnist-8bit", "MNIST test (10000)"),
             "mnist-binary": ("mnist-binarized-dynamic", "binarised MNIST test (10000"),
             "rgb": ("cifar10", "CIFAR-10 test, first 20")}
LATENT_PRECISION = 8  # bench.lossless measures the integer −ELBO with 2^8 bins per latent dimension


def run_stamp(meta: dict) -> dict:
    """The stamp fields of a run's meta (bench.runs.run_meta)."""
    return {key: meta[key] for key in STAMP_KEYS}


def own_test_row(rows: list[dict], name: str, recipe: dict) -> dict:
    """A model's lossless row on its own whole test set ({} when the run has none)."""
    key, title = TEST_SETS["rgb" if recipe["dataset"].startswith("rgb") else recipe["dataset"]]
    return next((r for r in rows if r["kind"] == "bbcodec lossless" and r["model"] == name
                 and r["dataset_key"] == key and r["dataset"].startswith(title)), {})


def write_scores(rows: list[dict], meta: dict) -> list[Path]:
    """Each shipped model's ``scores.json`` from its lossless row on its whole test set."""
    written = []
    for info in bbcodec.list_models():
        folder = info.path.parent
        row = own_test_row(rows, info.name, json.loads((folder / "recipe.json").read_text()))
        if "integer_neg_elbo_bpd" not in row:
            continue
        record = {"test_set": row["dataset"], "images": row["images"], "latent_precision": LATENT_PRECISION,
                  "integer_neg_elbo_bpd": row["integer_neg_elbo_bpd"], "float_neg_elbo_bpd": row["neg_elbo_bpd"],
                  "integer_sha256": info.sha256, "stamp": run_stamp(meta)}
        (folder / "scores.json").write_text(json.dumps(record, indent=2) + "\n")
        written.append(folder / "scores.json")
    return written


def write_validations(names: list[str], stamp: dict) -> list[Path]:
    from training.export import validate

    for name in names:
        validate(name, stamp)
    return [MODELS / name / "validation.json" for name in names]


def write_speeds(names: list[str], images: int, stamp: dict) -> dict:
    """One :mod:`bench.speed` run over ``names`` and the classical codecs."""
    from bench import speed

    args = argparse.Namespace(images=images, models=names, lossy_decoded=100, no_lossy=False)
    result = speed.measure(args, stamp)
    speed.PUBLISHED.write_text(json.dumps(result, indent=2) + "\n")
    speed.PUBLISHED.with_suffix(".md").write_text(speed.table(result))
    speed.write_model_speeds(result)
    return result


def write_cards() -> list[Path]:
    """Every model folder's CARD.md again (float sources included: their cards quote their forms;
    a folder holding only a recipe is a model still in training, with no card yet)."""
    from training.card import render

    written = []
    for folder in sorted(p.parent for p in MODELS.glob("*/recipe.json")):
        if not any((folder / name).exists() for name in ("weights.safetensors", "integer.safetensors")):
            continue
        (folder / "CARD.md").write_text(render(folder))
        written.append(folder / "CARD.md")
    return written
