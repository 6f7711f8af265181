"""The library API: ``compress``, ``decompress`` and ``inspect``.

``compress`` is three steps, each in its own module and visited once: plan
(:mod:`bbcodec.plan`: model, padding, tiles, batches), code (:mod:`bbcodec.bitsback`
or :mod:`bbcodec.lossy` over the ANS stack) and pack (:mod:`bbcodec.container`:
header and words to bytes). ``decompress`` runs them backwards. The header keeps
the original sizes and a CRC of the original pixels, which decoding verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from bbcodec import container, zoo
from bbcodec.bitsback import BitsBackCoder, CoderSettings, EncodeResult
from bbcodec.container import Header
from bbcodec.errors import DecodeMismatchError, FormatError
from bbcodec.lossy import DEFAULT_DRAWS, LossyCoder
from bbcodec.plan import Plan, assemble, choose_model, image_list, padded_chw, per_image_progress, plan  # noqa: F401

Progress = Callable[[int], None]


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
    todo = plan_of(images, model, lossy_step is not None, names)
    net, _ = zoo.load_model(todo.model.name)
    batches = todo.batches()
    if lossy_step is not None:
        if samples != 1:
            raise ValueError("importance samples need a bits-back chain; a lossy file has none")
        coder = LossyCoder(net, lossy_step, group=todo.model.coding_group, draws=lossy_draws)
        lossy = coder.encode(batches, progress=progress)
        return container.pack(_lossy_header(todo, names, coder.step, lossy_draws, lossy.groups, lossy.latent_crc),
                              lossy.words)
    if settings is None:
        settings = CoderSettings(max_group=todo.model.coding_group, samples=samples)
        anchor = BitsBackCoder(net, settings).cheapest_anchor_step(batches[0][:1])
        settings = dataclasses.replace(settings, anchor_step=anchor)
    result = BitsBackCoder(net, settings).encode(batches, progress=per_image_progress(todo.units, progress))
    return container.pack(_lossless_header(todo, names, settings, result), result.words)


def plan_of(images: np.ndarray | Sequence[np.ndarray], model: str | None, lossy: bool,
            names: Sequence[str] | None) -> Plan:
    """The plan, refused before any coding work if the file could not hold it."""
    listed = image_list(images)
    if not listed:
        raise ValueError("no images to compress")
    if names is not None and len(names) != len(listed):
        raise ValueError("names must have one entry per image")
    todo = plan(listed, model, lossy=lossy)
    container.check_packable(todo.shapes, list(names) if names is not None else None, todo.tile)
    return todo


def _model_name(todo: Plan) -> str:
    # One-unit files are where header bytes matter; there the weights hash alone
    # names the model (zoo.model_for_file looks it up), saving the name's bytes.
    return "" if len(todo.units) == 1 else todo.model.name


def _lossless_header(todo: Plan, names: Sequence[str] | None, settings: CoderSettings,
                     result: EncodeResult) -> Header:
    return Header(
        model_name=_model_name(todo),
        weights_hash=todo.model.weights_hash,
        latent_precision=settings.latent_precision,
        shapes=todo.shapes,
        groups=result.groups,
        initial_words=result.initial_words,
        untouched_initial_words=result.untouched_initial_words,
        pixel_crc=container.pixel_crc(todo.images),
        names=list(names) if names is not None else None,
        tile=todo.tile,
        anchor_step=settings.anchor_step,
        samples=settings.samples,
        plain_groups=result.plain_groups if settings.samples > 1 else 0,
    )


def _lossy_header(todo: Plan, names: Sequence[str] | None, step: float, draws: int, groups: list[int],
                  latent_crc: int) -> Header:
    return Header(
        model_name=_model_name(todo),
        weights_hash=todo.model.weights_hash,
        latent_precision=8,
        shapes=todo.shapes,
        groups=groups,
        initial_words=0,
        untouched_initial_words=0,
        pixel_crc=0,
        names=list(names) if names is not None else None,
        lossy=True,
        lossy_step=step,
        lossy_draws=draws,
        latent_crc=latent_crc,
    )


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
        return assemble(decoded, header.shapes, header.tile)
    else:
        coder = BitsBackCoder(net, CoderSettings(latent_precision=header.latent_precision,
                                                 anchor_step=header.anchor_step, samples=header.samples))
        decoded = coder.decode(words, header.untouched_initial_words, header.initial_words, header.groups,
                               group_shapes, progress=progress, plain_groups=header.plain_groups)
    images = assemble(decoded, header.shapes, header.tile)
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
