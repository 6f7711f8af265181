"""The library API: ``compress``, ``decompress`` and ``inspect``.

Images of any size are padded (edge replication) to the model's resolution
multiple before coding and cropped after decoding; the header keeps the original
sizes and a CRC of the original pixels, which decoding verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from bbcodec import container, tiling, zoo
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.container import Header, ImageShape
from bbcodec.errors import DecodeMismatchError, FormatError, UnsupportedImageError
from bbcodec.images import as_image_array, channels_of
from bbcodec.lossy import DEFAULT_DRAWS, LossyCoder

Progress = Callable[[int], None]


def _to_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
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
            f"got {misfit[0][0]}x{misfit[0][1]}. Use a model that codes any size, e.g. --model {zoo.DEFAULT_MODEL}"
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


def _batches(images: list[np.ndarray], multiple: int) -> list[np.ndarray]:
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


def compress(
    images: np.ndarray | Sequence[np.ndarray],
    model: str | None = None,
    names: Sequence[str] | None = None,
    settings: CoderSettings | None = None,
    progress: Progress | None = None,
    lossy_step: float | None = None,
    samples: int = 1,
    lossy_draws: int = DEFAULT_DRAWS,
) -> bytes:
    """Compress uint8 images (HxW or HxWx3) into one .bbc byte string.

    Lossless by default: all images share one bits-back chain, so each image's
    bits-back pays for the next. With ``lossy_step`` only the latents are sent
    (quantised with that step; see :mod:`bbcodec.lossy`) and decoding returns the
    model's reconstruction, the mean of ``lossy_draws`` seeded draws from p(x | z)
    (more draws: a steadier picture at the same rate, for that many times the
    decoding work). ``names`` (e.g. file names) are stored for
    ``bbcodec decode`` to restore. ``samples`` K > 1 codes each image with K
    importance samples (:mod:`bbcodec.importance`): the rate approaches the model's
    IWAE bound -L_K instead of its -ELBO, for about K times the encoding work.
    """
    image_list = _to_list(images)
    if not image_list:
        raise ValueError("no images to compress")
    if names is not None and len(names) != len(image_list):
        raise ValueError("names must have one entry per image")
    info = choose_model(image_list, model, lossy=lossy_step is not None)
    shapes = [ImageShape(img.shape[0], img.shape[1], channels_of(img)) for img in image_list]
    tile = None if lossy_step is not None else tiling.choose_tile(
        [(s.height, s.width, s.channels) for s in shapes], autoregressive=info.autoregressive)
    container.check_packable(shapes, list(names) if names is not None else None, tile)
    net, _ = zoo.load_model(info.name)
    units = tiling.all_units([(s.height, s.width) for s in shapes], tile)
    batches = _batches([tiling.cut(image_list[u.image], u) for u in units], info.downsampling)
    if lossy_step is not None:
        if samples != 1:
            raise ValueError("importance samples need a bits-back chain; a lossy file has none")
        return _compress_lossy(net, info, batches, shapes, names, lossy_step, lossy_draws, progress)
    if settings is None:
        settings = CoderSettings(max_group=info.coding_group, samples=samples)
        anchor = BitsBackCoder(net, settings).cheapest_anchor_step(batches[0][:1])
        settings = dataclasses.replace(settings, anchor_step=anchor)
    result = BitsBackCoder(net, settings).encode(batches, progress=_per_image(units, progress))
    header = Header(
        # One-unit files are where header bytes matter; there the weights hash alone
        # names the model (zoo.model_for_file looks it up), saving the name's bytes.
        model_name="" if len(units) == 1 else info.name,
        weights_hash=info.weights_hash,
        latent_precision=settings.latent_precision,
        shapes=shapes,
        groups=result.groups,
        initial_words=result.initial_words,
        untouched_initial_words=result.untouched_initial_words,
        pixel_crc=container.pixel_crc(image_list),
        names=list(names) if names is not None else None,
        tile=tile,
        anchor_step=settings.anchor_step,
        samples=settings.samples,
        plain_groups=result.plain_groups if settings.samples > 1 else 0,
    )
    return container.pack(header, result.words)


def _per_image(units: list[tiling.Unit], progress: Progress | None) -> Progress | None:
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


def _compress_lossy(net, info: zoo.ModelInfo, batches: list[np.ndarray], shapes: list[ImageShape],
                    names: Sequence[str] | None, step: float, draws: int, progress: Progress | None) -> bytes:
    coder = LossyCoder(net, step, group=info.coding_group, draws=draws)
    result = coder.encode(batches, progress=progress)
    header = Header(
        model_name="" if len(shapes) == 1 else info.name,  # as in compress()
        weights_hash=info.weights_hash,
        latent_precision=8,
        shapes=shapes,
        groups=result.groups,
        initial_words=0,
        untouched_initial_words=0,
        pixel_crc=0,
        names=list(names) if names is not None else None,
        lossy=True,
        lossy_step=coder.step,
        lossy_draws=draws,
        latent_crc=result.latent_crc,
    )
    return container.pack(header, result.words)


def _assemble(decoded: list[np.ndarray], shapes: list[ImageShape], tile: int | None) -> list[np.ndarray]:
    """Padded (N, C, H', W') groups of coding units -> the original HxW / HxWx3 images."""
    images = [np.empty((s.height, s.width) if s.channels == 1 else (s.height, s.width, s.channels), np.uint8)
              for s in shapes]
    units = tiling.all_units([(s.height, s.width) for s in shapes], tile)
    for chw, unit in zip((u for batch in decoded for u in batch), units):
        crop = chw[:, : unit.h, : unit.w]
        tiling.paste(images[unit.image], unit, crop[0] if crop.shape[0] == 1 else crop.transpose(1, 2, 0))
    return images


def decompress(data: bytes, progress: Progress | None = None) -> list[np.ndarray]:
    """Decode a .bbc byte string: the exact original uint8 arrays, or for a lossy file
    the model's reconstruction (check :func:`inspect` ``.lossy``)."""
    header, words = container.unpack(data)
    net, info = zoo.model_for_file(header.model_name, header.weights_hash)
    m = info.downsampling
    if any(s.channels != info.image_channels for s in header.shapes):
        raise FormatError("the file declares images with a channel count its model cannot code")
    if any(not info.accepts(s.height, s.width) for s in header.shapes):
        raise FormatError(f"the file declares image sizes its model {info.name!r} cannot code")
    group_shapes = [(s.channels, s.height + (-s.height % m), s.width + (-s.width % m))
                    for s in container.group_shapes(header)]
    if header.lossy:
        if header.initial_words or header.lossy_step is None:
            raise FormatError("a lossy file declares a bits-back chain")
        decoded = LossyCoder(net, header.lossy_step, group=info.coding_group, draws=header.lossy_draws).decode(
            words, header.groups, group_shapes, header.latent_crc, progress=progress)
        return _assemble(decoded, header.shapes, header.tile)
    else:
        coder = BitsBackCoder(net, CoderSettings(latent_precision=header.latent_precision,
                                                 anchor_step=header.anchor_step, samples=header.samples))
        decoded = coder.decode(words, header.untouched_initial_words, header.initial_words, header.groups,
                               group_shapes, progress=progress, plain_groups=header.plain_groups)
    images = _assemble(decoded, header.shapes, header.tile)
    if container.pixel_crc(images) != header.pixel_crc:
        raise DecodeMismatchError(
            "decoded pixels fail the file's checksum although the file is intact; integer coding should "
            "make that impossible: please report it with the file"
        )
    return images


@dataclass
class FileInfo:
    """What ``bbcodec info`` reports about a .bbc file."""

    model: str
    n_images: int
    shapes: list[tuple[int, int, int]]
    total_bytes: int
    header_bytes: int
    payload_bytes: int
    initial_bits: int
    bits_per_dim: float
    lossy: bool
    lossy_step: float | None
    lossy_draws: int  # seeded draws a lossy file's reconstruction averages (1 for a lossless file)
    samples: int  # importance samples per image (1 for plain bits-back and for lossy files)
    plain_groups: int  # leading groups of an importance-weighted file coded at K = 1
    machine_bound: str  # "" (decodes on any machine), else the machine a float model's file needs
    tile: int | None
    coding_units: int
    names: list[str] | None

    def to_dict(self) -> dict:
        return asdict(self)


def inspect(data: bytes) -> FileInfo:
    """Parse (and checksum) a .bbc file without decoding it."""
    header, words = container.unpack(data)
    dims = sum(s.dims for s in header.shapes)
    payload = len(container.payload_bytes(words))
    return FileInfo(
        model=header.model_name or zoo.name_for_hash(header.weights_hash),
        n_images=header.n_images,
        shapes=[(s.height, s.width, s.channels) for s in header.shapes],
        total_bytes=len(data),
        header_bytes=len(data) - payload,
        payload_bytes=payload,
        initial_bits=32 * (header.initial_words - header.untouched_initial_words),
        bits_per_dim=8 * len(data) / dims,
        lossy=header.lossy,
        lossy_step=header.lossy_step,
        lossy_draws=header.lossy_draws,
        samples=header.samples,
        plain_groups=header.plain_groups,
        machine_bound=header.machine_bound,
        tile=header.tile,
        coding_units=sum(header.groups),
        names=header.names,
    )
