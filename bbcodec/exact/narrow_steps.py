"""A group's decoding steps on a narrow pixel net, in one loop with its buffers made once.

Why: a decoding step of a small pixel net (the fast preset's: hidden 32, one
residual block) spends a few tens of microseconds in its int8 products, and before
this loop it spent several times that around them: gathering each image's window
with the inside-image flags, converting between tensors and arrays, building the
step's distribution object, writing the canvas, all once per step. Here a step is
its products (``torch._int_mm``) and four compiled kernels on buffers made once per
group. Two things make that possible:

* every image of a group has the same size, so the window's inside-image flags are
  the same for all of a step's rows: their share of the window product is computed
  for every position at once, before the loop, and the per-step product reads the
  pixel codes alone (half the window's columns);
* the kernel that pops (or draws) a step's pixels also writes them onto the canvas
  and gathers every image's window for the next step.

The integers are :meth:`~bbcodec.exact.narrow.NarrowPixelNet.step_logistic_pop`'s
(digit sums add the same whichever part of the window they come from), so the
pixels and the coder state are the same; tests compare the two step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numba
import numpy as np
import torch

from bbcodec.ans import RawHead
from bbcodec.exact import int8_kernels as k8
from bbcodec.exact.distributions import logistic_kernel_tables
from bbcodec.exact.fixed import ACT_LIMIT
from bbcodec.exact.kernels import logistic_value_at


@numba.njit(cache=True, nogil=True, parallel=True)
def gather_windows(canvas: np.ndarray, i: int, j: int, rows: int, cols: int,
                   out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Every image's pixel-code window at (i, j) of the padded canvas, as rows of ``out``."""
    for n in numba.prange(canvas.shape[0]):
        for di in range(rows):
            for dj in range(cols):
                out[n, di * cols + dj] = canvas[n, 0, i + di, j + dj]


@numba.njit(cache=True, inline="always")
def _write_and_gather(canvas: np.ndarray, values: np.ndarray, y: int, x: int, binary: bool, next_i: int,
                      next_j: int, rows: int, cols: int, windows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Put a step's pixels on the canvas at (y, x) as their codes (``x − 128``; binary:
    ``127 · x``), then gather the windows at (next_i, next_j) (none when ``next_i`` < 0)."""
    for n in range(canvas.shape[0]):
        v = np.int64(values[n])
        canvas[n, 0, y, x] = 127 * v if binary else v - 128
    if next_i >= 0:
        for n in numba.prange(canvas.shape[0]):
            for di in range(rows):
                for dj in range(cols):
                    windows[n, di * cols + dj] = canvas[n, 0, next_i + di, next_j + dj]


@numba.njit(cache=True, nogil=True, parallel=True)
def pop_step(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
             head: np.ndarray, words: np.ndarray, exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray,
             exp_shift: int, exp_offset: int, mean_limit: int, log_scale_floor: int, edges: np.ndarray,
             sigmoid: np.ndarray, sigmoid_shift: int, sigmoid_offset: int, canvas: np.ndarray, y: int, x: int,
             binary: bool, next_i: int, next_j: int, rows: int, cols: int, windows: np.ndarray,
             values: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`bbcodec.exact.int8_kernels.head_logistic_pop` into ``values``, then
    :func:`_write_and_gather`."""
    weights, means, inv = k8._head_mixtures(acc, bias, mult, shift, limit, k, exp_neg, exp_neg_shift, exp_table,
                                            exp_shift, exp_offset, mean_limit, log_scale_floor)
    k8.pop_mixture_rows(head, words, weights, means, inv, edges, sigmoid, sigmoid_shift, sigmoid_offset, values)
    _write_and_gather(canvas, values, y, x, binary, next_i, next_j, rows, cols, windows)


@numba.njit(cache=True, nogil=True, parallel=True)
def draw_step(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, limit: int, k: int,
              uniforms: np.ndarray, exp_neg: np.ndarray, exp_neg_shift: int, exp_table: np.ndarray, exp_shift: int,
              exp_offset: int, mean_limit: int, log_scale_floor: int, edges: np.ndarray, sigmoid: np.ndarray,
              sigmoid_shift: int, sigmoid_offset: int, canvas: np.ndarray, y: int, x: int, binary: bool,
              next_i: int, next_j: int, rows: int, cols: int, windows: np.ndarray,
              values: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`bbcodec.exact.int8_kernels.head_logistic_draws` into ``values``, then
    :func:`_write_and_gather`."""
    weights, means, inv = k8._head_mixtures(acc, bias, mult, shift, limit, k, exp_neg, exp_neg_shift, exp_table,
                                            exp_shift, exp_offset, mean_limit, log_scale_floor)
    for r in numba.prange(weights.shape[0]):
        values[r] = logistic_value_at(r, uniforms[r], weights, means, inv, edges, sigmoid, sigmoid_shift,
                                      sigmoid_offset)
    _write_and_gather(canvas, values, y, x, binary, next_i, next_j, rows, cols, windows)


COND_ROWS_PER_BLOCK = 2048  # conditioning rows (positions × images) made at once for the steps to read


class PositionRows(Protocol):
    """Conditioning that makes its rows for a range of positions when asked
    (:class:`~bbcodec.exact.narrow_conv.CondCodes`)."""

    steps: int  # positions per image

    def __len__(self) -> int: ...

    def positions(self, lo: int, hi: int) -> np.ndarray: ...


class CondSteps:
    """A group's conditioning in the order its decoding steps read it: ``[t]`` is position
    ``t`` of every image, int32 (N, hidden) on the pixel net's residual grid.

    From a position-major array (H·W, N, hidden) that is a view; from
    :class:`PositionRows` a block of positions is made when a step first needs one,
    about :data:`COND_ROWS_PER_BLOCK` rows, so the block is still in cache when read."""

    def __init__(self, source: np.ndarray | PositionRows) -> None:
        self.source = source
        self._lo = 0
        self._block: np.ndarray | None = source if isinstance(source, np.ndarray) else None

    def __len__(self) -> int:
        return len(self.source) if isinstance(self.source, np.ndarray) else self.source.steps

    def __getitem__(self, t: int) -> torch.Tensor:
        if self._block is None or not self._lo <= t < self._lo + len(self._block):
            per_block = max(1, COND_ROWS_PER_BLOCK // max(1, len(self.source)))
            self._lo, self._block = t, self.source.positions(t, min(t + per_block, len(self)))
        return torch.from_numpy(self._block[t - self._lo])


class NarrowGroup:
    """One group's raster decoding on a :class:`~bbcodec.exact.narrow.NarrowPixelNet`
    under a ``k``-component logistic head: :meth:`pop` from a coder or :meth:`draw` at
    seeded uniforms, every step in one loop. ``canvas`` is the net's empty canvas for the
    group (it is written in place) and ``cond_steps`` its conditioning rows by position
    (:class:`CondSteps`, or an int32 tensor (H·W, N, hidden))."""

    def __init__(self, net: torch.nn.Module, canvas: torch.Tensor, cond_steps: CondSteps | torch.Tensor,
                 k: int) -> None:
        flags = canvas[:, 1]
        if not bool((flags == flags[:1]).all()):
            raise ValueError("the images of a group must share their inside-image flags")
        window, self.blocks, self.head, self.tables = net._kernel_plan()
        taps = net.rows * net.cols
        self.net, self.k, self.taps = net, k, taps
        self.canvas = canvas.numpy()
        self.n, _, hp, wp = canvas.shape
        self.h, self.w = hp - net.pad_top, wp - 2 * net.pad_side
        self.cond = cond_steps if isinstance(cond_steps, CondSteps) else CondSteps(cond_steps.numpy())
        self.w_pixels = window[0][:taps].contiguous()
        self.window_args = window[1:]
        self.flag_sums = net.flag_sums(flags[0])
        self.windows = np.empty((self.n, taps), dtype=np.int8)
        self.h_stream = np.empty((self.n, len(window[1])), dtype=np.int16)
        self.values = np.empty(self.n, dtype=np.uint8)

    def _head_sums(self, t: int) -> np.ndarray:
        """The head's int32 digit sums at step ``t`` from the gathered windows."""
        limbs = self.net.code_limbs
        digits = np.empty((limbs[0] * self.n, len(self.window_args[0])), dtype=np.int8)
        k8.window_codes_into(torch._int_mm(torch.from_numpy(self.windows), self.w_pixels).numpy(), self.flag_sums[t],
                             *self.window_args, self.cond[t].numpy(), self.tables[0], limbs[0], self.h_stream, digits)
        for b, (first, second) in enumerate(self.blocks):
            inner = np.empty((limbs[2 * b + 1] * self.n, len(first[1])), dtype=np.int8)
            k8.inner_codes_into(torch._int_mm(torch.from_numpy(digits), first[0]).numpy(), *first[1:],
                                self.tables[2 * b + 1], limbs[2 * b], limbs[2 * b + 1], inner)
            digits = np.empty((limbs[2 * b + 2] * self.n, len(second[1])), dtype=np.int8)
            k8.end_codes_into(torch._int_mm(torch.from_numpy(inner), second[0]).numpy(), *second[1:], self.h_stream,
                              self.tables[2 * b + 2], limbs[2 * b + 1], limbs[2 * b + 2], digits)
        return torch._int_mm(torch.from_numpy(digits), self.head[0]).numpy()

    def _run(self, step: Callable[..., None], per_step: Callable[[int], tuple]) -> np.ndarray:
        """Every step: the head's sums, then ``step`` (a pop or draw kernel) with its own
        arguments ``per_step(t)``, which writes the pixels and gathers the next windows."""
        net, out = self.net, np.empty((self.n, self.h, self.w), dtype=np.uint8)
        gather_windows(self.canvas, 0, 0, net.rows, net.cols, self.windows)
        for t in range(self.h * self.w):
            i, j = divmod(t, self.w)
            next_i, next_j = divmod(t + 1, self.w) if t + 1 < self.h * self.w else (-1, -1)
            step(self._head_sums(t), *self.head[1:], ACT_LIMIT, self.k, *per_step(t), *logistic_kernel_tables(),
                 self.canvas, i + net.pad_top, j + net.pad_side, net.binary, next_i, next_j, net.rows, net.cols,
                 self.windows, self.values)
            out[:, i, j] = self.values
        return out

    def pop(self, raw: RawHead) -> np.ndarray:
        """Every pixel (N, H, W) uint8, popped from ``raw`` step by step, images in order."""
        return self._run(pop_step, lambda t: (raw.head, raw.words))

    def draw(self, uniforms: np.ndarray) -> np.ndarray:
        """Every pixel (N, H, W) uint8 drawn at the 24-bit ``uniforms`` (H·W, N)."""
        uniforms = np.ascontiguousarray(uniforms, dtype=np.int64)
        return self._run(draw_step, lambda t: (uniforms[t],))
