"""Registry of shipped models: a name maps to a folder with weights and a card.

A model folder holds ``weights.safetensors`` (the float model: architecture, config
and test scores inside its metadata), ``integer.safetensors`` (its integer coding
form, :mod:`bbcodec.exact`) and ``CARD.md``. Only folders with an integer form are
models that code. A folder whose float weights another model's recipe names in
``derived_from`` holds a retired form: it decodes the files it wrote, but does not code
new ones (naming it is refused with the model that codes its weights now) and is not
listed. Folders are looked up, in order, in
``$BBCODEC_MODELS_DIR``, the source checkout's ``models/`` and the installed package
data ``bbcodec/zoo_data`` (the same folder, shipped in the wheel).
A .bbc file names its model and the first bytes of the integer form's sha256, so
decoding with other weights is refused instead of producing garbage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from bbcodec.errors import ModelMismatchError
from bbcodec.exact.export import INTEGER_FILE, load_integer
from bbcodec.nn import build_config
from bbcodec.weights import file_sha256, load_weights, read_meta

# Without --model, the first of these that codes the images wins (then any other).
# The VLAEs code 28x28 only, but there they beat mnist-int8-w7 on rate (models/*/scores.json).
# An "-int8" model is the integer form of the float weights its recipe derives from,
# with a VLAE's decoder or an HVAE's convolutions on int8 products. vlae-mnist-large-q8,
# vlae-mnist-large fine-tuned for 8-bit codes, leads on validation rate and codes faster
# (its int8 products take one digit per weight; models/*/validation.json);
# vlae-mnist-large-q8-int8enc is those weights with the encoder on int8 digits too, at
# the same validation rate (bench/results/encoder_forms_vlae-mnist-large-q8.json).
PREFERENCE = ("vlae-mnist-large-q8-int8enc", "vlae-mnist-large-int8", "vlae-mnist-wide-q8", "vlae-mnist-wide-int8", "mnist-int8-w7", "rgb")
# Lossy coding ranks separately: a model's lossy quality (label agreement at a rate)
# is measured on its own, and the best lossless model need not be the best lossy one
# (validation digits: bench/results/lossy_*_validation.json). vlae-mnist-wide-q8 codes a
# lossy file at about the rate and picture quality of vlae-mnist-wide-int8 (on 1,000
# validation digits a higher PSNR and a label kept for a few digits fewer, within the
# noise of that sample: bench/results/lossy_validation_1000/) and decodes it a few times
# faster (one int8 product per weight in its blocks, its encoder on int8 digits).
LOSSY_PREFERENCE = ("vlae-mnist-wide-q8",)
DEFAULT_MODEL = PREFERENCE[0]  # what compress() picks for 28x28 grayscale digits, and load_model() loads
# The fast preset for 28x28 grayscale (`bbcodec encode --fast`): a small VLAE trained for the
# same int8 form, several times less work per digit for a higher rate (`bbcodec models`
# lists both, each with its measured rate and speed).
FAST_PRESET = "vlae-mnist-fast-q8"
ANY_SIZE_GRAYSCALE = "mnist-int8-w7"  # the grayscale model that codes any image size


def search_path() -> list[Path]:
    paths = []
    if os.environ.get("BBCODEC_MODELS_DIR"):
        paths.append(Path(os.environ["BBCODEC_MODELS_DIR"]))
    here = Path(__file__).resolve().parent
    paths.append(here.parent / "models")
    paths.append(here / "zoo_data")
    return [p for p in paths if p.is_dir()]


@dataclass(frozen=True)
class ModelInfo:
    """What `bbcodec models` lists: name, where, and the scores its card reports."""

    name: str
    path: Path  # the integer coding form
    arch: str
    image_channels: int
    downsampling: int
    test_bpd: float | None  # the integer model's -ELBO on its test set (bits/dim)
    sha256: str  # of the integer form: what a file is bound to
    kl_bits_per_layer: tuple[float, ...] = ()
    latent_part_names: tuple[str, ...] = ()  # what each KL term is, in the same order
    image_size: int | None = None  # models with a global latent code one square size only
    autoregressive: bool = False  # decodes pixel by pixel: wants large lockstep groups
    pixel_levels: int = 256  # 2 for a binarised-image model: pixels must be 0 or 1
    float_test_bpd: float | None = None  # the float model's -ELBO, for comparison
    speed: dict | None = None  # measured images/s each way and where (speed.json, python -m bench.speed)

    @property
    def coding_group(self) -> int:
        """Images per network batch once the chain is warm (the speed/memory trade-off)."""
        return 512 if self.autoregressive else 64

    def accepts(self, height: int, width: int) -> bool:
        return self.image_size is None or (height, width) == (self.image_size, self.image_size)

    @property
    def weights_hash(self) -> bytes:
        return bytes.fromhex(self.sha256)[:4]


def _info(name: str, folder: Path) -> ModelInfo:
    integer = folder / INTEGER_FILE
    meta = read_meta(integer)
    weights = _float_weights(folder)
    float_meta = read_meta(weights) if weights.exists() else {}
    scores = _scores(folder)
    config = build_config(meta["arch"], meta["config"])
    return ModelInfo(
        name=name,
        path=integer,
        arch=meta["arch"],
        image_channels=config.image_channels,
        downsampling=config.downsampling,
        test_bpd=scores.get("integer_neg_elbo_bpd"),
        float_test_bpd=scores.get("float_neg_elbo_bpd"),
        sha256=_integer_sha256(integer),
        kl_bits_per_layer=tuple(float_meta.get("kl_bits_per_layer", ())),
        latent_part_names=config.latent_part_names,
        image_size=getattr(config, "image_size", None),
        autoregressive=getattr(config, "autoregressive", False),
        pixel_levels=2 if getattr(config, "likelihood", "logistic") == "bernoulli" else 256,
        speed=_speed(folder),
    )


def _integer_sha256(path: Path) -> str:
    """The sha256 of an integer form, hashed once per file version in a process: every
    compress and decompress lists the models, and hashing them all each time cost
    about 40 ms, a tenth of decoding one digit."""
    st = path.stat()
    return _sha256_of_version(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_of_version(path: Path, size: int, mtime_ns: int) -> str:  # noqa: ARG001 - the cache key
    return file_sha256(path)


def _float_weights(folder: Path) -> Path:
    """The float weights behind a model's integer form (another folder's, for a model whose
    recipe names them in ``derived_from``)."""
    source = _derived_from(folder)
    return (folder.parent / source if source else folder) / "weights.safetensors"


def _scores(folder: Path) -> dict:
    """The model's measured test scores (``scores.json``: ``python -m bench --publish`` writes them for
    every shipped model, ``python -m training.export NAME --measure`` for a new one)."""
    path = folder / "scores.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _speed(folder: Path) -> dict | None:
    """The model's measured coding speed (``speed.json``, written by ``python -m bench.speed``):
    images/s each way, on which images, on which CPU."""
    path = folder / "speed.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return {"encode_img_per_s": record["encode_img_per_s"], "decode_img_per_s": record["decode_img_per_s"],
            "images": record["images"], "dataset": record["dataset"], "cpu": record["stamp"]["cpu"],
            "cores": record["stamp"]["cores"], "commit": record["stamp"]["commit"]}


def _installed() -> dict[str, ModelInfo]:
    """Every folder with an integer form, first on the search path winning per name:
    the models that code and the retired forms that only decode their files."""
    seen: dict[str, ModelInfo] = {}
    for root in search_path():
        for integer in sorted(root.glob(f"*/{INTEGER_FILE}")):
            name = integer.parent.name
            if name not in seen:
                seen[name] = _info(name, integer.parent)
    return seen


def _successors(installed: dict[str, ModelInfo]) -> dict[str, str]:
    """Retired form -> the model that codes its float weights now: a folder whose weights
    another model's recipe names in ``derived_from`` no longer codes by its own name."""
    order = sorted(installed, key=lambda n: PREFERENCE.index(n) if n in PREFERENCE else len(PREFERENCE))
    successors: dict[str, str] = {}
    for name in order:  # the most preferred derived model names a source's successor
        if source := _derived_from(installed[name].path.parent):
            successors.setdefault(source, name)
    return successors


def list_models() -> list[ModelInfo]:
    """Every shipped model that codes (retired forms, which only decode, left out)."""
    installed = _installed()
    retired = _successors(installed)
    return [info for name, info in installed.items() if name not in retired]


def _derived_from(folder: Path) -> str | None:
    """The folder whose float weights this model's integer form is made from (its recipe's
    ``derived_from``); None when they are the model's own."""
    recipe = folder / "recipe.json"
    return json.loads(recipe.read_text()).get("derived_from") if recipe.exists() else None


def successor(name: str) -> str | None:
    """The model that codes folder ``name``'s float weights when ``name`` is a retired form."""
    return _successors(_installed()).get(name)


def find_model(name: str) -> ModelInfo:
    """The coding model ``name``; a retired form is refused with the name that replaces it."""
    models = list_models()
    for info in models:
        if info.name == name:
            return info
    installed = _installed()
    if later := _successors(installed).get(name):
        decodes = f"; files written with {name!r} still decode" if name in installed else ""
        raise ModelMismatchError(
            f"model {name!r} is retired: its float weights code as {later!r} (--model {later}){decodes}")
    known = ", ".join(m.name for m in models) or "none"
    raise ModelMismatchError(f"model {name!r} is not installed (shipped models: {known})")


@lru_cache(maxsize=8)
def _load(path: Path, sha256: str) -> torch.nn.Module:
    model, _ = load_integer(path)
    return model


def load_model(name: str = DEFAULT_MODEL) -> tuple[torch.nn.Module, ModelInfo]:
    """The integer coding form of a shipped model (proven exact on load) and its registry entry."""
    info = find_model(name)
    return _load(info.path, info.sha256), info


def load_float_model(name: str) -> torch.nn.Module:
    """The float model a shipped integer form was exported from (training, float bounds; never coding)."""
    info = find_model(name)
    model, _ = load_weights(_float_weights(info.path.parent))
    return model


def name_for_hash(weights_hash: bytes) -> str:
    """The installed model (or retired form) with these weights, or the hash itself when none is."""
    for info in _installed().values():
        if info.weights_hash == weights_hash:
            return info.name
    return f"sha256:{weights_hash.hex()}…"


def model_for_file(name: str, weights_hash: bytes) -> tuple[torch.nn.Module, ModelInfo]:
    """The model a file was written with, refusing other weights under the same name.

    An empty ``name`` (one-image files) means the weights hash alone names the model.
    """
    if not name:
        name = name_for_hash(weights_hash)
        if name.startswith("sha256:"):
            known = ", ".join(m.name for m in list_models()) or "none"
            raise ModelMismatchError(
                f"this file was written with model weights {name} that no installed model has "
                f"(installed: {known}); install the bbcodec version that wrote it")
    info = _installed().get(name)  # a retired form still decodes the files it wrote
    if info is None:
        known = ", ".join(m.name for m in list_models()) or "none"
        raise ModelMismatchError(f"this file needs model {name!r}, which is not installed (installed: {known}); "
                                 "install the bbcodec version that wrote it")
    model = _load(info.path, info.sha256)
    if info.weights_hash != weights_hash:
        raise ModelMismatchError(
            f"this file was written with different weights for model {name!r} "
            f"(file: {weights_hash.hex()}, installed: {info.weights_hash.hex()}); "
            "install the bbcodec version that wrote it"
        )
    return model, info
