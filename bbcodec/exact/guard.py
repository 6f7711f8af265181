"""The float64 operations the coding path may run, and a guard that enforces the list.

Inside the integer networks, values are whole numbers (or dyadic fractions, in
:func:`bbcodec.exact.fixed.requantise`) held in float64 tensors. An operation on
them is exact, and so identical on every CPU, library and thread count, when its
result is exactly representable and does not depend on evaluation order. The ops
below are the ones this holds for, each with the reason; any other float op on the
coding path (a float32 kernel, ``exp``, ``sigmoid``, a division, a reduction whose
rounding depends on order) fails :class:`FloatGuard`, which the test suite wraps
around every coding mode. The compiled kernels of :mod:`bbcodec.exact.kernels` run
outside torch and keep to the same rules (documented there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Sums of products of integers below 2^53 (proven per layer at load): any order, any
# blocking, any instruction set gives the exact integer.
_ACCUMULATE = {aten.addmm.default, aten.mm.default, aten.convolution.default}
# Exact by IEEE 754 when operands are integers / powers of two and results stay below 2^53:
# add/sub of integers; mul of an integer by a power of two or by a bounded integer;
# round (half to even), floor and clamp are exact by definition; frexp is bit manipulation.
_ARITHMETIC = {
    aten.add.Tensor, aten.add_.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.mul_.Tensor, aten.neg.default,
    aten.round.default, aten.round_.default, aten.floor.default, aten.floor_.default,
    aten.clamp.default, aten.clamp_.default, aten.clamp_min.default, aten.clamp_max.default,
    aten.frexp.Tensor,
}
# Moving, selecting and converting whole numbers (int64 -> float64 is exact below 2^53).
_DATA = {
    aten.cat.default, aten.stack.default, aten.view.default, aten._unsafe_view.default, aten.reshape.default,
    aten.permute.default, aten.expand.default, aten.clone.default, aten.slice.Tensor, aten.select.int,
    aten.unsqueeze.default, aten.squeeze.dim, aten.t.default, aten.transpose.int, aten.split.Tensor,
    aten.as_strided.default, aten.constant_pad_nd.default, aten.index.Tensor, aten.index_put_.default,
    aten.copy_.default, aten._to_copy.default, aten.zeros.default, aten.zeros_like.default, aten.empty.memory_format,
    aten.full.default, aten.full_like.default, aten.fill_.Scalar, aten.fill_.Tensor, aten.lift_fresh.default, aten.alias.default,
    aten.detach.default, aten.index_select.default, aten.new_zeros.default, aten.eq.Tensor, aten.ne.Tensor,
    aten.eq.Scalar, aten.lt.Scalar, aten.gt.Scalar, aten.unbind.int, aten.split_with_sizes.default, aten.repeat.default,
}
EXACT_FLOAT64_OPS = frozenset(_ACCUMULATE | _ARITHMETIC | _DATA)


class UnprovenFloatOp(AssertionError):
    """A floating-point op on the coding path that the design has not proven exact."""


class FloatGuard(TorchDispatchMode):
    """Fail on any op touching a float tensor other than float64 ops of :data:`EXACT_FLOAT64_OPS`.

    ``seen`` collects the float64 ops that ran (for reports).
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        dtypes = {t.dtype for t in _tensors((args, kwargs, out)) if t.dtype.is_floating_point}
        if dtypes:
            if dtypes != {torch.float64}:
                raise UnprovenFloatOp(f"{func} ran on {sorted(map(str, dtypes))}: coding uses no float32/16 kernels")
            if func not in EXACT_FLOAT64_OPS:
                raise UnprovenFloatOp(f"{func} on float64 is not in bbcodec.exact.guard.EXACT_FLOAT64_OPS")
            self.seen.add(str(func))
        return out


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)
