"""Large images are coded as tiles: bounded memory at any size.

A network batch must stay below :data:`~bbcodec.limits.MAX_GROUP_PIXELS` samples
for the decoder's memory to be bounded, so an image larger than the tile side is
cut into ``tile × tile`` pieces (edge pieces smaller). Every piece is a *coding
unit*: units are chained on the one bits-back stack exactly like separate images,
so each tile's bits-back pays for the next and only the first unit of a file draws
on initial bits.

The layout is a pure function of (height, width, tile), so the file stores only the
tile side. Units of one image are ordered by shape class (full tiles, then the right
edge column, the bottom edge row, the corner), raster order within a class, so that
equal-shape units are consecutive and batch together. This module owns that
geometry; a file header records only the image shapes and the tile side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbcodec.limits import MAX_TILE, MIN_TILE  # noqa: F401  (the tile sides a file may declare)

DEFAULT_TILE = 256  # 256 x 256 x 3 = 196,608 samples per unit: 21 units fit one batch
TILE_ABOVE_SAMPLES = 1 << 20  # files with any image above this many samples are tiled
# A model that decodes pixel by pixel takes one sequential step per pixel position of
# a unit, whatever the batch: small units in large lockstep groups decode far faster.
# 32 is also the patch size `rgb` was trained on. Measured on a 128x128 crop of a
# photo with `rgb`: 2.475 bits/dim with 32x32 tiles, 2.627 with 64x64 tiles.
AUTOREGRESSIVE_TILE = 32


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


@dataclass(frozen=True)
class ImageShape:
    """One image's geometry: height, width and channels (1 = grayscale, 3 = RGB)."""

    height: int
    width: int
    channels: int

    @property
    def dims(self) -> int:
        return self.height * self.width * self.channels



def run_lengths(values: list) -> list[tuple[object, int]]:
    """(value, count) runs of consecutive equal values."""
    runs: list[tuple[object, int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    return runs


def units_of(shapes: list[ImageShape], tile: int | None) -> int:
    """How many coding units (whole images or tiles) the images make, without building them."""
    total = 0
    for s in shapes:
        whole = not tile or (s.height <= tile and s.width <= tile)
        total += 1 if whole else -(-s.height // tile) * -(-s.width // tile)
    return total


def unit_shape_runs_of(shapes: list[ImageShape], tile: int | None) -> list[tuple[ImageShape, int]]:
    """(shape, count) runs of the coding units of ``shapes`` in coding order.

    Computed arithmetically from the shape runs, so a header that declares millions
    of images costs nothing to check.
    """
    runs: list[tuple[ImageShape, int]] = []

    def add(shape: ImageShape, count: int) -> None:
        if count:
            if runs and runs[-1][0] == shape:
                runs[-1] = (shape, runs[-1][1] + count)
            else:
                runs.append((shape, count))

    for shape, count in run_lengths(shapes):
        tiled = tile and (shape.height > tile or shape.width > tile)
        if not tiled:
            add(shape, count)
            continue
        for _ in range(count):
            for (h, w), n in class_counts(shape.height, shape.width, tile):
                add(ImageShape(h, w, shape.channels), n)
    return runs


def group_shapes_from(unit_runs: list[tuple[ImageShape, int]], groups: list[int]) -> list[ImageShape | None]:
    """The unit shape of each group; None where a group would straddle two shapes."""
    out: list[ImageShape | None] = []
    run, used = 0, 0  # units of unit_runs[run] already taken by earlier groups
    for size in groups:
        while run < len(unit_runs) and used == unit_runs[run][1]:
            run, used = run + 1, 0
        if run == len(unit_runs):
            out.append(None)
            continue
        shape, count = unit_runs[run]
        out.append(shape if count - used >= size else None)
        remaining = size
        while remaining and run < len(unit_runs):
            take = min(remaining, unit_runs[run][1] - used)
            remaining, used = remaining - take, used + take
            if remaining:
                run, used = run + 1, 0
    return out
