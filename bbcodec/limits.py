"""The one set of limits: what a .bbc file may declare and what one network batch may hold.

The container refuses to read past them (a hostile header cannot make the decoder
allocate without bound) and the encoder refuses to write past them, so every file
that is written can be read. The coders size their batches by the same numbers.
"""

from __future__ import annotations

MAX_IMAGES = 10_000_000
MAX_SIDE = 1 << 16
MAX_CHANNELS = 4
MAX_TOTAL_PIXELS = 1 << 34
MAX_NAME_BYTES = 4096
MAX_INITIAL_WORDS = 1 << 24
MAX_GROUP_PIXELS = 1 << 22  # one network batch: bounds the decoder's memory (~1 GB of activations)
MAX_GROUP_IMAGES = 4096
MAX_LATENT_PRECISION = 12
MAX_SAMPLES = 256  # importance samples / lossy draws per image (each costs one more network pass)
MIN_TILE, MAX_TILE = 32, 1024  # a unit of MAX_TILE^2 x MAX_CHANNELS samples fits one batch
MAX_UNITS = 1 << 22  # coding units (images or tiles) per file
LOSSY_STEP_UNIT = 1.0 / 256.0  # lossy files store their quantisation step in these units
MIN_LOSSY_STEP_UNITS, MAX_LOSSY_STEP_UNITS = 4, 4096  # steps 1/64 .. 16


