"""The RGB training sets' sampling rules (training/rgb/): a change here changes what the
shipped `rgb` model was trained on, so the rules are pinned, not just exercised."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training" / "rgb"))

import thumbnails  # noqa: E402

from training.train import RGB_SETS, rgb_set_names  # noqa: E402


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_working_copy_shrinks_only_large_photos():
    assert thumbnails.working_copy(photo(300, 500)).size == (500, 300)
    big = thumbnails.working_copy(photo(768, 1024))
    assert min(big.size) == thumbnails.WORKING_SHORT_SIDE and big.size == (512, 384)


def test_thumbnails_are_32x32_rgb_and_reproducible():
    img = thumbnails.working_copy(photo(400, 600))
    a = [thumbnails.random_thumbnail(img, np.random.default_rng(5)) for _ in range(3)]
    b = [thumbnails.random_thumbnail(img, np.random.default_rng(5)) for _ in range(3)]
    for x, y in zip(a, b):
        assert x.shape == (32, 32, 3) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)


def test_a_whole_photo_thumbnail_is_the_photo_squashed():
    """With the crop forced to the whole frame, the thumbnail is exactly PIL's resize of
    the photo: the crop box never leaves the image and nothing else touches the pixels."""
    src = photo(96, 128, seed=3)
    img = Image.fromarray(src)

    class WholeFrame:
        def uniform(self, lo, hi):
            return hi  # area fraction 1.0, then log-aspect at its top end (4:3)

        def integers(self, lo, hi=None):
            return 0  # offset 0; filter index 0 = BOX

    thumb = thumbnails.random_thumbnail(img, WholeFrame())
    expected = np.asarray(img.resize((32, 32), Image.Resampling.BOX, box=(0, 0, 128, 96)))
    np.testing.assert_array_equal(thumb, expected)


@pytest.mark.parametrize("recipe, names", [
    ({}, ["patches"]),
    ({"coarse_patches": True}, ["patches", "coarse"]),
    ({"rgb_sets": ["coarse", "thumbnails"]}, ["coarse", "thumbnails"]),
])
def test_recipes_name_their_training_sets(recipe, names):
    assert rgb_set_names(recipe) == names
    assert all(name in RGB_SETS for name in names)
