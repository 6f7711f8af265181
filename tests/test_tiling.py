"""Large images are coded as chained tiles: exact, bounded batches, any size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bbcodec
from bbcodec import container, tiling


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from([None, 32, 64, 100]))
def test_layout_covers_every_pixel_exactly_once(h, w, tile):
    cover = np.zeros((h, w), np.int32)
    for unit in tiling.layout(0, h, w, tile):
        cover[unit.y : unit.y + unit.h, unit.x : unit.x + unit.w] += 1
        assert not tile or max(unit.h, unit.w) <= max(tile, 0) or (h <= tile and w <= tile)
    assert (cover == 1).all()
    if tile and (h > tile or w > tile):
        counts = tiling.class_counts(h, w, tile)
        assert sum(n for _, n in counts) == len(tiling.layout(0, h, w, tile))


@pytest.fixture()
def small_tiles(monkeypatch):
    monkeypatch.setattr(tiling, "DEFAULT_TILE", 32)
    monkeypatch.setattr(tiling, "TILE_ABOVE_SAMPLES", 2000)


def test_tiled_rgb_and_gray_round_trip(zoo_env, small_tiles):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    data = bbcodec.compress([rgb, small, rgb[:33, :65]], model="tiny-rgb")
    header, _ = container.unpack(data)
    assert header.tile == 32
    assert sum(header.groups) == container.units_of(header.shapes, 32) == 9 + 1 + 6
    out = bbcodec.decompress(data)
    for a, b in zip(out, [rgb, small, rgb[:33, :65]]):
        np.testing.assert_array_equal(a, b)
    gray = rng.integers(0, 256, (50, 41), dtype=np.uint8)
    np.testing.assert_array_equal(bbcodec.decompress(bbcodec.compress([gray], model="tiny"))[0], gray)


def test_autoregressive_models_tile_anything_wider_than_32():
    assert tiling.choose_tile([(28, 28, 1), (32, 32, 3)], autoregressive=True) is None
    assert tiling.choose_tile([(28, 28, 1), (20, 33, 1)], autoregressive=True) == tiling.AUTOREGRESSIVE_TILE == 32
    assert tiling.choose_tile([(20, 33, 1)], autoregressive=False) is None


def test_an_autoregressive_model_codes_small_tiles_exactly(zoo_env):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (40, 70), dtype=np.uint8), rng.integers(0, 256, (12, 12), dtype=np.uint8)]
    data = bbcodec.compress(images, model="tiny-local")
    header, _ = container.unpack(data)
    assert header.tile == 32 and sum(header.groups) == 6 + 1
    for a, b in zip(bbcodec.decompress(data), images):
        np.testing.assert_array_equal(a, b)


def test_small_files_are_not_tiled(zoo_env):
    data = bbcodec.compress([np.zeros((28, 28), np.uint8)], model="tiny")
    assert container.unpack(data)[0].tile is None


def test_a_forged_tile_side_is_refused(zoo_env, small_tiles):
    from bbcodec.errors import FormatError

    data = bytearray(bbcodec.compress([np.zeros((40, 40), np.uint8)], model="tiny"))
    header, words = container.unpack(bytes(data))
    header.tile = 33  # a different layout: the groups no longer match the units
    forged = container.pack(header, words)
    with pytest.raises(FormatError):
        bbcodec.decompress(forged)
