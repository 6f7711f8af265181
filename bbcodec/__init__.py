"""bbcodec: lossless image compression with bits-back ANS on trained latent-variable models.

    >>> import bbcodec
    >>> data = bbcodec.compress(images)          # uint8 HxW / HxWx3 arrays -> bytes
    >>> bbcodec.decompress(data)                  # -> the same arrays, bit-exact

Embedding the coder directly: ``bbcodec.BitsBackCoder`` over any model that
implements ``bbcodec.contract.LatentModel``, on a ``bbcodec.ans.Stack``, with the
distribution codecs of ``bbcodec.codecs``. Files are portable across machines
because coding runs torch's pinned AVX2 kernels: ``compress`` and ``decompress``
pin them themselves; a program that runs other torch work first, or drives the
coder directly, calls ``bbcodec.numerics.pin()`` before any of it.
"""

from __future__ import annotations

from bbcodec.api import FileInfo, compress, decompress, inspect
from bbcodec.bitsback import BitsBackCoder, CoderSettings
from bbcodec.errors import (
    BBCodecError,
    DataError,
    DecodeMismatchError,
    FormatError,
    ModelMismatchError,
    NumericsError,
    UnsupportedImageError,
)
from bbcodec.zoo import ModelInfo, list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "BBCodecError",
    "BitsBackCoder",
    "CoderSettings",
    "DataError",
    "DecodeMismatchError",
    "FileInfo",
    "FormatError",
    "ModelInfo",
    "ModelMismatchError",
    "NumericsError",
    "UnsupportedImageError",
    "compress",
    "decompress",
    "inspect",
    "list_models",
    "load_model",
]
