"""Architectures, one file each, and the table that maps a name to its class."""

from __future__ import annotations

from typing import Any

from torch import nn

from bbcodec.nn.hvae import HVAE, HVAEConfig

ARCHITECTURES: dict[str, tuple[type[nn.Module], Any]] = {
    "hvae": (HVAE, HVAEConfig),
}


def build_model(arch: str, config: dict) -> nn.Module:
    """Instantiate architecture ``arch`` from its config dict (as stored in weights)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    model_cls, config_cls = ARCHITECTURES[arch]
    return model_cls(config_cls.from_dict(config))
