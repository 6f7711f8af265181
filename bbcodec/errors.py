"""One exception tree, so callers can catch every codec failure with one clause.

Each class has a distinct CLI exit code (see ``bbcodec.cli``).
"""

from __future__ import annotations


class BBCodecError(Exception):
    """Base class of every error bbcodec raises on purpose."""

    exit_code = 1


class FormatError(BBCodecError):
    """The input is not a valid .bbc file: wrong magic, truncated, corrupted."""

    exit_code = 3


class ModelMismatchError(BBCodecError):
    """The file needs a model that is missing or whose weights differ."""

    exit_code = 4


class DecodeMismatchError(BBCodecError):
    """Decoded pixels fail the stored checksum: never returned to the caller."""

    exit_code = 5


class UnsupportedImageError(BBCodecError):
    """The image cannot be coded losslessly by the chosen model (mode, size, depth)."""

    exit_code = 6


class DataError(BBCodecError):
    """A dataset is missing or fails its checksum; the message says how to get it."""

    exit_code = 7
