"""Float model -> integer coding form, and the integer form on disk.

Export quantises every layer (:func:`bbcodec.exact.layers.quantise_weight`), proves
its accumulators exact, and writes ``integer.safetensors`` next to the float
weights: integer tensors plus metadata naming the architecture, its config, the
float weights' and the tables' sha256. Coding loads only this file; a .bbc file
records its hash, so the integer form is what a file is bound to.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from bbcodec.errors import ModelMismatchError
from bbcodec.exact import tables
from bbcodec.exact.hvae import ExactHVAE
from bbcodec.exact.digit_conv import DIGIT_FORMS, DigitConv2d, digit_convertible, in_frac_for, replace_convs
from bbcodec.exact.fixed import FRAC
from bbcodec.exact.layers import IConv2d, check_layers
from bbcodec.exact.narrow import NARROW_FORMS
from bbcodec.exact.narrow_export import HEADROOM, narrow_integer_form
from bbcodec.exact.vlae import ENCODER_FORMS, ExactVLAE, is_encoder
from bbcodec.nn import build_config
from bbcodec.nn.hvae import HVAE
from bbcodec.nn.vlae import VLAE
from bbcodec.weights import read_meta, save_tensors

INTEGER_FILE = "integer.safetensors"
EXACT_FORMAT = 1  # the integer forms' own layout; a change is a new format revision
NARROW_FORMAT = 2  # format 1 plus int8 products (``local_form``: a VLAE's decoder, an HVAE's convolutions)
ENCODER_FORMAT = 3  # format 2 plus a VLAE's encoder on int8 digits (``encoder_form``)
CALIBRATION_BATCH, CALIBRATION_PRECISION = 64, 8  # how calibration images are run (the coder's default precision)
EXACT_ARCHITECTURES: dict[str, type[nn.Module]] = {"vlae": ExactVLAE, "hvae": ExactHVAE}


def integer_form(model: nn.Module, calibration: np.ndarray | None = None, form: str = "int8-w13",
                 encoder_form: str | None = None) -> nn.Module:
    """The integer coding form of a float model of a shipped architecture (bounds checked).

    With ``calibration`` images (N, C, H, W) uint8 — never test images — a VLAE's
    decoder (conditioning network and local pixel net) takes the narrow int8 form
    (:mod:`bbcodec.exact.narrow`), its grids chosen from the float net's values on
    those images, and a hierarchical VAE's convolutions take the digit form
    (:func:`digit_form`). ``form`` names the weights' width: "int8-w13" 13-bit weights
    (two int8 digits), "int8-w7" 7-bit; a hierarchical VAE also has "int8-w7-out13"
    (:data:`~bbcodec.exact.digit_conv.DIGIT_FORMS`). ``encoder_form`` (a VLAE with
    ``calibration``; :data:`~bbcodec.exact.vlae.ENCODER_FORMS`) puts its encoder's
    convolutions on int8 digits too."""
    if encoder_form is not None and (calibration is None or not isinstance(model, VLAE)):
        raise ValueError("an encoder form is a VLAE's, and its grids are calibrated on images")
    if calibration is not None and isinstance(model, HVAE):
        if form not in DIGIT_FORMS:
            raise ValueError(f"a hierarchical VAE's convolutions have the forms {sorted(DIGIT_FORMS)}, not {form!r}")
        out = digit_form(ExactHVAE.of(model), calibration, form)
        out.local_form = form
    elif calibration is not None:
        if not isinstance(model, VLAE):
            raise TypeError(f"no int8 form for {type(model).__name__}")
        if form not in NARROW_FORMS:
            raise ValueError(f"a VLAE's decoder has the forms {sorted(NARROW_FORMS)}, not {form!r}")
        out = ExactVLAE.of(model, narrow_integer_form(model, calibration, form))
        if encoder_form is not None:
            out = _digit_encoder(out, calibration, encoder_form)
    elif isinstance(model, VLAE):
        out = ExactVLAE.of(model)
    elif isinstance(model, HVAE):
        out = ExactHVAE.of(model)
    else:
        raise TypeError(f"no integer form for {type(model).__name__}; see bbcodec.exact (docs/EXACTNESS.md)")
    check_layers(out)
    return out.eval().requires_grad_(False)


def _digit_encoder(model: ExactVLAE, calibration: np.ndarray, form: str) -> ExactVLAE:
    if form not in ENCODER_FORMS:
        raise ValueError(f"a VLAE's encoder has the forms {list(ENCODER_FORMS)}, not {form!r}")
    out = digit_form(model, calibration, form, is_encoder)
    out.encoder_form = form
    return out


@torch.no_grad()
def digit_form(wide: nn.Module, calibration: np.ndarray, form: str,
               where: Callable[[str], bool] = lambda _: True) -> nn.Module:
    """``wide`` (an integer model) with every convertible float64 convolution whose name passes
    ``where`` on int8 digits, each input grid chosen from the values that convolution reads
    when the model codes ``calibration`` images (one draw of each latent, the bound's stream)."""
    from bbcodec.exact.bounds import negative_elbo_bits

    largest: dict[str, float] = {}

    def watch(name: str):  # noqa: ANN202
        def hook(_: nn.Module, args: tuple) -> None:
            seen = float(args[0].abs().max()) * math.ldexp(1.0, -FRAC) if args[0].numel() else 0.0
            largest[name] = max(largest.get(name, 0.0), seen)
        return hook

    convs = {name: m for name, m in wide.named_modules()
             if isinstance(m, IConv2d) and digit_convertible(m) and where(name)}
    handles = [m.register_forward_pre_hook(watch(name)) for name, m in convs.items()]
    for lo in range(0, len(calibration), CALIBRATION_BATCH):
        negative_elbo_bits(wide, calibration[lo : lo + CALIBRATION_BATCH], CALIBRATION_PRECISION)
    for handle in handles:
        handle.remove()
    out = copy.deepcopy(wide)
    limbs = DIGIT_FORMS[form]
    replace_convs(out, lambda name, conv: DigitConv2d.of(conv, in_frac_for(largest[name], HEADROOM), limbs(name)),
                  where)
    return out


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """Whole numbers as the narrowest of int32 / int64 that holds them (int8 / int16 stay)."""
    if t.dtype in (torch.int8, torch.int16):
        return t.contiguous()
    return t.to(torch.int32 if t.numel() == 0 or float(t.abs().max()) < 2**31 else torch.int64).contiguous()


def save_integer(model: nn.Module, path: Path, meta: dict) -> None:
    """Write the integer form atomically; ``meta`` adds to the required fields."""
    local_form = getattr(model, "local_form", "wide")
    encoder_form = getattr(model, "encoder_form", "wide")
    revision = ENCODER_FORMAT if encoder_form != "wide" else NARROW_FORMAT if local_form != "wide" else EXACT_FORMAT
    full = {"arch": model.arch, "config": model.cfg.to_dict(), "exact_format": revision,
            "tables_sha256": tables.SHA256, **meta}
    if local_form != "wide":
        full["local_form"] = local_form
    if encoder_form != "wide":
        full["encoder_form"] = encoder_form
    save_tensors({k: _narrow(v) for k, v in model.state_dict().items()}, path, full)


def load_integer(path: Path) -> tuple[nn.Module, dict]:
    """Build the integer model named inside ``path``, load it and prove its bounds."""
    meta = read_meta(path)
    revisions = (EXACT_FORMAT, NARROW_FORMAT, ENCODER_FORMAT)
    if meta.get("exact_format") not in revisions or meta.get("tables_sha256") != tables.SHA256:
        raise ModelMismatchError(f"{path} is an integer form of another format revision; reinstall its bbcodec")
    arch = meta["arch"]
    if arch not in EXACT_ARCHITECTURES:
        raise ModelMismatchError(f"{path}: unknown architecture {arch!r}")
    options = {key: meta[key] for key in ("local_form", "encoder_form") if key in meta}
    model = EXACT_ARCHITECTURES[arch](build_config(arch, meta["config"]), **options)
    model.load_state_dict(load_file(str(path)))  # copied into each buffer's own dtype: whole numbers, exact
    check_layers(model)
    return model.eval().requires_grad_(False), meta
