"""The library API: ``compress``, ``decompress`` and ``inspect``.

Images of any size are padded (edge replication) to the model's resolution
multiple before coding and cropped after decoding; the header keeps the original
sizes and a CRC of the original pixels, which decoding verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bbcodec import container, zoo
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.container import Header, ImageShape
from bbcodec.errors import DecodeMismatchError, FormatError, UnsupportedImageError
from bbcodec.images import as_image_array, channels_of

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


def choose_model(images: list[np.ndarray], model: str | None) -> zoo.ModelInfo:
    """The named model, or the default shipped model for the images' channel count."""
    channels = {channels_of(img) for img in images}
    if model is not None:
        info = zoo.find_model(model)
    else:
        if len(channels) != 1:
            raise UnsupportedImageError("mixing grayscale and RGB images in one file needs --model")
        candidates = [m for m in zoo.list_models() if m.image_channels == next(iter(channels))]
        if not candidates:
            raise UnsupportedImageError(
                f"no shipped model codes {next(iter(channels))}-channel images "
                f"(shipped: {', '.join(m.name for m in zoo.list_models()) or 'none'})"
            )
        preferred = [m for m in candidates if m.name == zoo.DEFAULT_MODEL]
        info = (preferred or candidates)[0]
    wrong = [c for c in channels if c != info.image_channels]
    if wrong:
        kind = {1: "grayscale", 3: "RGB"}
        raise UnsupportedImageError(
            f"model {info.name!r} codes {kind.get(info.image_channels)} images; got {kind.get(wrong[0], wrong[0])} ones"
        )
    return info


def _padded(image: np.ndarray, multiple: int) -> np.ndarray:
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
    return [np.stack([_padded(img, multiple) for img in run]) for run in runs]


def compress(
    images: np.ndarray | Sequence[np.ndarray],
    model: str | None = None,
    names: Sequence[str] | None = None,
    settings: CoderSettings | None = None,
    progress: Progress | None = None,
) -> bytes:
    """Losslessly compress uint8 images (HxW or HxWx3) into one .bbc byte string.

    All images share one bits-back chain, so each image's bits-back pays for the
    next; ``names`` (e.g. file names) are stored for ``bbcodec decode`` to restore.
    """
    image_list = _to_list(images)
    if not image_list:
        raise ValueError("no images to compress")
    if names is not None and len(names) != len(image_list):
        raise ValueError("names must have one entry per image")
    info = choose_model(image_list, model)
    shapes = [ImageShape(img.shape[0], img.shape[1], channels_of(img)) for img in image_list]
    container.check_packable(shapes, list(names) if names is not None else None)
    net, _ = zoo.load_model(info.name)
    settings = settings or CoderSettings()
    result = BitsBackCoder(net, settings).encode(_batches(image_list, info.downsampling), progress=progress)
    header = Header(
        model_name=info.name,
        weights_hash=info.weights_hash,
        latent_precision=settings.latent_precision,
        shapes=shapes,
        groups=result.groups,
        initial_words=result.initial_words,
        untouched_initial_words=result.untouched_initial_words,
        pixel_crc=container.pixel_crc(image_list),
        names=list(names) if names is not None else None,
    )
    return container.pack(header, result.words)


def decompress(data: bytes, progress: Progress | None = None) -> list[np.ndarray]:
    """Decode a .bbc byte string back to the exact original uint8 arrays."""
    header, words = container.unpack(data)
    if header.lossy:
        raise FormatError("this file is lossy; this bbcodec version decodes lossless files only")
    net, info = zoo.model_for_file(header.model_name, header.weights_hash)
    m = info.downsampling
    if any(s.channels != info.image_channels for s in header.shapes):
        raise FormatError("the file declares images with a channel count its model cannot code")
    coder = BitsBackCoder(net, CoderSettings(latent_precision=header.latent_precision))
    group_shapes = [(s.channels, s.height + (-s.height % m), s.width + (-s.width % m))
                    for s in container.group_shapes(header)]
    decoded = coder.decode(words, header.untouched_initial_words, header.initial_words, header.groups,
                           group_shapes, progress=progress)
    images = []
    for chw, shape in zip((img for batch in decoded for img in batch), header.shapes):
        crop = chw[:, : shape.height, : shape.width]
        images.append(np.ascontiguousarray(crop[0] if shape.channels == 1 else crop.transpose(1, 2, 0)))
    if container.pixel_crc(images) != header.pixel_crc:
        raise DecodeMismatchError(
            "decoded pixels fail the file's checksum. The file is intact, so this machine computes the "
            "model differently from the one that wrote it (another CPU, torch or thread setting); "
            "decode on the writing machine or re-encode here"
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
    names: list[str] | None

    def to_dict(self) -> dict:
        return asdict(self)


def inspect(data: bytes) -> FileInfo:
    """Parse (and checksum) a .bbc file without decoding it."""
    header, words = container.unpack(data)
    dims = sum(s.dims for s in header.shapes)
    payload = 4 * len(words)
    return FileInfo(
        model=header.model_name,
        n_images=header.n_images,
        shapes=[(s.height, s.width, s.channels) for s in header.shapes],
        total_bytes=len(data),
        header_bytes=len(data) - payload,
        payload_bytes=payload,
        initial_bits=32 * (header.initial_words - header.untouched_initial_words),
        bits_per_dim=8 * len(data) / dims,
        lossy=header.lossy,
        names=header.names,
    )
