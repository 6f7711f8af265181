"""Randomness the format defines: a counter-based integer generator.

Lossy reconstructions and sampled bounds draw from this stream, never from numpy's
``Generator`` (whose streams numpy does not promise to keep) or torch's. Draw ``i``
of stream ``key`` is the SplitMix64 finaliser of ``key · 2^32 + i`` (Steele, Lea and
Flood 2014), computed in numpy's wrapping uint64 arithmetic; its top 24 bits are a
uniform integer in [0, 2^24), the resolution of every frequency table.
"""

from __future__ import annotations

import numpy as np
import torch

from bbcodec.exact.fixed import PROB_BITS

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(counters: np.ndarray) -> np.ndarray:
    """SplitMix64's output for each uint64 counter (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = counters.astype(np.uint64) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def uniform24(key: int, start: int, count: int) -> np.ndarray:
    """Draws ``start … start + count − 1`` of stream ``key`` as integers in [0, 2^24)."""
    if not 0 <= key < 2**32 or not 0 <= start or start + count > 2**32:
        raise ValueError("stream keys and draw indices must fit in 32 bits")
    counters = (np.uint64(key) << np.uint64(32)) + np.arange(start, start + count, dtype=np.uint64)
    return (splitmix64(counters) >> np.uint64(64 - PROB_BITS)).astype(np.int64)


def sample(freqs: torch.Tensor, uniforms: np.ndarray) -> torch.Tensor:
    """Inverse-CDF draw from each row of integer ``freqs`` (rows, n; total 2^24) at the
    24-bit integers ``uniforms``: the symbol whose cumulative interval holds the draw."""
    cum = torch.cumsum(freqs, dim=1)
    u = torch.from_numpy(np.asarray(uniforms, dtype=np.int64)).view(-1, 1)
    return (cum <= u).sum(dim=1)


class Stream:
    """Consecutive draws of one stream (a cursor over :func:`uniform24`)."""

    def __init__(self, key: int) -> None:
        self.key, self.position = key, 0

    def next(self, count: int) -> np.ndarray:
        out = uniform24(self.key, self.position, count)
        self.position += count
        return out
