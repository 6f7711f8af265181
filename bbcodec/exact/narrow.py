"""The narrow integer form of the local pixel network: int8 matrix products.

Why: a decoding step runs the per-pixel network once for every image of a group,
and in the wide integer form (:mod:`bbcodec.exact.local`: 27-bit activations,
float64 products) those products are most of the decoding time. Products of int8
codes by int8 weights into int32 run about nine times faster on the same cores
(``torch._int_mm``) and are exact integers whatever kernel computes them.

The form (one per model, chosen at export from calibration images):

* the residual stream ``h`` is int16 on the grid ``2^-f_h``;
* every product's input is an int16 *code* ``q`` standing for ``scale · (q − zero)``
  (asymmetric, since SiLU ≥ −0.28), carried as two int8 digits (``q = 256·hi + lo``)
  stacked as rows of one int8 product: the SiLU is a stored table from the int16
  value before it to the code after it, so no transcendental runs at coding time;
* weights are int8 digits in [−63, 63] with one scale per output channel: one digit
  (7-bit weights) or two (``w = 64·hi + lo``, 13-bit, side by side as columns). The
  7-bit digits are what makes the int32 sums exact on every instruction set: AVX2
  and AVX-512 without VNNI form u8·s8 pair sums in saturating int16 (255·64·2 < 2^15),
  and ``K · 128 · 63 < 2^31`` is proven at load;
* requantisation recombines the digit sums in int64, multiplies by an integer
  ``m < 2^16`` and shifts right with rounding;
* a pixel net trained for it (:mod:`bbcodec.nn.fake_quant`) reads 8-bit codes in its
  residual blocks (form ``int8-a8w7-io13``): one digit by one 7-bit weight digit, one
  int8 product per weight where int16 codes by 13-bit weights take four.

Measured on MNIST training digits (not the test set), against the wide form:
``vlae-mnist-large`` +0.03% rate with 13-bit weights, +2.24% with 7-bit;
``vlae-mnist-wide`` −0.03% and +0.32% (conditioning network and pixel net both int8).

The window convolution reads the canvas as codes too: pixel ``x`` is ``x − 128``
(binary: ``127 · x``) and the inside-image flag is 127, with the affine map from codes
to the float model's inputs folded into the weights, so pixels enter exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bbcodec.ans import RawHead
from bbcodec.exact import int8_kernels as k8
from bbcodec.exact.distributions import logistic_kernel_tables
from bbcodec.exact.fixed import ACT_LIMIT, FRAC, BoundError
from bbcodec.exact.narrow_steps import CondSteps
from bbcodec.nn.local_pixelcnn import CausalWindow

if TYPE_CHECKING:
    from bbcodec.exact.narrow_conv import CondCodes

WEIGHT_LIMIT = 63
FLAG_CODE = 127  # the inside-image flag's code on the canvas
MULT_BITS = 15  # requantisation multipliers lie in [2^14, 2^15]
ACC_LIMIT = 1 << 31
CODE_LIMIT = 1 << 15  # |input code|: int16 codes (two int8 digits) or int8 pixel codes
TABLE_SIZE = 1 << 16  # one int16 code per int16 value
ROWS_PER_BLOCK = 1024  # rows of one pass through the layers (see NarrowPixelNet.rows_params)
IO_LAYERS = ("window", "out")  # the products that read the canvas and write the parameters
# The narrow forms by name: int8 weight digits of each layer of a VLAE's decoder, by its
# name in the pixel net ("window", "first.0", "second.0", ..., "out") or "cond" (every
# layer of the conditioning network). 7-bit weights cost most where the pixel net reads
# the canvas and writes the parameters (``python -m training.choose_form NAME --layers``).
NARROW_FORMS: dict[str, Callable[[str], int]] = {
    "int8-w7": lambda name: 1,
    "int8-w13": lambda name: 2,
    "int8-w7-io13": lambda name: 2 if name in IO_LAYERS else 1,
    "int8-a8w7-io13": lambda name: 2 if name in IO_LAYERS or name == "cond" else 1,
}
# Forms whose residual blocks read 8-bit SiLU codes (one int8 digit, so a 7-bit weight
# costs one int8 product): only for a pixel net trained for them
# (:mod:`bbcodec.nn.fake_quant`). The output layer reads int16 codes in every form.
CODE8_FORMS = ("int8-a8w7-io13",)
CODE8_MIN, CODE8_MAX = -128, 127


@dataclass(frozen=True)
class Codes:
    """A code's meaning: value = scale · (code − zero)."""

    scale: float
    zero: int = 0


class NarrowLinear(nn.Module):
    """int8 weights (fan-in, out) for ``torch._int_mm``, int32 bias, per-channel requantisation."""

    def __init__(self, d_in: int, d_out: int, weight_limbs: int = 1) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(d_in, weight_limbs * d_out, dtype=torch.int8))
        self.register_buffer("bias", torch.zeros(d_out, dtype=torch.int64))
        self.register_buffer("mult", torch.zeros(d_out, dtype=torch.int64))
        self.register_buffer("shift", torch.ones(d_out, dtype=torch.int64))

    @classmethod
    def quantise(cls, weight: torch.Tensor, bias: torch.Tensor, codes: Codes, out_step: float,
                 weight_limbs: int = 1) -> NarrowLinear:
        """Float ``weight`` (out, in) and ``bias`` reading inputs ``codes``, writing values on
        ``out_step``; ``weight_limbs`` = 2 gives 13-bit weights as two int8 digits (base 64)."""
        w = weight.detach().double() * codes.scale  # acts on the raw codes (zero point below)
        limit = WEIGHT_LIMIT if weight_limbs == 1 else WEIGHT_LIMIT * 64 + 31
        sigma = (w.abs().amax(1) / limit).clamp(min=1e-30)
        w_q = torch.round(w / sigma[:, None]).clamp(-limit, limit)
        b_q = torch.round(bias.detach().double() / sigma) - codes.zero * w_q.sum(1)
        ratio = sigma / out_step  # accumulator units -> output units
        shift = (MULT_BITS - 1 - torch.floor(torch.log2(ratio))).clamp(1, 62)
        mult = torch.round(ratio * torch.exp2(shift))
        out = cls(w.shape[1], w.shape[0], weight_limbs)
        high = torch.floor((w_q + 32) / 64) if weight_limbs == 2 else w_q
        digits = [high, w_q - 64 * high] if weight_limbs == 2 else [w_q]
        out.weight.copy_(torch.cat(digits, 0).t().to(torch.int8))
        out.bias.copy_(b_q.to(torch.int64))
        out.mult.copy_(mult.to(torch.int64))
        out.shift.copy_(shift.to(torch.int64))
        return out

    def accumulate(self, codes: torch.Tensor) -> torch.Tensor:
        """int32 ``codes · weight`` of int8 ``codes`` (rows, fan-in): exact (bound proven at load)."""
        return torch._int_mm(codes, self.weight)

    def kernel_args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.bias.numpy(), self.mult.numpy(), self.shift.numpy()

    def check(self, name: str) -> int:
        """Prove the int32 sums exact and the requantisation in range (raises BoundError)."""
        w = self.weight.to(torch.int64)
        if int(w.abs().max()) > WEIGHT_LIMIT:
            raise BoundError(f"{name}: weight digits exceed ±{WEIGHT_LIMIT} (int8 products would saturate)")
        if w.shape[1] % len(self.bias) or w.shape[1] // len(self.bias) not in (1, 2):
            raise BoundError(f"{name}: weights must be one or two digits per output")
        worst = int((w.abs().sum(0) * 128).max())  # one int32 sum: int8 input digits by weight digits
        combined = int((w.abs().sum(0).max() * CODE_LIMIT * 64 + self.bias.abs().max()))
        if worst >= ACC_LIMIT or combined << (MULT_BITS + 1) >= 1 << 63:
            raise BoundError(f"{name}: an int32 digit sum may reach {worst} or the int64 requantisation overflow")
        if bool((self.mult < 0).any()) or int(self.mult.max()) >= 1 << (MULT_BITS + 1):
            raise BoundError(f"{name}: requantisation multipliers out of range")
        if bool((self.shift < 1).any()) or bool((self.shift > 62).any()):
            raise BoundError(f"{name}: requantisation shifts out of range")
        return worst


def silu_table(h_step: float, codes: Codes, lo: int = k8.H_MIN, hi: int = k8.H_MAX) -> torch.Tensor:
    """Code in [lo, hi] (int16 codes, or 8-bit ones) of ``silu(q · h_step)`` for every int16
    ``q`` (computed at export, stored)."""
    v = torch.arange(k8.H_MIN, k8.H_MIN + TABLE_SIZE, dtype=torch.float64) * h_step  # every int16 index
    return (torch.round(F.silu(v) / codes.scale) + codes.zero).clamp(lo, hi).to(torch.int16)


def code_limbs(form: str, blocks: int) -> tuple[int, ...]:
    """int8 digits of the SiLU codes at each site of a pixel net of this form (in_0, mid_0,
    in_1, ..., out): 1 for 8-bit codes, 2 for int16 ones."""
    inner = 1 if form in CODE8_FORMS else 2
    return (inner,) * (2 * blocks) + (2,)


class NarrowPixelNet(CausalWindow, nn.Module):
    """:class:`bbcodec.nn.local_pixelcnn.LocalPixelNet` (one channel) on int8 products."""

    def __init__(self, hidden: int, blocks: int, n_params: int, rows: int, cols: int, binary: bool,
                 form: str = "int8-w13") -> None:
        super().__init__()
        self.channels, self.hidden, self.rows, self.cols, self.binary = 1, hidden, rows, cols, binary
        limbs = NARROW_FORMS[form]
        self.window = NarrowLinear(2 * rows * cols, hidden, limbs("window"))
        self.first = nn.ModuleList(NarrowLinear(hidden, hidden, limbs(f"first.{b}")) for b in range(blocks))
        self.second = nn.ModuleList(NarrowLinear(hidden, hidden, limbs(f"second.{b}")) for b in range(blocks))
        self.out = NarrowLinear(hidden, n_params, limbs("out"))
        self.form = form
        self.code_limbs = code_limbs(form, blocks)
        self.register_buffer("h_frac", torch.zeros((), dtype=torch.int64))
        self.register_buffer("tables", torch.zeros(2 * blocks + 1, TABLE_SIZE, dtype=torch.int16))
        self._plan: tuple | None = None

    # --- the canvas ---------------------------------------------------------------------
    def pixel_codes(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> their int8 canvas codes: ``x − 128`` is ``x`` with its top bit
        flipped, read as int8 (binary: ``127 · x``, which stays below 128)."""
        x = x.numpy().astype(np.uint8, copy=False)  # numpy: a decoding step maps a few pixels
        return torch.from_numpy((x * np.uint8(FLAG_CODE) if self.binary else x ^ np.uint8(128)).view(np.int8))

    def empty_canvas(self, n: int, h: int, w: int) -> torch.Tensor:
        canvas = torch.zeros(n, 2, h + self.pad_top, w + 2 * self.pad_side, dtype=torch.int8)
        canvas[:, 1, self.pad_top :, self.pad_side : self.pad_side + w] = FLAG_CODE
        return canvas

    def canvas(self, codes: torch.Tensor) -> torch.Tensor:
        n, _, h, w = codes.shape
        canvas = self.empty_canvas(n, h, w)
        canvas[:, :1, self.pad_top :, self.pad_side : self.pad_side + w] = codes
        return canvas

    def cond_rows(self, cond: torch.Tensor | CondCodes) -> CondSteps:
        """Conditioning -> its rows in the order the decoding steps read them: from
        :class:`~bbcodec.exact.narrow_conv.CondCodes` a block at a time, from a tensor
        (N, hidden, H, W) all at once (:meth:`_on_grid`)."""
        if not isinstance(cond, torch.Tensor):
            return CondSteps(cond)
        return CondSteps(k8.position_major(self._on_grid(cond).contiguous().numpy()))

    def _on_grid(self, cond: torch.Tensor) -> torch.Tensor:
        """int32 input is on ``h``'s grid already; float64 input is on the activation grid
        and is rounded onto it."""
        if cond.dtype == torch.int32:
            return cond
        down = math.ldexp(1.0, int(self.h_frac) - FRAC)  # a power of two: exact
        return torch.round(cond * down).to(torch.int32)

    # --- the network ----------------------------------------------------------------------
    def rows_params(self, windows: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """int8 windows (rows, 2·rows·cols) and int32 conditioning (rows, hidden) -> grid parameters."""
        dense = cond.numpy()
        return self._rows_params(windows, lambda lo, hi: dense[lo:hi])

    def _rows_params(self, windows: torch.Tensor, cond: Callable[[int, int], np.ndarray]) -> torch.Tensor:
        """:meth:`rows_params` with the conditioning of rows ``lo:hi`` made by ``cond(lo, hi)``.

        Rows are independent, so a long pass runs in blocks of :data:`ROWS_PER_BLOCK`:
        a block's products and codes stay in cache (one pass over 50,000 rows runs the
        int8 products at a third of their speed on blocks of 1,024)."""
        out = np.empty((len(windows), len(self.out.bias)), dtype=np.float64)
        for lo in range(0, len(windows), ROWS_PER_BLOCK):
            hi = min(lo + ROWS_PER_BLOCK, len(windows))
            self._block_params(windows[lo:hi], cond(lo, hi), out[lo:hi])
        return torch.from_numpy(out)

    def _block_params(self, windows: torch.Tensor, cond: np.ndarray, out: np.ndarray) -> None:
        head = self._kernel_plan()[2]
        window_sums = torch._int_mm(windows, self._kernel_plan()[0][0]).numpy()
        k8.requant_clamped(self._head_sums(window_sums, cond), *head[1:], ACT_LIMIT, out)

    def _head_sums(self, window_sums: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """The head's int32 digit sums from the window product's (rows, digit columns).
        An int16 code is carried as two int8 digits stacked (high rows, then low rows) so
        one int8 product serves both, an 8-bit code as one; the kernels recombine the sums."""
        window, blocks, head, tables = self._kernel_plan()
        limbs = self.code_limbs
        h, digits = k8.window_codes(window_sums, *window[1:], cond, tables[0], limbs[0])
        for b, (first, second) in enumerate(blocks):
            inner = k8.inner_codes(torch._int_mm(torch.from_numpy(digits), first[0]).numpy(), *first[1:],
                                   tables[2 * b + 1], limbs[2 * b], limbs[2 * b + 1])
            digits = k8.end_codes(torch._int_mm(torch.from_numpy(inner), second[0]).numpy(), *second[1:],
                                  h, tables[2 * b + 2], limbs[2 * b + 1], limbs[2 * b + 2])
        return torch._int_mm(torch.from_numpy(digits), head[0]).numpy()

    def _kernel_plan(self) -> tuple:
        """Each layer's (weight, bias, multiplier, shift) and the SiLU tables as the kernels
        take them, made once: a decoding step is short, and fetching module buffers
        and converting them on every step cost as much as a small group's products."""
        if self._plan is None:
            def args(layer: NarrowLinear) -> tuple:
                return (layer.weight, *layer.kernel_args())

            for site, limbs in enumerate(self.code_limbs):
                codes = self.tables[site]
                if limbs == 1 and (int(codes.min()) < CODE8_MIN or int(codes.max()) > CODE8_MAX):
                    raise BoundError(f"SiLU table {site}: an 8-bit code site holds codes outside int8")
            blocks = [(args(a), args(b)) for a, b in zip(self.first, self.second)]
            self._plan = (args(self.window), blocks, args(self.out), self.tables.numpy())
        return self._plan

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self._plan = None  # new weights: the plan is made again from them
        super()._load_from_state_dict(*args, **kwargs)

    def step_params(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor) -> torch.Tensor:
        """Parameters (N, P) of pixel (i, j) of every image, from the canvas coded so far."""
        window = canvas[:, :, i : i + self.rows, j : j + self.cols].reshape(len(canvas), -1)
        return self.rows_params(window, cond_row)

    def step_logistic_tables(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor,
                             k: int) -> torch.Tensor:
        """Frequency tables (N, 256) of pixel (i, j) of every image under a ``k``-component
        logistic head: :meth:`step_params` and the mixture's tables in one kernel after the
        products (the same integers; a decoding step is short, and the tensors between
        those steps cost as much as a small group's products)."""
        head = self._kernel_plan()[2]
        return torch.from_numpy(k8.head_logistic_tables(self._step_sums(canvas, i, j, cond_row), *head[1:],
                                                        ACT_LIMIT, k, logistic_kernel_tables()))

    def _step_sums(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor) -> np.ndarray:
        """The head's int32 digit sums at pixel (i, j) of every image."""
        window = np.ascontiguousarray(canvas.numpy()[:, :, i : i + self.rows, j : j + self.cols])  # numpy: fewer µs
        window_sums = torch._int_mm(torch.from_numpy(window.reshape(len(window), -1)), self._kernel_plan()[0][0])
        return self._head_sums(window_sums.numpy(), cond_row.numpy())

    def flag_sums(self, flags: torch.Tensor) -> np.ndarray:
        """(H·W, digit columns) int32: the window product's part that reads the inside-image
        flags ``flags`` (H + pad, W + 2·pad) of a padded canvas, at every position. Every
        image of a group has the same size, so this part is the same for all of them."""
        h, w = flags.shape[0] - self.pad_top, flags.shape[1] - 2 * self.pad_side
        taps = self.rows * self.cols
        at = flags.unfold(0, self.rows, 1).unfold(1, self.cols, 1)  # (H, W, rows, cols)
        return torch._int_mm(at.reshape(h * w, taps).contiguous(), self._kernel_plan()[0][0][taps:]).numpy()

    def step_logistic_draws(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor, k: int,
                            uniforms: np.ndarray) -> np.ndarray:
        """Seeded draws (N,) uint8 of pixel (i, j) of every image at the 24-bit ``uniforms``:
        what sampling :meth:`step_logistic_tables` gives, without building the tables (a
        lossy decoder draws and never codes)."""
        head = self._kernel_plan()[2]
        return k8.head_logistic_draws(self._step_sums(canvas, i, j, cond_row), *head[1:], ACT_LIMIT, k,
                                      np.ascontiguousarray(uniforms, dtype=np.int64), *logistic_kernel_tables())

    def step_logistic_pop(self, canvas: torch.Tensor, i: int, j: int, cond_row: torch.Tensor, k: int,
                          raw: RawHead) -> np.ndarray:
        """Pop pixel (i, j) of every image (N,) uint8 from the coder ``raw``: what popping
        with :meth:`step_logistic_tables` gives, without building the tables or calling
        the coder (a decoding step is short: those cost as much as its products)."""
        head = self._kernel_plan()[2]
        return k8.head_logistic_pop(self._step_sums(canvas, i, j, cond_row), *head[1:], ACT_LIMIT, k, raw.head,
                                    raw.words, *logistic_kernel_tables())

    def params(self, codes: torch.Tensor, cond: torch.Tensor | CondCodes) -> torch.Tensor:
        """Every pixel at once given the true pixels (teacher forcing): (N, H, W, P).
        The same integers as the steps: each row's sums are exact whatever the batch.

        Why a block at a time: the whole set of windows is ``N·H·W × 2·rows·cols`` bytes
        (the fast preset's 2,000 digits: 285 MB), and copying it out was a sixth of that
        model's encoding. Each block's pixel-code windows are gathered into a buffer that
        stays in cache, and the flags' part of the product, the same for every image, is
        added from :meth:`flag_sums` (digit sums add the same whichever part of the
        window they come from; the tests compare with :meth:`rows_params`)."""
        canvas = self.canvas(codes)
        n, _, hp, wp = canvas.shape
        h, w = hp - self.pad_top, wp - 2 * self.pad_side
        if isinstance(cond, torch.Tensor):
            dense = self._on_grid(cond).permute(0, 2, 3, 1).reshape(n * h * w, -1).contiguous().numpy()
            rows = lambda lo, hi: dense[lo:hi]  # noqa: E731
        else:
            rows = cond.rows
        pixels, flags = np.ascontiguousarray(canvas[:, 0].numpy()), self.flag_sums(canvas[0, 1])
        w_pixels, head = self._kernel_plan()[0][0][: self.rows * self.cols].contiguous(), self._kernel_plan()[2]
        out = np.empty((n * h * w, len(self.out.bias)), dtype=np.float64)
        block = np.empty((ROWS_PER_BLOCK, self.rows * self.cols), dtype=np.int8)
        for lo in range(0, n * h * w, ROWS_PER_BLOCK):
            hi = min(lo + ROWS_PER_BLOCK, n * h * w)
            k8.window_rows(pixels, lo, hi, h, w, self.rows, self.cols, block)
            sums = torch._int_mm(torch.from_numpy(block[: hi - lo]), w_pixels).numpy()
            k8.add_position_rows(sums, flags, lo)
            k8.requant_clamped(self._head_sums(sums, rows(lo, hi)), *head[1:], ACT_LIMIT, out[lo:hi])
        return torch.from_numpy(out).view(n, h, w, -1)

    def rows_params_reference(self, windows: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """:meth:`rows_params` in int64 torch ops, no digits: the definition the kernels must match."""
        def product(layer: NarrowLinear, codes: torch.Tensor) -> torch.Tensor:
            digits = layer.weight.to(torch.int64).view(layer.weight.shape[0], -1, len(layer.bias))
            weight = digits[:, 0] if digits.shape[1] == 1 else digits[:, 0] * 64 + digits[:, 1]
            return k8.requantise_reference(codes.to(torch.int64) @ weight, layer.bias, layer.mult, layer.shift)

        def code(table: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return table.to(torch.int64)[h - k8.H_MIN]

        h = (product(self.window, windows) + cond.to(torch.int64)).clamp(k8.H_MIN, k8.H_MAX)
        codes = code(self.tables[0], h)
        for b, (first, second) in enumerate(zip(self.first, self.second)):
            inner = code(self.tables[2 * b + 1], product(first, codes).clamp(k8.H_MIN, k8.H_MAX))
            h = (h + product(second, inner)).clamp(k8.H_MIN, k8.H_MAX)
            codes = code(self.tables[2 * b + 2], h)
        return product(self.out, codes).clamp(-ACT_LIMIT, ACT_LIMIT).double()
