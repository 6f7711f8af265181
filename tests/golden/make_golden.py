"""Write the golden .bbc files of the current format (version 2: integer coding).

    python tests/golden/make_golden.py          # writes tests/golden/v2/ (refuses to overwrite)

One file per shipped model and per mode (plain, anchored single image, importance
weighted, lossy, tiled, RGB coupling, binary), plus the tiny test model's files.
``v2/MANIFEST.json`` records for each file its inputs, how it was written and the
CPU model of the machine that wrote it; ``test_golden.py`` decodes every file and
re-encodes its inputs to the same bytes, on whatever machine runs the tests.
Files of earlier format revisions stay in ``v1/`` and are never rewritten.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
V2 = HERE / "v2"
sys.path.insert(0, str(HERE.parents[1]))

# name: (model, input, options); inputs are arrays in v2/inputs.npz
CASES = {
    "tiny_digits_anchored.bbc": ("tiny", "tiny_digits", {"names": ["a.png", "b.png", "c.png"]}),
    "tiny_one_digit.bbc": ("tiny", "tiny_digit", {}),
    "tiny_importance.bbc": ("tiny", "tiny_digits_x10", {"samples": 4}),
    # Forms since retired (their files still decode; encoding with them is refused):
    "default_digits.bbc": ("vlae-mnist-large", "mnist_8", {}),  # written when it was the default
    "default_one_digit.bbc": ("vlae-mnist-large", "mnist_1", {}),
    "default_int8_digits.bbc": ("vlae-mnist-large-int8", "mnist_8", {}),  # the default before -q8
    "default_int8_one_digit.bbc": ("vlae-mnist-large-int8", "mnist_1", {}),
    "wide_importance.bbc": ("vlae-mnist-wide", "mnist_12", {"samples": 4}),
    "wide_lossy.bbc": ("vlae-mnist-wide", "mnist_4", {"lossy_step": 1.0, "lossy_draws": 16}),
    "binary_digits.bbc": ("vlae-mnist-binary", "binary_4", {}),
    "mnist_digits.bbc": ("mnist", "mnist_4", {}),
    "biva_digits.bbc": ("biva-mnist", "mnist_4", {}),
    "rgb_cifar.bbc": ("rgb", "cifar_2", {}),
    "rgb_tiled.bbc": ("rgb", "cifar_wide", {}),
    "tiny_int8.bbc": ("tiny-vlae-int8", "tiny_12", {}),
    "wide_int8_importance.bbc": ("vlae-mnist-wide-int8", "mnist_12", {"samples": 4}),
    "wide_int8_lossy.bbc": ("vlae-mnist-wide-int8", "mnist_4", {"lossy_step": 1.0, "lossy_draws": 16}),
    "binary_int8_digits.bbc": ("vlae-mnist-binary-int8", "binary_4", {}),
    "mnist_int8_w7_digits.bbc": ("mnist-int8-w7", "mnist_4", {}),
    "mnist_int8_w7_crops.bbc": ("mnist-int8-w7", "mnist_crops", {}),  # 24 x 28: the any-size default
    "default_q8_digits.bbc": ("vlae-mnist-large-q8", "mnist_8", {}),  # the default before -int8enc
    "default_q8_one_digit.bbc": ("vlae-mnist-large-q8", "mnist_1", {}),
    "default_q8_importance.bbc": ("vlae-mnist-large-q8", "mnist_12", {"samples": 4}),
    "default_q8_int8enc_digits.bbc": (None, "mnist_8", {}),  # the default model: vlae-mnist-large-q8-int8enc
    "default_q8_int8enc_one_digit.bbc": (None, "mnist_1", {}),
    "default_q8_int8enc_importance.bbc": (None, "mnist_12", {"samples": 4}),
    "fast_q8_digits.bbc": ("vlae-mnist-fast-q8", "mnist_8", {}),  # the fast preset (--fast)
    "fast_q8_one_digit.bbc": ("vlae-mnist-fast-q8", "mnist_1", {}),
    "wide_q8_digits.bbc": ("vlae-mnist-wide-q8", "mnist_8", {}),
    "wide_q8_importance.bbc": ("vlae-mnist-wide-q8", "mnist_12", {"samples": 4}),
    "wide_q8_lossy.bbc": ("vlae-mnist-wide-q8", "mnist_4", {"lossy_step": 1.0}),  # the default draws
}


def zoo_models() -> None:
    """The test-only models of ``zoo/`` (written once, like the golden files)."""
    from tests.conftest import TINY_VLAE_CONFIG, make_tiny, tiny_calibration, write_zoo_model

    if not (HERE / "zoo" / "tiny-vlae-int8").exists():
        write_zoo_model(HERE / "zoo", "tiny-vlae-int8", make_tiny(TINY_VLAE_CONFIG, 2), tiny_calibration())


def inputs() -> dict[str, np.ndarray | list[np.ndarray]]:
    """The images each case codes, stored once in v2/inputs.npz (so tests need no data download)."""
    path = V2 / "inputs.npz"
    if path.exists():
        arrays = dict(np.load(path))
        if "tiny_12" not in arrays:  # added with the int8 pixel net's golden file
            arrays["tiny_12"] = arrays["tiny_digits"][:, :12, :12]
            np.savez_compressed(path, **arrays)
        if "mnist_crops" not in arrays:  # added with the HVAE's digit form
            from bbcodec.data import load_mnist

            arrays["mnist_crops"] = load_mnist("test")[0][4:7, 2:26]
            np.savez_compressed(path, **arrays)
        return arrays
    from bbcodec.data import BINARIZED_TEST_SEED, binarize, load_cifar10_samples, load_mnist
    from tests.conftest import random_digits

    mnist = load_mnist("test")[0]
    cifar = np.stack(load_cifar10_samples()[0][:2])
    tiny = random_digits(3, seed=123)
    tiny[2] = tiny[2][::-1]
    arrays = {
        "tiny_digits": tiny, "tiny_digit": tiny[:1], "tiny_digits_x10": np.concatenate([tiny] * 10),
        "mnist_8": mnist[:8], "mnist_1": mnist[:1], "mnist_12": mnist[:12], "mnist_4": mnist[:4],
        "binary_4": binarize(mnist[:4], seed=BINARIZED_TEST_SEED), "cifar_2": cifar,
        "cifar_wide": np.concatenate([cifar[0], cifar[1]], axis=1)[None],  # 32 x 64: tiled in 32 x 32
        "tiny_12": tiny[:, :12, :12], "mnist_crops": mnist[4:7, 2:26],
    }
    np.savez_compressed(path, **arrays)
    return arrays


def write(name: str, images: np.ndarray, model: str | None, options: dict) -> bytes:
    import bbcodec

    return bbcodec.compress(list(images), model=model, **options)


def reconstruction_sha256(data: bytes) -> str:
    """sha256 of the pictures a lossy file decodes to, stacked (the golden test's pin)."""
    import hashlib

    import bbcodec

    return hashlib.sha256(np.stack(bbcodec.decompress(data)).tobytes()).hexdigest()


def main() -> None:
    from bench.stamp import stamp

    os.environ["BBCODEC_MODELS_DIR"] = str(HERE / "zoo")  # the tiny model; shipped models come after it
    V2.mkdir(exist_ok=True)
    zoo_models()
    arrays = inputs()
    manifest_path = V2 / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    provenance = stamp("python tests/golden/make_golden.py")
    for name, (model, key, options) in CASES.items():
        if (V2 / name).exists():
            continue  # golden files are never rewritten
        data = write(name, arrays[key], model, options)
        (V2 / name).write_bytes(data)
        manifest[name] = {"model": model, "input": key, "options": options, "bytes": len(data),
                          "cpu": provenance["cpu"], "written_by": f"bbcodec {provenance['commit'][:12]}",
                          "date": provenance["date"]}
        if "lossy_step" in options:  # a lossy file's CRC covers its latents: pin the picture too
            manifest[name]["reconstruction_sha256"] = reconstruction_sha256(data)
        print(f"{name}: {len(data)} bytes")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
