"""The chain: every group of a file coded on one ANS stack, each group's bits-back
paying for the next.

The scheduler decides what a file header records about the chain: the group sizes
(a group borrows about ``1.25 ×`` its measured per-image pop, so groups grow as the
stack fills, up to ``max_group``), the initial words a chain without an anchor needs
(retried 4× larger if the stack ran dry), and for an importance-weighted file how
many leading groups are plain (the stack must first hold what K samples borrow).
Which codec codes a group is :class:`ChainCodecs`' business (:mod:`bbcodec.bbans`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bbcodec.ans import Stack, StackUnderflowError
from bbcodec.bbans import GroupCodec
from bbcodec.limits import MAX_GROUP_PIXELS, MAX_INITIAL_WORDS
from bbcodec.threads import PROBE_PIXELS, CoreShare
from bbcodec.errors import DecodeMismatchError, FormatError

INITIAL_BITS_DOMAIN = b"bbcodec initial bits v1"
DEFAULT_INITIAL_WORDS = 4096
LEND_MARGIN = 1.25  # a group may borrow what the stack holds over this many times its expected pop

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ChainCodecs:
    """The codecs of one file's groups: ``first`` (the anchor) codes group 0 alone when
    given, ``weighted`` (K = ``samples``) every group once the stack can lend for it,
    ``plain`` the rest."""

    plain: GroupCodec
    first: GroupCodec | None = None
    weighted: GroupCodec | None = None
    samples: int = 1


@dataclass
class EncodeResult:
    """What encoding produced, with the accounting a benchmark needs."""

    words: np.ndarray  # the stack without its untouched initial words
    untouched_initial_words: int
    initial_words: int
    groups: list[int]
    popped_bits: int  # bits read from the stack by posterior pops (all images)
    pushed_bits_per_image: list[float] = field(default_factory=list)
    plain_groups: int = 0  # leading groups coded at K = 1 (the anchor among them) before importance sampling

    @property
    def initial_bits_used(self) -> int:
        """Initial bits that coding consumed: paid by the file, never returned."""
        return 32 * (self.initial_words - self.untouched_initial_words)


def initial_words(n: int) -> np.ndarray:
    """``n`` fixed pseudo-random words (SHAKE-128 of a constant): stable forever."""
    raw = hashlib.shake_128(INITIAL_BITS_DOMAIN).digest(4 * n)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def encode(codecs: ChainCodecs, batches: list[np.ndarray], max_group: int, initial: int | None = None,
           progress: Progress | None = None) -> EncodeResult:
    """Chain every image of ``batches`` (each (N, C, H, W), one shape each) on one stack."""
    if initial is None:
        initial = 0 if codecs.first is not None else DEFAULT_INITIAL_WORDS
    while True:
        try:
            return _encode_with(codecs, batches, max_group, initial, progress)
        except StackUnderflowError:
            if initial * 4 > MAX_INITIAL_WORDS:
                raise
            initial = max(4 * initial, 64)  # the first groups popped more than the initial bits


class _Budget:
    """How much the stack can lend the next group, and when importance sampling starts."""

    def __init__(self, samples: int, max_group: int) -> None:
        self.k, self.max_group = samples, max_group
        self.per_image_pop = 0.0
        self.plain_groups: int | None = 0 if samples == 1 else None  # set when weighting starts

    def next_group(self, surplus_bits: int, groups_so_far: int) -> tuple[int, bool]:
        """(images, importance-weighted?) of the next group."""
        can_lend = surplus_bits >= LEND_MARGIN * self.k * self.per_image_pop
        if self.plain_groups is None and self.per_image_pop > 0 and can_lend:
            self.plain_groups = groups_so_far  # the stack can lend what K samples borrow: switch for good
            self.per_image_pop *= self.k  # the borrowing a K-sample image is budgeted at from now on
        weighted = self.k > 1 and self.plain_groups is not None
        # plain groups may dip into the initial bits by one image's borrowing; a K-sample
        # image borrows too much to allow it
        spare = 0 if weighted else 1
        if self.per_image_pop <= 0:
            return 1, weighted
        affordable = int(max(surplus_bits, 0) // (LEND_MARGIN * self.per_image_pop)) + spare
        return max(1, min(self.max_group, affordable)), weighted

    def record(self, popped: int, size: int) -> None:
        self.per_image_pop = max(self.per_image_pop, popped / size)


def _next_group(codecs: ChainCodecs, budget: _Budget, surplus_bits: int, groups_so_far: int, remaining: int,
                image_pixels: int) -> tuple[int, GroupCodec]:
    """(images, codec) of the next group: what the stack can lend, within the images left
    and one network batch; the anchor codes the first image alone."""
    if groups_so_far == 0 and codecs.first is not None:
        return 1, codecs.first
    size, weighted = budget.next_group(surplus_bits, groups_so_far)
    size = min(size, remaining, max(1, MAX_GROUP_PIXELS // image_pixels))
    return size, codecs.weighted if weighted else codecs.plain


def _encode_with(codecs: ChainCodecs, batches: list[np.ndarray], max_group: int, initial: int,
                 progress: Progress | None) -> EncodeResult:
    seed = initial_words(initial)
    stack = Stack(seed)
    groups: list[int] = []
    popped_total = 0
    budget = _Budget(codecs.samples, max_group)
    with CoreShare(probe=sum(b.size for b in batches) >= PROBE_PIXELS) as share:
        for images in batches:
            start = 0
            while start < len(images):
                share.update()
                size, codec = _next_group(codecs, budget, stack.num_bits() - 32 * initial, len(groups),
                                          len(images) - start, images[0].size)
                popped = codec.push(stack, images[start : start + size])
                if codec is not codecs.first:
                    popped_total += popped
                    budget.record(popped, size)
                groups.append(size)
                start += size
                if progress:
                    progress(size)
    words = stack.words()
    untouched = _common_prefix(words, seed)
    plain_groups = len(groups) if budget.plain_groups is None else budget.plain_groups
    return EncodeResult(words=words[untouched:], untouched_initial_words=untouched, initial_words=initial,
                        groups=groups, popped_bits=popped_total, plain_groups=plain_groups)


def decode(codecs: ChainCodecs, words: np.ndarray, untouched: int, initial: int, groups: list[int],
           shapes: Iterable[tuple[int, int, int]], progress: Progress | None = None,
           plain_groups: int = 0) -> list[np.ndarray]:
    """Inverse of :func:`encode`; ``shapes`` gives (C, H, W) per group, in file order;
    ``plain_groups`` is :attr:`EncodeResult.plain_groups` of an importance-weighted file."""
    if not 0 <= plain_groups <= len(groups):
        raise FormatError("the file declares more warm-up groups than it has groups")
    seed = initial_words(initial)
    try:
        stack = Stack(np.concatenate([seed[:untouched], words]))
    except ValueError as exc:  # e.g. constriction refuses a stack ending in a zero word
        raise FormatError(f"the coded data is malformed: {exc}") from exc
    group_shapes = list(shapes)
    out: list[np.ndarray] = [None] * len(groups)  # type: ignore[list-item]
    pixels = sum(size * int(np.prod(shape)) for size, shape in zip(groups, group_shapes))
    with CoreShare(probe=pixels >= PROBE_PIXELS) as share:
        for g in range(len(groups) - 1, -1, -1):
            share.update()
            codec = _codec_of_group(codecs, g, groups, plain_groups)
            out[g] = codec.pop(stack, (groups[g], *group_shapes[g]))
            if progress:
                progress(groups[g])
    final = stack.words()
    if len(final) != initial or not np.array_equal(final, seed):
        raise DecodeMismatchError(
            "after decoding, the stack does not return to its initial bits: the file is "
            "corrupt or was written by a model that computes differently here"
        )
    return out


def _codec_of_group(codecs: ChainCodecs, g: int, groups: list[int], plain_groups: int) -> GroupCodec:
    if g == 0 and codecs.first is not None:
        if groups[0] != 1:
            raise FormatError("an anchored file must start with a group of one image")
        return codecs.first
    if codecs.weighted is not None and g >= plain_groups:
        return codecs.weighted
    return codecs.plain


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n
