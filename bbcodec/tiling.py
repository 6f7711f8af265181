"""Large images are coded as tiles: bounded memory at any size.

A network batch must stay below :data:`~bbcodec.container.MAX_GROUP_PIXELS` samples
for the decoder's memory to be bounded, so an image larger than the tile side is
cut into ``tile × tile`` pieces (edge pieces smaller). Every piece is a *coding
unit*: units are chained on the one bits-back stack exactly like separate images,
so each tile's bits-back pays for the next and only the first unit of a file draws
on initial bits.

The layout is a pure function of (height, width, tile), so the file stores only the
tile side. Units of one image are ordered by shape class (full tiles, then the right
edge column, the bottom edge row, the corner), raster order within a class, so that
equal-shape units are consecutive and batch together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TILE = 256  # 256 x 256 x 3 = 196,608 samples per unit: 21 units fit one batch
TILE_ABOVE_SAMPLES = 1 << 20  # files with any image above this many samples are tiled
# A model that decodes pixel by pixel takes one sequential step per pixel position of
# a unit, whatever the batch: small units in large lockstep groups decode far faster.
# 32 is also the patch size `rgb` was trained on. Measured on a 128x128 crop of a
# photo with `rgb`: 2.475 bits/dim with 32x32 tiles, 2.627 with 64x64 tiles.
AUTOREGRESSIVE_TILE = 32
MIN_TILE, MAX_TILE = 32, 2048


@dataclass(frozen=True)
class Unit:
    """One coding unit: ``image`` index and the window ``[y:y+h, x:x+w]`` of it."""

    image: int
    y: int
    x: int
    h: int
    w: int


def layout(image: int, height: int, width: int, tile: int | None) -> list[Unit]:
    """The units of one image, in coding order."""
    if not tile or (height <= tile and width <= tile):
        return [Unit(image, 0, 0, height, width)]
    full_rows, full_cols = height // tile, width // tile
    edge_h, edge_w = height - full_rows * tile, width - full_cols * tile
    units = [Unit(image, r * tile, c * tile, tile, tile) for r in range(full_rows) for c in range(full_cols)]
    if edge_w:
        units += [Unit(image, r * tile, full_cols * tile, tile, edge_w) for r in range(full_rows)]
    if edge_h:
        units += [Unit(image, full_rows * tile, c * tile, edge_h, tile) for c in range(full_cols)]
    if edge_h and edge_w:
        units.append(Unit(image, full_rows * tile, full_cols * tile, edge_h, edge_w))
    return units


def class_counts(height: int, width: int, tile: int) -> list[tuple[tuple[int, int], int]]:
    """((h, w), count) of the shape classes of a tiled image, in :func:`layout` order."""
    rows, cols = height // tile, width // tile
    edge_h, edge_w = height - rows * tile, width - cols * tile
    classes = [((tile, tile), rows * cols), ((tile, edge_w), rows if edge_w else 0),
               ((edge_h, tile), cols if edge_h else 0), ((edge_h, edge_w), 1 if edge_h and edge_w else 0)]
    return [c for c in classes if c[1]]


def all_units(sizes: list[tuple[int, int]], tile: int | None) -> list[Unit]:
    """Units of every image of a file, in coding order."""
    return [u for i, (h, w) in enumerate(sizes) for u in layout(i, h, w, tile)]


def choose_tile(sizes_and_channels: list[tuple[int, int, int]], autoregressive: bool = False) -> int | None:
    """Tile only when some image is too big to be one network batch comfortably, or,
    for an autoregressive model, larger than :data:`AUTOREGRESSIVE_TILE` either way."""
    if autoregressive:
        big = any(max(h, w) > AUTOREGRESSIVE_TILE for h, w, _ in sizes_and_channels)
        return AUTOREGRESSIVE_TILE if big else None
    return DEFAULT_TILE if any(h * w * c > TILE_ABOVE_SAMPLES for h, w, c in sizes_and_channels) else None


def cut(image: np.ndarray, unit: Unit) -> np.ndarray:
    """The unit's pixels (a view) of an HxW or HxWxC image."""
    return image[unit.y : unit.y + unit.h, unit.x : unit.x + unit.w]


def paste(canvas: np.ndarray, unit: Unit, pixels: np.ndarray) -> None:
    canvas[unit.y : unit.y + unit.h, unit.x : unit.x + unit.w] = pixels
