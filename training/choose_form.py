"""How a derived model's integer form is chosen: the validation −ELBO of each form.

    python -m training.choose_form vlae-mnist-wide      # bench/results/forms_vlae-mnist-wide.json
    python -m training.choose_form mnist --layers       # bench/results/layer_limbs_mnist.json
    python -m training.choose_form vlae-mnist-wide-q8 --encoder   # bench/results/encoder_forms_vlae-mnist-wide-q8.json

Codes the model's validation images (``training.export.validation_set``: MNIST
training digits 59,000–59,499, binarised with seed 2 for a binarised model; an RGB
model's held-out photos) through each integer form of one float model: the wide form
(float64 products) and the int8 forms (a VLAE's decoder: ``narrow.NARROW_FORMS``; a
hierarchical VAE's convolutions: ``digit_conv.DIGIT_FORMS``), and reports each form's
integer −ELBO in bits/dim. A recipe's ``decoder_form`` is the fastest form whose rate
is not measurably worse. ``--encoder`` does the same for a VLAE's encoder (its
recipe's decoder form, the encoder wide or in ``vlae.ENCODER_FORMS``): a recipe's
``encoder_form``. ``--layers`` measures, for a hierarchical VAE, what 7-bit
weights cost in each convolution alone (all others 13-bit): where a mixed form's
13-bit layers come from. Test images take no part.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from bbcodec.data import binarize, load_mnist
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.exact.export import integer_form
from bbcodec.exact.digit_conv import DIGIT_FORMS, DigitConv2d
from bbcodec.exact.narrow import NARROW_FORMS
from bbcodec.exact.vlae import ENCODER_FORMS
from bbcodec.nn.hvae import HVAE
from bbcodec.weights import load_weights
from bench.datasets import VALIDATION_DIGITS
from bench.stamp import stamp
from training.export import BATCH, MODELS, PRECISION, calibration_images, validation_set

ROOT = Path(__file__).resolve().parents[1]
VALIDATION_BINARIZE_SEED = 2


def validation_images(dataset: str) -> np.ndarray:
    """The validation digits (N, 1, 28, 28) for a model trained on ``dataset``."""
    digits = load_mnist("train")[0][VALIDATION_DIGITS]
    if dataset == "mnist-binary":
        digits = binarize(digits, seed=VALIDATION_BINARIZE_SEED)
    return digits[:, None]


def _rate(integer: torch.nn.Module, images: np.ndarray) -> float:
    """Integer −ELBO of ``images`` in bits/dim."""
    bits = [negative_elbo_bits(integer, images[lo : lo + BATCH], PRECISION) for lo in range(0, len(images), BATCH)]
    return float(np.concatenate(bits).mean() / images[0].size)


def _load(name: str) -> tuple[torch.nn.Module, dict]:
    recipe = json.loads((MODELS / name / "recipe.json").read_text())
    return load_weights(MODELS / name / "weights.safetensors")[0], recipe


@torch.no_grad()
def form_rates(name: str) -> dict[str, float]:
    """Validation −ELBO (bits/dim) of each integer form of model ``name``'s float weights."""
    model, recipe = _load(name)
    images, calibration = validation_set(recipe)[0], calibration_images(recipe)
    names = DIGIT_FORMS if isinstance(model, HVAE) else NARROW_FORMS
    forms = {"wide": integer_form(model), **{form: integer_form(model, calibration, form) for form in names}}
    return {form: _rate(integer, images) for form, integer in forms.items()}


@torch.no_grad()
def encoder_rates(name: str) -> dict[str, float]:
    """Validation −ELBO (bits/dim) of a VLAE in its recipe's decoder form with each encoder form."""
    model, recipe = _load(name)
    images, calibration = validation_set(recipe)[0], calibration_images(recipe)
    form = recipe["decoder_form"]
    forms = {"wide": integer_form(model, calibration, form),
             **{enc: integer_form(model, calibration, form, enc) for enc in ENCODER_FORMS}}
    return {enc: _rate(integer, images) for enc, integer in forms.items()}


@torch.no_grad()
def layer_rates(name: str) -> dict[str, float]:
    """Validation −ELBO (bits/dim) of a hierarchical VAE's "int8-w13" form, and of that form
    with one convolution at a time on 7-bit weights (keyed by the convolution's name)."""
    model, recipe = _load(name)
    images, calibration = validation_set(recipe)[0], calibration_images(recipe)
    w13, w7 = (integer_form(model, calibration, form) for form in ("int8-w13", "int8-w7"))
    rates = {"int8-w13": _rate(w13, images)}
    for layer, conv in w7.named_modules():
        if isinstance(conv, DigitConv2d):
            mixed = copy.deepcopy(w13)
            parent, _, attr = layer.rpartition(".")
            setattr(mixed.get_submodule(parent) if parent else mixed, attr, conv)
            rates[layer] = _rate(mixed, images)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model with float weights (models/NAME/weights.safetensors)")
    parser.add_argument("--layers", action="store_true",
                        help="a hierarchical VAE: the cost of 7-bit weights in each convolution alone")
    parser.add_argument("--encoder", action="store_true",
                        help="a VLAE: each encoder form, its decoder in the recipe's form")
    args = parser.parse_args()
    measure = layer_rates if args.layers else encoder_rates if args.encoder else form_rates
    rates = measure(args.model)
    kind = "layer_limbs" if args.layers else "encoder_forms" if args.encoder else "forms"
    out = ROOT / "bench" / "results" / f"{kind}_{args.model}.json"
    images = validation_set(json.loads((MODELS / args.model / "recipe.json").read_text()))[1]
    doc = {"model": args.model, "images": images, "neg_elbo_bpd": rates, "stamp": stamp()}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(rates, indent=1))


if __name__ == "__main__":
    main()
