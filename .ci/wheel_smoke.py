"""Run inside a clean venv holding only the built wheel: the installed package encodes
and decodes real image files through its CLI, and ships nothing from training."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def main(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped_code = [n for n in names if n.startswith("bbcodec/zoo_data/") and n.endswith(".py")]
    assert not shipped_code, f"the wheel ships training code: {shipped_code}"
    for part in ("bbcodec/exact/tables.safetensors", "bbcodec/zoo_data/vlae-mnist-large-q8-int8enc/integer.safetensors",
                 "bbcodec/zoo_data/vlae-mnist-large-q8/integer.safetensors",
                 "bbcodec/zoo_data/vlae-mnist-large-int8/integer.safetensors",
                 "bbcodec/zoo_data/vlae-mnist-large/weights.safetensors"):
        assert part in names, f"the wheel lacks {part}"
    bbcodec_cli = Path(sys.executable).with_name("bbcodec")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = []
        for i, shape in enumerate([(28, 28), (28, 28), (40, 33)]):
            img = np.where(rng.random(shape) < 0.8, 0, rng.integers(0, 256, shape)).astype(np.uint8)
            Image.fromarray(img).save(tmp / f"img{i}.png")
            images.append(img)
        # two digits in one file decode into a folder; one image of another size into a file
        for files, bbc, out in (([tmp / "img0.png", tmp / "img1.png"], "digits.bbc", "digits"),
                                ([tmp / "img2.png"], "any.bbc", "any.png")):
            subprocess.run([bbcodec_cli, "encode", *map(str, files), "-o", str(tmp / bbc)], check=True)
            subprocess.run([bbcodec_cli, "decode", str(tmp / bbc), "-o", str(tmp / out)], check=True)
        decoded = [tmp / "digits" / "img0.png", tmp / "digits" / "img1.png", tmp / "any.png"]
        for path, img in zip(decoded, images, strict=True):
            assert np.array_equal(np.asarray(Image.open(path)), img), path
    print(f"wheel check: {wheel.name} installs, encodes and decodes 3 images exactly; no training code shipped")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
