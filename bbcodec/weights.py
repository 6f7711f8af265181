"""Weights on disk: safetensors with the model's config inside (nanoGPT's lesson).

Loading needs no side channel: the file says which architecture and config it is,
and its sha256 is what a .bbc file records to refuse decoding with other weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
import torch
from torch import nn

from bbcodec.errors import ModelMismatchError


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict) -> None:
    """Write ``tensors`` plus ``meta`` (must contain 'arch' and 'config') atomically."""
    tmp = path.with_suffix(".partial")
    save_file(tensors, str(tmp), metadata={"bbcodec": json.dumps(meta, sort_keys=True)})
    tmp.replace(path)


def save_weights(model: nn.Module, path: Path, meta: dict) -> None:
    """Write float32 weights plus ``meta`` atomically."""
    save_tensors({k: v.detach().float().contiguous() for k, v in model.state_dict().items()}, path, meta)


def read_meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = (f.metadata() or {}).get("bbcodec")
    if meta is None:
        raise ModelMismatchError(f"{path} has no bbcodec metadata (arch/config)")
    return json.loads(meta)


def load_weights(path: Path) -> tuple[nn.Module, dict]:
    """Build the architecture named inside ``path`` and load its weights (eval mode)."""
    from bbcodec.nn import build_model

    meta = read_meta(path)
    model = build_model(meta["arch"], meta["config"])
    model.load_state_dict(load_file(str(path)))
    model.eval()
    model.requires_grad_(False)
    return model, meta


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()



