"""The README's table of the shipped models, generated from one run's files only.

Each row joins a model's lossless row in ``bench/results/results.json`` (its whole test
set in one file: integer and float −ELBO, file rate, exactness in a fresh process) with
``models/NAME/validation.json`` and ``models/NAME/speed.json``, all written by the same
``python -m bench --publish`` run (:mod:`bench.publish`). A source from another commit
or CPU is named under the table, so a reader sees exactly what was not measured together.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.publish import own_test_row
from bench.stamp import short_commit

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _model_stamps() -> list[tuple[str, dict]]:
    from bbcodec.zoo import list_models

    out = []
    for info in sorted(list_models(), key=lambda m: m.name):
        for name in ("scores.json", "validation.json", "speed.json"):
            st = _load(info.path.parent / name).get("stamp")
            if st:
                out.append((f"models/{info.name}/{name}", st))
    return out


def other_invocations(meta: dict) -> list[str]:
    """Commands of the same commit and CPU, other than the run's own, that wrote model files."""
    seen: dict[str, list[str]] = {}
    for path, st in _model_stamps():
        if (st["commit"], st["cpu"]) == (meta["commit"], meta["cpu"]) and st["command"] != meta["command"]:
            seen.setdefault(f"`{st['command']}`", []).append(path.split("/")[-1])
    return [f"{cmd}: {', '.join(sorted(set(files)))}" for cmd, files in seen.items()]


def foreign_sources(meta: dict) -> list[str]:
    """The per-model files whose stamp is not this run's commit and CPU."""
    return [f"`{path}`: `{st['command']}` ({short_commit(st['commit'])}, {st['cpu']}, {st['date']})"
            for path, st in _model_stamps() if (st["commit"], st["cpu"]) != (meta["commit"], meta["cpu"])]


def render(results: dict) -> str:
    from bbcodec.zoo import list_models

    lines = ["| model | test set | integer −ELBO | float −ELBO | file (one file, whole set) | exact in a fresh process "
             "| validation −ELBO, integer | validation set | img/s enc / dec (speed run) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for info in sorted(list_models(), key=lambda m: m.name):
        folder = info.path.parent
        row = own_test_row(results["rows"], info.name, _load(folder / "recipe.json"))
        validation, speed = _load(folder / "validation.json"), _load(folder / "speed.json")
        exact = {True: "yes", False: "**NO**"}.get(row.get("decode_fresh_process_bit_exact"), "")
        speeds = (f"{speed['encode_img_per_s']:.1f} / {speed['decode_img_per_s']:.1f} ({speed['dataset']})"
                  if speed else "")
        lines.append(f"| `{info.name}` | {row.get('dataset', '')} | {_fmt(row.get('integer_neg_elbo_bpd'))} | "
                     f"{_fmt(row.get('neg_elbo_bpd'))} | {_fmt(row.get('file_bpd'))} | {exact} | "
                     f"{_fmt(validation.get('integer_neg_elbo_bpd'))} | {validation.get('validation_set', '')} | "
                     f"{speeds} |")
    others = other_invocations(results["meta"])
    if others:
        lines += ["", "Model files written on the same commit and CPU by another invocation:",
                  *[f"* {s}" for s in others]]
    foreign = foreign_sources(results["meta"])
    if foreign:
        lines += ["", "Not from this run:", *[f"* {s}" for s in foreign]]
    return "\n".join(lines)
