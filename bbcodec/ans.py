"""The ANS stack: a thin, typed layer over constriction's exact ``AnsCoder``.

An ANS coder is a stack (last in, first out): ``push`` writes symbols, ``pop``
reads them back in reverse order of pushing. Bits-back coding relies on popping
symbols that were never pushed, which *reads* bits from the stack; constriction
silently yields zeros once the stack runs dry, so bits-back callers check
:meth:`Stack.ensure_not_drained` after such pops (``StackUnderflowError``).

Words are 32-bit; the bottom of the stack is the start of :meth:`Stack.words`.
"""

from __future__ import annotations

import constriction
import numpy as np

from bbcodec.errors import BBCodecError

AnsCoder = constriction.stream.stack.AnsCoder
entropy_models = constriction.stream.model  # constriction's entropy models (not bbcodec's)


class StackUnderflowError(BBCodecError):
    """A pop needed more bits than the stack holds (no initial bits left)."""


class RawHead:
    """The coder laid out for compiled kernels that pop symbols themselves: ``words`` (the
    bulk, valid up to ``head[0]``) and ``head`` = [bulk length, 64-bit state], uint64.

    constriction's compressed form is the bulk followed by the state's nonzero 32-bit
    words, low first (``AnsCoder::into_compressed``), and it reads a state back as the
    last word and, where there is one, the word below it (``read_initial_state``). A
    kernel that pops by ``AnsCoder::decode_symbol``'s rule
    (:func:`bbcodec.exact.kernels.ans_advance`) leaves exactly the coder constriction
    would: a decoding step's pixels need no tables and no call per step.
    """

    def __init__(self, compressed: np.ndarray) -> None:
        words = np.array(compressed, dtype=np.uint32)  # owned: kernels read it in place
        n, state = len(words), 0
        if n >= 2:
            n, state = n - 2, (int(words[-1]) << 32) | int(words[-2])
        elif n == 1:
            n, state = 0, int(words[0])
        self.words = words
        self.head = np.array([n, state], dtype=np.uint64)

    def compressed(self) -> np.ndarray:
        """constriction's compressed form of the current state."""
        n, state = int(self.head[0]), int(self.head[1])
        tail = [state & 0xFFFFFFFF, state >> 32] if state >> 32 else [state] if state else []
        return np.concatenate([self.words[:n], np.array(tail, dtype=np.uint32)])


class Stack:
    """A LIFO entropy coder holding a growing array of 32-bit words: constriction's
    ``AnsCoder``, or for a run of compiled pops its :class:`RawHead` (turned back into a
    coder at the next operation that needs one)."""

    def __init__(self, words: np.ndarray | None = None) -> None:
        self._raw: RawHead | None = None
        if words is None:
            self._ans = AnsCoder()
        else:
            self._ans = AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))

    @property
    def _coder(self) -> AnsCoder:
        if self._raw is not None:
            self._ans, self._raw = AnsCoder(self._raw.compressed()), None
        return self._ans

    def raw(self) -> RawHead:
        """The coder as a :class:`RawHead` for kernels that pop in place (one copy of the
        words each way, when switching)."""
        if self._raw is None:
            self._raw = RawHead(self._ans.get_compressed())
        return self._raw

    def push(self, symbols: np.ndarray, family: object, *params: np.ndarray) -> None:
        """Push ``symbols`` (one per parameter row) so that ``pop`` returns them in order."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if symbols.size:
            self._coder.encode_reverse(symbols, family, *params)

    def pop(self, family: object, *params: np.ndarray, count: int | None = None) -> np.ndarray:
        """Pop one symbol per parameter row (or ``count`` i.i.d. symbols of a concrete model)."""
        if count is not None:
            return self._coder.decode(family, count) if count else np.zeros(0, np.int32)
        n = len(params[0]) if params else 0
        return self._coder.decode(family, *params) if n else np.zeros(0, np.int32)

    def ensure_not_drained(self, reserve_bits: int = 64) -> None:
        """Raise if pops may have read past the data (constriction would not say so)."""
        if self._coder.num_valid_bits() < reserve_bits:
            raise StackUnderflowError("the ANS stack ran dry: bits-back needs more initial bits")

    def words(self) -> np.ndarray:
        """The stack's content as uint32 words, bottom first (a copy)."""
        return self._coder.get_compressed()

    def num_bits(self) -> int:
        """Size of :meth:`words` in bits."""
        return int(self._coder.num_bits())

    def num_valid_bits(self) -> int:
        """Bits of information on the stack (without the head's unused bits): for comparing costs."""
        return int(self._coder.num_valid_bits())

    def num_words(self) -> int:
        return int(self._coder.num_words())

    def is_empty(self) -> bool:
        return bool(self._coder.is_empty())
