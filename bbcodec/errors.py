"""One exception tree, so callers can catch every codec failure with one clause.

Each class has a distinct exit code of the ``bbcodec`` command; :data:`EXIT_CODES`
lists every code the command can return, and ``bbcodec --help`` prints it.
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


class OutputError(BBCodecError):
    """An output cannot be written (exists without ``--force``, disk full, no permission)."""

    exit_code = 8


EXIT_USAGE = 2  # click's code for a bad command line
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's 128 + SIGINT

EXIT_CODES: dict[int, str] = {
    0: "success",
    BBCodecError.exit_code: "another bbcodec error (e.g. an input file cannot be read)",
    EXIT_USAGE: "usage error",
    FormatError.exit_code: "not a valid .bbc file (format-1 files name bbcodec 0.1, which reads them)",
    ModelMismatchError.exit_code: "the file's model is missing or different",
    DecodeMismatchError.exit_code: "decoded data fail the file's checksum",
    UnsupportedImageError.exit_code: "the image cannot be coded (alpha, palette, 16-bit, ... are refused, "
                                     "never converted)",
    DataError.exit_code: "a dataset is missing or fails its checksum",
    OutputError.exit_code: "an output cannot be written",
    EXIT_INTERRUPTED: "interrupted (nothing written)",
}
