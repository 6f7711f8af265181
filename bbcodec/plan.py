"""Step one of ``compress``: what to code, with which model, in which batches.

A :class:`Plan` fixes the model (named, or the best shipped one for the images),
the image shapes the header will record, the tile side, the coding units and
their padded batches; :func:`assemble` undoes the layout after decoding. Images of
any size are padded (edge replication) to the model's resolution multiple before
coding and cropped after decoding. Coding (:mod:`bbcodec.bitsback`,
:mod:`bbcodec.lossy`) and packing (:mod:`bbcodec.container`) come after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bbcodec import tiling, zoo
from bbcodec.errors import UnsupportedImageError
from bbcodec.images import as_image_array, channels_of
from bbcodec.tiling import ImageShape

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Plan:
    """How a list of images will be coded (nothing is copied until :meth:`batches`)."""

    images: list[np.ndarray]
    model: zoo.ModelInfo
    shapes: list[ImageShape]  # the original images', as the header records them
    tile: int | None
    units: list[tiling.Unit]

    def batches(self) -> list[np.ndarray]:
        """(N, C, H', W') padded runs of equal-shape coding units, in coding order."""
        return batches([tiling.cut(self.images[u.image], u) for u in self.units], self.model.downsampling)


def plan(images: list[np.ndarray], model: str | None, lossy: bool = False) -> Plan:
    """The :class:`Plan` for ``images`` (from :func:`image_list`)."""
    info = choose_model(images, model, lossy=lossy)
    shapes = [ImageShape(img.shape[0], img.shape[1], channels_of(img)) for img in images]
    tile = None if lossy else tiling.choose_tile([(s.height, s.width, s.channels) for s in shapes],
                                                 autoregressive=info.autoregressive)
    return Plan(images, info, shapes, tile, tiling.all_units([(s.height, s.width) for s in shapes], tile))


def image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A list of images from a list, one image (HxW or HxWx3) or a stacked batch.

    A bare array is one image when it is HxW or HxWx3, a batch when (N, H, W) with
    a last axis other than 3, or (N, H, W, 3); pass a list to be unambiguous.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[2] == 3):
            return [as_image_array(images)]
    return [as_image_array(img) for img in images]


def choose_model(images: list[np.ndarray], model: str | None, lossy: bool = False) -> zoo.ModelInfo:
    """The named model, or the best shipped model that codes every image given.

    Without a name, candidates must code the images' channel count and sizes (a
    model with a global latent codes one size only); the first of
    :data:`bbcodec.zoo.PREFERENCE` (lossy: :data:`bbcodec.zoo.LOSSY_PREFERENCE`)
    among them wins. Lossy coding picks only models with a global latent: a
    hierarchy's many local latents cost far more bits sent outright.
    """
    channels = {channels_of(img) for img in images}
    sizes = {img.shape[:2] for img in images}
    if model is not None:
        info = zoo.find_model(model)
    else:
        if len(channels) != 1:
            raise UnsupportedImageError("mixing grayscale and RGB images in one file needs --model")
        candidates = [m for m in zoo.list_models() if m.image_channels == next(iter(channels))
                      and all(m.accepts(*hw) for hw in sizes) and (m.image_size is not None or not lossy)
                      and m.pixel_levels == 256]
        if not candidates:
            raise UnsupportedImageError(
                f"no shipped model codes these {next(iter(channels))}-channel images{' lossily' if lossy else ''} "
                f"(shipped: {', '.join(m.name for m in zoo.list_models()) or 'none'})"
            )
        ranking = zoo.LOSSY_PREFERENCE if lossy else zoo.PREFERENCE
        candidates.sort(key=lambda m: ranking.index(m.name) if m.name in ranking else len(ranking))
        info = candidates[0]
    wrong = [c for c in channels if c != info.image_channels]
    if wrong:
        kind = {1: "grayscale", 3: "RGB"}
        raise UnsupportedImageError(
            f"model {info.name!r} codes {kind.get(info.image_channels)} images; got {kind.get(wrong[0], wrong[0])} ones"
        )
    if info.pixel_levels == 2 and any(int(img.max(initial=0)) > 1 for img in images):
        raise UnsupportedImageError(
            f"model {info.name!r} codes binarised images: every pixel must be 0 or 1 (threshold or sample first)")
    misfit = [hw for hw in sizes if not info.accepts(*hw)]
    if misfit:
        raise UnsupportedImageError(
            f"model {info.name!r} codes {info.image_size}x{info.image_size} images only (its latent is global); "
            f"got {misfit[0][0]}x{misfit[0][1]}. Use a model that codes any size, e.g. --model {zoo.ANY_SIZE_GRAYSCALE}"
        )
    return info


def padded_chw(image: np.ndarray, multiple: int) -> np.ndarray:
    """(C, H', W') with H', W' rounded up to ``multiple`` by edge replication."""
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    h, w = chw.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return np.ascontiguousarray(chw)


def batches(images: list[np.ndarray], multiple: int) -> list[np.ndarray]:
    """Runs of consecutive images of equal *original* shape, padded, as (N, C, H, W).

    Runs follow original shapes (not padded ones) because the file stores original
    shapes and a group must never mix them.
    """
    runs: list[list[np.ndarray]] = []
    for img in images:
        if runs and runs[-1][0].shape == img.shape:
            runs[-1].append(img)
        else:
            runs.append([img])
    return [np.stack([padded_chw(img, multiple) for img in run]) for run in runs]


def per_image_progress(units: list[tiling.Unit], progress: Progress | None) -> Progress | None:
    """Turn the coder's progress in coding units (tiles) into progress in whole images."""
    if progress is None:
        return None
    ends = np.cumsum(np.bincount([u.image for u in units]))
    state = {"units": 0, "images": 0}

    def tick(n_units: int) -> None:
        state["units"] += n_units
        done = int(np.searchsorted(ends, state["units"], side="right"))
        if done > state["images"]:
            progress(done - state["images"])
            state["images"] = done

    return tick


def assemble(decoded: list[np.ndarray], shapes: list[ImageShape], tile: int | None) -> list[np.ndarray]:
    """Padded (N, C, H', W') groups of coding units -> the original HxW / HxWx3 images."""
    images = [np.empty((s.height, s.width) if s.channels == 1 else (s.height, s.width, s.channels), np.uint8)
              for s in shapes]
    units = tiling.all_units([(s.height, s.width) for s in shapes], tile)
    for chw, unit in zip((u for batch in decoded for u in batch), units):
        crop = chw[:, : unit.h, : unit.w]
        tiling.paste(images[unit.image], unit, crop[0] if crop.shape[0] == 1 else crop.transpose(1, 2, 0))
    return images
