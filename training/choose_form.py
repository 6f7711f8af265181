"""How a derived model's integer form is chosen: the validation −ELBO of each form.

    python -m training.choose_form vlae-mnist-wide      # bench/results/forms_vlae-mnist-wide.json

Codes the model's validation images (``training.export.validation_set``: MNIST
training digits 59,000–59,499, binarised with seed 2 for a binarised model; an RGB
model's held-out photos) through each integer form of one float model: the wide form
(float64 products) and the int8 forms with 13-bit and with 7-bit weights
(``narrow.WEIGHT_DIGITS``: a VLAE's decoder, a hierarchical VAE's convolutions), and
reports each form's integer −ELBO in bits/dim. A recipe's ``decoder_form`` is the
fastest form whose rate is not measurably worse. Test images take no part.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bbcodec.data import binarize, load_mnist
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.exact.export import integer_form
from bbcodec.exact.narrow import WEIGHT_DIGITS
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


@torch.no_grad()
def form_rates(name: str) -> dict[str, float]:
    """Validation −ELBO (bits/dim) of each integer form of model ``name``'s float weights."""
    recipe = json.loads((MODELS / name / "recipe.json").read_text())
    model, _ = load_weights(MODELS / name / "weights.safetensors")
    images = validation_set(recipe)[0]
    calibration = calibration_images(recipe)
    forms = {"wide": integer_form(model)}
    forms.update({form: integer_form(model, calibration, digits) for form, digits in WEIGHT_DIGITS.items()})
    rates = {}
    for form, integer in forms.items():
        bits = [negative_elbo_bits(integer, images[lo : lo + BATCH], PRECISION) for lo in range(0, len(images), BATCH)]
        rates[form] = float(np.concatenate(bits).mean() / images[0].size)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model with float weights (models/NAME/weights.safetensors)")
    args = parser.parse_args()
    rates = form_rates(args.model)
    out = ROOT / "bench" / "results" / f"forms_{args.model}.json"
    images = validation_set(json.loads((MODELS / args.model / "recipe.json").read_text()))[1]
    doc = {"model": args.model, "images": images, "neg_elbo_bpd": rates, "stamp": stamp()}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
