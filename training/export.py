"""Export a trained model's integer coding form and measure what the integer path pays.

    python -m training.export NAME                # write models/NAME/integer.safetensors (once)
    python -m training.export NAME --measure      # its test-set -ELBO, integer and float: models/NAME/scores.json
    python -m training.export NAME --validate     # its validation -ELBO: models/NAME/validation.json

A model whose recipe names ``derived_from`` and ``decoder_form`` is another integer
form of a shipped model's float weights (its decoder on int8 products, calibrated on
the last 256 MNIST training digits), so it gets a name of its own. A VLAE's recipe
may also name an ``encoder_form`` (its encoder on int8 digits, calibrated likewise).

The integer form is what .bbc files are bound to, so it is written once and never
changes (``--force`` is for a model that has not shipped). Scores live in their own
file, stamped with command, commit and CPU, so measuring again never touches the
model.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bbcodec.data import BINARIZED_TEST_SEED, binarize, load_cifar10_samples, load_mnist
from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.exact.export import INTEGER_FILE, integer_form, load_integer, save_integer
from bbcodec.nn.objective import elbo_terms
from bbcodec.weights import file_sha256, load_weights
from bench.stamp import stamp

MODELS = Path(__file__).resolve().parents[1] / "models"
PRECISION = 8  # the coder's default latent precision (bbcodec.bitsback.CoderSettings)
BATCH = 100


def test_images(dataset: str) -> tuple[np.ndarray, str]:
    """The test set a model's card reports on, (N, C, H, W) uint8, and its name."""
    if dataset == "mnist":
        return load_mnist("test")[0][:, None], "MNIST test (10,000)"
    if dataset == "mnist-binary":
        images = binarize(load_mnist("test")[0], seed=BINARIZED_TEST_SEED)
        return images[:, None], f"binarised MNIST test (10,000, seed {BINARIZED_TEST_SEED})"
    if dataset.startswith("rgb"):
        return np.stack(load_cifar10_samples()[0]).transpose(0, 3, 1, 2), "CIFAR-10 test, first 20 (foolbox PNGs)"
    raise ValueError(f"no test set for dataset {dataset!r}")


CALIBRATION_DIGITS = slice(59_744, 60_000)  # the last 256 MNIST training digits: int8 forms' calibration
CALIBRATION_BINARIZE_SEED = 1  # binarised models calibrate on those digits binarised with this seed


CALIBRATION_RGB = 256  # an RGB model calibrates on the first of its training mix


def calibration_name(recipe: dict) -> str:
    """What :func:`calibration_images` returns for this recipe, in words (for the card)."""
    if recipe["dataset"].startswith("rgb"):
        from training.train import rgb_set_names

        return f"the first {CALIBRATION_RGB} images of the training mix ({', '.join(sorted(set(rgb_set_names(recipe))))})"
    digits = f"MNIST training digits {CALIBRATION_DIGITS.start:,}–{CALIBRATION_DIGITS.stop - 1:,}"
    return digits + (f", binarised with seed {CALIBRATION_BINARIZE_SEED}" if recipe["dataset"] == "mnist-binary" else "")


def calibration_images(recipe: dict) -> np.ndarray:
    """The images an int8 form's grids are calibrated on (N, C, H, W): training images only
    (calibration measures value ranges; no test or validation image takes part): the last
    256 training digits, binarised for a binarised model; an RGB model's first training patches."""
    dataset = recipe["dataset"]
    if dataset.startswith("rgb"):
        from training.train import rgb_patches, rgb_set_names

        return rgb_patches(rgb_set_names(recipe))[0][:CALIBRATION_RGB].numpy()
    digits = load_mnist("train")[0][CALIBRATION_DIGITS]
    if dataset == "mnist-binary":
        digits = binarize(digits, seed=CALIBRATION_BINARIZE_SEED)
    elif dataset != "mnist":
        raise ValueError(f"no calibration images for dataset {dataset!r}")
    return digits[:, None]


def float_weights(folder: Path) -> Path:
    """The float weights a model's integer form comes from: its own, or, for a model
    that is another integer form of a shipped model (``derived_from``), that model's."""
    recipe = json.loads((folder / "recipe.json").read_text())
    source = MODELS / recipe["derived_from"] if "derived_from" in recipe else folder
    return source / "weights.safetensors"


def successor(folder: Path) -> str | None:
    """The model whose recipe derives from this folder's float weights (``derived_from``), if
    any: those weights code through it and get no new integer form of their own."""
    from bbcodec import zoo

    return zoo.successor(folder.name)


def export(name: str, force: bool = False) -> Path:
    folder = MODELS / name
    target = folder / INTEGER_FILE
    if target.exists() and not force:
        raise SystemExit(f"{target} exists: a shipped integer form never changes (a new one needs a new name)")
    if later := successor(folder):
        raise SystemExit(f"{name}'s float weights code as {later} (its recipe derives from them): "
                         "they get no integer form of their own")
    weights = float_weights(folder)
    model, _ = load_weights(weights)
    recipe = json.loads((folder / "recipe.json").read_text())
    form = recipe.get("decoder_form")
    if form is None:
        integer = integer_form(model)
    else:  # the decoder on int8 products, its grids calibrated on training digits
        integer = integer_form(model, calibration_images(recipe), form, recipe.get("encoder_form"))
    save_integer(integer, target, {"float_sha256": file_sha256(weights)})
    return target


@torch.no_grad()
def measure(name: str, limit: int | None = None) -> dict:
    """Integer and float −ELBO (bits/dim) of the model on its test set."""
    folder = MODELS / name
    recipe = json.loads((folder / "recipe.json").read_text())
    images, label = test_images(recipe["dataset"])
    images = np.ascontiguousarray(images[:limit])
    integer, _ = load_integer(folder / INTEGER_FILE)
    model, _ = load_weights(float_weights(folder))
    torch.manual_seed(0)
    int_bits, float_nats = [], []
    for lo in tqdm(range(0, len(images), BATCH), desc=name, unit="batch"):
        x = images[lo : lo + BATCH]
        int_bits.append(negative_elbo_bits(integer, x, PRECISION))
        float_nats.append(elbo_terms(model, torch.from_numpy(x)).negative_elbo().numpy())
    dims = images[0].size
    scores = {
        "test_set": label, "images": len(images), "latent_precision": PRECISION,
        "integer_neg_elbo_bpd": float(np.concatenate(int_bits).mean() / dims),
        "float_neg_elbo_bpd": float(np.concatenate(float_nats).mean() / dims / math.log(2)),
        "integer_sha256": file_sha256(folder / INTEGER_FILE), "stamp": stamp(),
    }
    (folder / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    return scores


RGB_VALIDATION_IMAGES = 1000  # the first of the validation mix, as training evaluated it


def validation_set(recipe: dict) -> tuple[np.ndarray, str]:
    """A model's validation images (N, C, H, W) and their name: what choices about it are
    measured on. MNIST models: training digits 59,000–59,499; `rgb`: patches and
    thumbnails of held-out photos (the recipe's mix, models/rgb/DATA.md)."""
    from bench.datasets import VALIDATION_DIGITS
    from training.choose_form import VALIDATION_BINARIZE_SEED, validation_images
    from training.train import rgb_patches, rgb_set_names

    if recipe["dataset"].startswith("rgb"):
        sets = rgb_set_names(recipe)
        images = rgb_patches(sets)[1][:RGB_VALIDATION_IMAGES].numpy()
        return images, f"first {len(images):,} of the validation mix ({', '.join(sorted(set(sets)))}; held-out photos)"
    seed = f", binarised with seed {VALIDATION_BINARIZE_SEED}" if recipe["dataset"] == "mnist-binary" else ""
    digits = f"MNIST training digits {VALIDATION_DIGITS.start:,}–{VALIDATION_DIGITS.stop - 1:,}"
    return validation_images(recipe["dataset"]), f"{digits} (validation{seed})"


@torch.no_grad()
def validate(name: str, run_stamp: dict | None = None) -> dict:
    """Integer −ELBO (bits/dim) on the model's validation set: ``models/NAME/validation.json``,
    stamped now or with ``run_stamp`` (that of the run this is part of)."""
    folder = MODELS / name
    images, label = validation_set(json.loads((folder / "recipe.json").read_text()))
    integer, _ = load_integer(folder / INTEGER_FILE)
    bits = [negative_elbo_bits(integer, images[lo : lo + BATCH], PRECISION) for lo in range(0, len(images), BATCH)]
    record = {"validation_set": label, "images": len(images),
              "integer_neg_elbo_bpd": float(np.concatenate(bits).mean() / images[0].size),
              "integer_sha256": file_sha256(folder / INTEGER_FILE), "stamp": run_stamp or stamp()}
    (folder / "validation.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--measure", action="store_true", help="measure test-set -ELBO, integer and float")
    parser.add_argument("--validate", action="store_true", help="measure integer -ELBO on the validation set")
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--force", action="store_true", help="overwrite an integer form (unshipped models only)")
    args = parser.parse_args()
    if args.validate:
        print(json.dumps(validate(args.name), indent=2))
    elif args.measure:
        print(json.dumps(measure(args.name, args.limit), indent=2))
    else:
        print(export(args.name, args.force))


if __name__ == "__main__":
    main()
