"""Shared fixtures: tiny randomly initialised models registered as a model zoo.

Tiny random models check losslessness and the format quickly; the shipped, trained
model is exercised separately (test_shipped_model.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bbcodec.exact.export import INTEGER_FILE, integer_form, save_integer
from bbcodec.nn.hvae import HVAE, HVAEConfig, LatentSpec
from bbcodec.nn.vlae import VLAE, VLAEConfig
from bbcodec.weights import file_sha256, save_weights

TINY_CONFIG = HVAEConfig(
    image_channels=1, width=8, stages=3, blocks_per_stage=1,
    latents=(LatentSpec(2, 2), LatentSpec(1, 1)), mixture_components=2,
)


# BIVA: both layers have a bottom-up part (inferred on the way up, static bins).
TINY_BIVA_CONFIG = HVAEConfig(
    image_channels=1, width=8, stages=3, blocks_per_stage=1,
    latents=(LatentSpec(2, 2, bottom_up=1), LatentSpec(1, 1, bottom_up=2)), mixture_components=2,
)


TINY_VLAE_CONFIG = VLAEConfig(image_size=12, width=8, hidden=16, pixel_blocks=1, latent_dims=4, made_hidden=16,
                              mixture_components=2)


def make_tiny(config: HVAEConfig | VLAEConfig, seed: int) -> HVAE | VLAE:
    torch.manual_seed(seed)
    model = VLAE(config) if isinstance(config, VLAEConfig) else HVAE(config)
    # Random, non-trivial posteriors: perturb the zero-initialised heads.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def make_tiny_exact(config: HVAEConfig | VLAEConfig, seed: int):
    """The integer coding form of :func:`make_tiny`'s model."""
    return integer_form(make_tiny(config, seed))


def write_zoo_model(root: Path, name: str, model: HVAE | VLAE, calibration: np.ndarray | None = None) -> Path:
    """A zoo folder for ``model``; with ``calibration`` images its pixel net takes the int8 form."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    arch = "vlae" if isinstance(model, VLAE) else "hvae"
    save_weights(model, folder / "weights.safetensors", {"arch": arch, "config": model.cfg.to_dict(), "test_bpd": None})
    save_integer(integer_form(model, calibration), folder / INTEGER_FILE,
                 {"float_sha256": file_sha256(folder / "weights.safetensors")})
    return folder


def tiny_calibration(size: int = 12) -> np.ndarray:
    """Calibration images (N, 1, size, size) for the tiny models' int8 pixel nets."""
    return random_digits(16, seed=99, size=size)[:, None]


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    write_zoo_model(root, "tiny", make_tiny(TINY_CONFIG, 0))
    rgb = HVAEConfig(**{**TINY_CONFIG.__dict__, "image_channels": 3})
    write_zoo_model(root, "tiny-rgb", make_tiny(rgb, 1))
    write_zoo_model(root, "tiny-vlae", make_tiny(TINY_VLAE_CONFIG, 2))
    local = HVAEConfig(**{**TINY_BIVA_CONFIG.__dict__, "window_rows": 2, "window_cols": 3, "local_hidden": 8,
                          "local_blocks": 1})
    write_zoo_model(root, "tiny-local", make_tiny(local, 4))
    binary = VLAEConfig(**{**TINY_VLAE_CONFIG.__dict__, "likelihood": "bernoulli"})
    write_zoo_model(root, "tiny-vlae-binary", make_tiny(binary, 3))
    write_zoo_model(root, "tiny-vlae-int8", make_tiny(TINY_VLAE_CONFIG, 2), tiny_calibration())
    return root


@pytest.fixture()
def zoo_env(tiny_zoo, monkeypatch) -> Path:
    monkeypatch.setenv("BBCODEC_MODELS_DIR", str(tiny_zoo))
    return tiny_zoo


@pytest.fixture(scope="session")
def tiny_float_model() -> HVAE:
    return make_tiny(TINY_CONFIG, 0)


@pytest.fixture(scope="session")
def tiny_model(tiny_float_model):
    """The tiny model's integer coding form (what the coder runs)."""
    return integer_form(tiny_float_model)


def random_digits(n: int, seed: int = 0, size: int = 28) -> np.ndarray:
    """Sparse, MNIST-like images: mostly 0, some 255, some grey."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, size, size))
    img = np.where(base < 0.75, 0, np.where(base < 0.9, 255, rng.integers(0, 256, (n, size, size))))
    return img.astype(np.uint8)


def observation_at_means(model, x, shape=None, use_prior: bool = False):
    """Walk a model's layers feeding posterior (or prior) means; return p(x | z)."""
    from bbcodec.contract import InferredLatent
    from bbcodec.walk import identity, walk

    def choose(event):
        return event.prior_mean if use_prior and not isinstance(event, InferredLatent) else event.post_mean

    return walk(model, x, shape or tuple(x.shape), choose, identity).observation


def int8_over_wide_rate(float_model: HVAE | VLAE) -> float:
    """−ELBO of a tiny float model's int8 form over its wide form's, on 16 random 12×12 digits."""
    from bbcodec.exact.bounds import negative_elbo_bits

    x = random_digits(16, seed=8, size=12)[:, None]
    wide = negative_elbo_bits(integer_form(float_model), x, 8).mean()
    return negative_elbo_bits(integer_form(float_model, tiny_calibration()), x, 8).mean() / wide


def coder_round_trip(coder, x: np.ndarray):
    """Encode one batch ``x`` (N, C, H, W) with a BitsBackCoder and decode it back: (result, decoded)."""
    result = coder.encode([x])
    decoded = coder.decode(result.words, result.untouched_initial_words, result.initial_words, result.groups,
                           iter([x.shape[1:]] * len(result.groups)), plain_groups=result.plain_groups)
    return result, np.concatenate(decoded)


def saved_and_loaded(model, folder: Path, form: str, revision: int = 2):  # noqa: ANN001, ANN201 - any integer model
    """``model`` written as an integer form and read back: checks the file names ``form``
    under the format ``revision`` (2: narrow) and that the loaded model gives the same bits."""
    from bbcodec.exact.bounds import negative_elbo_bits
    from bbcodec.exact.export import load_integer

    path = folder / INTEGER_FILE
    save_integer(model, path, {})
    loaded, meta = load_integer(path)
    assert meta["exact_format"] == revision and meta["local_form"] == form
    x = random_digits(4, seed=1, size=12)[:, None]
    assert np.array_equal(negative_elbo_bits(model, x, 8), negative_elbo_bits(loaded, x, 8))
    return loaded
