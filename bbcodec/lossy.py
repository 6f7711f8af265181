"""Lossy mode: transmit only the latent code; rebuild the image from p(x | z).

Bits-back needs ``x`` at the receiver to return the posterior's bits, so a file
that sends only ``z`` pays for ``z`` outright. The latents are quantised
in the units of their conditional prior and coded outright (:mod:`bbcodec.quantised`).

Reconstruction is a *seeded draw* from p(x | z), pixel by pixel in raster order and
fed back for an autoregressive decoder. The draws come from the format's own
counter-based stream (:mod:`bbcodec.exact.random`; group ``g`` of a file uses stream
``RECONSTRUCTION_SEED + g``) through the integer frequency tables, so encoder and
decoder produce the same picture on any machine without sharing anything but the file. Not the per-pixel mode: measured on
MNIST, the greedy mode of a local PixelCNN is the background everywhere (every
reconstruction all black, 13% label agreement), and sharpened draws drift the same
way, while plain draws keep most labels.
The file stores a CRC of the quantised latent code. The encoder never renders the
picture (the draws are most of the decoding work); the decoder checks the latents it
decoded against that CRC, and the picture follows from them in integer arithmetic
alone, the same on every machine (golden files pin it).

``step`` is the rate knob: larger steps, fewer bits, coarser latents. ``draws`` is
the fidelity knob that costs no bits: the reconstruction is the mean of that many
seeded draws (rounded half up), a deterministic estimate of E[x | z]. One draw is a
plausible digit but often a different-looking one; the mean keeps what all draws
share, which is what the latent code carries (label agreement of the mean of 1 to 16
draws: ``bench/results/lossy_*.json``).
"""

from __future__ import annotations

from collections.abc import Callable
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from bbcodec import bbans, codecs
from bbcodec.ans import Stack
from bbcodec.contract import Autoregressive, LatentModel, ObservationModel
from bbcodec.errors import DecodeMismatchError
from bbcodec.exact.local import FusedStep
from bbcodec.exact.random import Stream, sample
from bbcodec.quantised import Sent, quantised_walk, snap_step, walk_posterior_means
from bbcodec.threads import PROBE_PIXELS, CoreShare

DEFAULT_STEP = 1.0
# The mean of 4 draws is what a --lossy file shows unless told otherwise: one draw
# is a plausible digit but often a different-looking one; the mean keeps what the
# latent code carries. Chosen on validation digits (MNIST training digits 59,000+,
# ``bench/results/lossy_vlae-mnist-wide-int8_validation.json``, and for the lossy default
# ``lossy_vlae-mnist-wide-q8_validation.json``): 4 draws keep as many labels as 8 or 16,
# or all but one in 300, for a quarter of 16's decoding work; 1 or 2 keep fewer.
DEFAULT_DRAWS = 4
DEFAULT_GROUP = 512
RECONSTRUCTION_SEED = 0x6262636F  # group g draws from stream RECONSTRUCTION_SEED + g


@dataclass
class LossyResult:
    words: np.ndarray
    groups: list[int]
    latent_crc: int  # CRC-32 of the quantised latent code (latent_crc), which the decoder checks
    latent_bits: int  # size of the coded latents (before the container rounds to words)
    # (N, C, H, W) per group, what the decoder will show: rendered only when asked
    reconstructions: list[np.ndarray] = field(default_factory=list)


def latent_crc(sent: Sent, crc: int = 0) -> int:
    """CRC-32 of quantised latents, continuing ``crc``: every event's integers as
    little-endian int32, in coding order."""
    for _, q in sent:
        crc = zlib.crc32(np.ascontiguousarray(q, dtype="<i4").tobytes(), crc)
    return crc


def _draw(dist: object, stream: Stream) -> np.ndarray:
    """One draw per pixel of an integer pixel distribution, in its pixel order (a fused
    decoding step draws without building its tables: the same values)."""
    if isinstance(dist, FusedStep):
        return dist.draw(stream.next(dist.rows))
    freqs = dist.frequencies()
    return sample(freqs, stream.next(len(freqs))).to(torch.uint8).numpy()


def reconstruct(obs: ObservationModel, group: int) -> np.ndarray:
    """A draw from p(x | z) on the format's stream for ``group``, in raster order for an
    autoregressive decoder (each drawn pixel is fed back)."""
    stream = Stream((RECONSTRUCTION_SEED + group) % 2**32)
    if not isinstance(obs, Autoregressive):
        return _draw(obs, stream).reshape(codecs.pixel_shape(obs))
    n, c, h, w = obs.shape
    out = np.empty((n, c, h, w), dtype=np.uint8)
    obs.reset()
    whole = obs.whole_group() if hasattr(obs, "whole_group") else None
    with codecs.step_threads(n):
        if whole is not None:  # every step in one loop, step t drawing uniforms t·N … t·N + N − 1
            return whole.draw(stream.next(obs.num_steps * n).reshape(obs.num_steps, n)).reshape(out.shape)
        for t in range(obs.num_steps):
            index = obs.step_index(t)
            out[index] = _draw(obs.step_distribution(t), stream).reshape(out[index].shape)
            obs.write(t, torch.from_numpy(out[index]))
    return out


def mean_of_draws(draws: np.ndarray, copies: int) -> np.ndarray:
    """Rows ``s·N + n`` (s < copies) of ``draws`` averaged per pixel, rounded half up, in
    integers (no float rounding to disagree about)."""
    stacked = draws.reshape(copies, -1, *draws.shape[1:]).astype(np.int64)
    return ((2 * stacked.sum(axis=0) + copies) // (2 * copies)).astype(np.uint8)


def replicated_walk(model: LatentModel, sent: Sent, shape: tuple[int, int, int, int], step: float,
                    copies: int) -> ObservationModel:
    """p(x | ẑ) for ``copies`` copies of every image (row ``s·N + n`` is image n),
    walked from the integers alone so that encoder and decoder run the same batch."""
    n = shape[0]
    tiled = iter([np.tile(np.asarray(q).reshape(n, -1), (copies, 1)).ravel() for _, q in sent])
    obs, _ = quantised_walk(model, None, (n * copies, *shape[1:]), step, lambda event: next(tiled))
    return obs


class LossyCoder:
    """Quantise-and-code the latents of any contract model (one :func:`bbcodec.bbans.lossy_latents`
    code per group, on one stack); decode by seeded draws."""

    def __init__(self, model: LatentModel, step: float = DEFAULT_STEP, group: int = DEFAULT_GROUP,
                 draws: int = 1) -> None:
        if draws < 1:
            raise ValueError("draws must be at least 1")
        self.model = model
        self.step = snap_step(step)
        self.draws = draws
        self.group = max(1, group // draws)  # the decoder's batch is group × draws images
        self.code = bbans.lossy_latents(model, self.step)

    def _reconstruct(self, obs: ObservationModel, sent: Sent, shape: tuple[int, int, int, int],
                     group: int) -> np.ndarray:
        if self.draws == 1:  # the walk's own p(x | ẑ)
            return reconstruct(obs, group)
        if hasattr(obs, "replicated"):  # the conditioning computed once for every copy
            copies = obs.replicated(self.draws)
        else:
            copies = replicated_walk(self.model, sent, shape, self.step, self.draws)
        return mean_of_draws(reconstruct(copies, group), self.draws)

    @torch.no_grad()
    def encode_group(self, x: np.ndarray, group: int = 0, render: bool = False) -> tuple[Sent, np.ndarray | None]:
        """The group's quantised latents, and (``render``) the picture the decoder will show."""
        obs, sent = walk_posterior_means(self.model, torch.from_numpy(np.array(x)), self.step)  # a writable copy
        return sent, self._reconstruct(obs, sent, tuple(x.shape), group) if render else None

    @torch.no_grad()
    def decode_group(self, stack: Stack, shape: tuple[int, int, int, int], group: int = 0) -> tuple[Sent, np.ndarray]:
        obs, sent = self.code.pop(stack, shape)
        return sent, self._reconstruct(obs, sent, shape, group)

    def encode(self, batches: list[np.ndarray], progress: Callable[[int], None] | None = None,
               render: bool = False) -> LossyResult:
        """Code every image's latents; ``render`` also draws the reconstructions (the
        decoder's work, which a file does not need)."""
        groups, recons, codes, crc = [], [], [], 0
        with CoreShare(probe=sum(b.size for b in batches) >= PROBE_PIXELS) as share:
            for images in batches:
                for start in range(0, len(images), self.group):
                    share.update()
                    chunk = images[start : start + self.group]
                    sent, recon = self.encode_group(chunk, len(groups), render)
                    groups.append(len(chunk))
                    if render:
                        recons.append(recon)
                    codes.append(sent)
                    crc = latent_crc(sent, crc)
                    if progress:
                        progress(len(chunk))
        stack = Stack()
        for sent in reversed(codes):  # the decoder pops group 0 first
            self.code.push(stack, sent)
        return LossyResult(stack.words(), groups, crc, stack.num_bits(), recons)

    def decode(self, words: np.ndarray, groups: list[int], shapes: list[tuple[int, int, int]], expected_crc: int,
               progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """The reconstructions; raises when the decoded latents fail ``expected_crc``."""
        stack = Stack(words)
        out, crc = [], 0
        pixels = sum(size * c * h * w for size, (c, h, w) in zip(groups, shapes))
        with CoreShare(probe=pixels >= PROBE_PIXELS) as share:
            for g, (size, (c, h, w)) in enumerate(zip(groups, shapes)):
                share.update()
                sent, recon = self.decode_group(stack, (size, c, h, w), g)
                crc = latent_crc(sent, crc)
                out.append(recon)
                if progress:
                    progress(size)
        if not stack.is_empty():
            raise DecodeMismatchError("the latent code has data left over after decoding: the file is corrupt "
                                      "or was written by a model that computes differently here")
        if crc != expected_crc:
            raise DecodeMismatchError("the decoded latent code fails the file's checksum; integer coding should "
                                      "make that impossible: please report it with the file")
        return out
