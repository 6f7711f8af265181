"""bbcodec: lossless image compression with bits-back ANS on trained latent-variable models.

    >>> import bbcodec
    >>> data = bbcodec.compress(images)          # uint8 HxW / HxWx3 arrays -> bytes
    >>> bbcodec.decompress(data)                  # -> the same arrays, bit-exact

Embedding the coder directly: ``bbcodec.BitsBackCoder`` over any model that
implements ``bbcodec.contract.LatentModel``, on a ``bbcodec.ans.Stack``, with the
distribution codecs of ``bbcodec.codecs``. Every probability the coder uses comes
from the integer form of a model (``bbcodec.exact``), so a file decodes bit for bit
on any machine, whatever its CPU, kernels or thread count.
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
    OutputError,
    UnsupportedImageError,
)
from bbcodec.zoo import ModelInfo, list_models, load_model

__version__ = "0.2.0"

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
    "OutputError",
    "UnsupportedImageError",
    "compress",
    "decompress",
    "inspect",
    "list_models",
    "load_model",
]
