"""Architectures, one file each, and the table that maps a name to its class."""

from __future__ import annotations

from typing import Any

from torch import nn

from bbcodec.nn.hvae import HVAE, HVAEConfig
from bbcodec.nn.vlae import VLAE, VLAEConfig

ARCHITECTURES: dict[str, tuple[type[nn.Module], Any]] = {
    "hvae": (HVAE, HVAEConfig),
    "vlae": (VLAE, VLAEConfig),
}


def build_config(arch: str, config: dict) -> Any:
    """The typed config of architecture ``arch`` from its dict (as stored in weights)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch][1].from_dict(config)


def build_model(arch: str, config: dict) -> nn.Module:
    """Instantiate architecture ``arch`` from its config dict (as stored in weights)."""
    return ARCHITECTURES[arch][0](build_config(arch, config))
