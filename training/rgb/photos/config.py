"""What the RGB training set is made of: sizes, thresholds, sources and the manual lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "rgb"  # sources.json lives beside the model it trained
SCRIPT_VERSION = 1  # bump when the selection or sampling logic changes


PATCH = 32
DEFAULT_PATCHES = 200_000
DEFAULT_SEED = 0
VAL_FRACTION = 0.05
MIN_SHORT_SIDE = 256  # photos smaller than this are thumbnails/icons, and /2 must stay >= 128
MIN_DOWNSCALED_SIDE = 128
DOWNSCALE_FACTORS = (4, 3, 2)  # largest first: the more averaging, the fewer artefacts
# Patch counts follow downscaled area, but an area cap keeps the ~50 multi-megapixel
# wallpapers (much smooth bokeh and sky) from supplying most of the data (55% uncapped,
# 46% with this cap) at the expense of ~225 ordinary photos.
DEFAULT_AREA_CAP = 512 * 512

# Photo-vs-graphic heuristics, measured on a 128x128 box-filtered copy. Thresholds were
# set by looking at every candidate (contact sheets) so that no real photo is lost.
STATS_SIDE = 128
GRAY_CHROMA = 12  # max-min over RGB above this counts as a "coloured" pixel
GRAY_MAX_COLOURED_FRACTION = 0.02  # fewer coloured pixels than this: grayscale photo
FLAT_MAX_FRACTION = 0.35  # pixels identical to right & lower neighbour: clip-art/cut-out
MIN_COLOURS = 200  # distinct colours (6 bits/channel); drawings/renders have few
NEAR_DUP_MAX_BITS = 24  # of 512 gradient-hash bits: same picture, other size/encoding

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class DebSource:
    """A Debian package and the glob patterns (relative to its root) holding photos.

    ``rcc`` names Qt resource bundles whose embedded images are candidates instead."""

    package: str
    globs: tuple[str, ...] = ()
    rcc: tuple[str, ...] = ()


GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"
DEB_SOURCES: tuple[DebSource, ...] = (
    # GCompris activities whose resources are photographs (WebP inside .rcc bundles).
    DebSource("gcompris-qt-data", rcc=tuple(f"{GCOMPRIS_RCC_DIR}/{a}.rcc" for a in (
        "explore_monuments", "erase", "explore_world_animals", "explore_farm_animals",
        "explore_world_music", "clickgame", "details", "categorization"))),
    DebSource("opencv-doc", ("usr/share/doc/opencv-doc/examples/**/*",)),
    DebSource("tuxpaint-data", ("usr/share/tuxpaint/templates/*",)),
    DebSource("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*",)),
    DebSource("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*",)),
    DebSource("plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images*/*",)),
    DebSource("lxqt-themes", ("usr/share/lxqt/wallpapers/*",)),
    DebSource("palapeli-data", ("usr/share/palapeli/collection/*",)),
    DebSource("lomiri-wallpapers-20.04", ("usr/share/backgrounds/*",)),
)

FOOLBOX_NAME = "foolbox"
FOOLBOX_VERSION = "3.3.4"
FOOLBOX_WHEEL_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
FOOLBOX_LICENCE = ("MIT (foolbox wheel); the pictures are ImageNet samples whose copyright "
                   "stays with their photographers (ImageNet terms: non-commercial research)")
# Only these members are read. The wheel's cifar10_*.png are the project's TEST images
# and must never reach training data; cifar100/fashionMNIST/mnist are tiny anyway.
FOOLBOX_MEMBER_RE = re.compile(r"^foolbox/data/imagenet_\d+_\d+\.jpg$")

# Found by visual review of every candidate that passes the automatic filters: these
# are not photographs of the real world (or are synthetic test images), and no simple
# statistic tells them apart from photos. Patterns use fnmatch against the package path.
MANUAL_EXCLUDE: tuple[tuple[str, str, str], ...] = (
    ("gcompris-qt-data", "*/details/resource/image/*Gogh*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/PortraitOfPereTanguy*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/Van_Gogh_*", "painting (Van Gogh reproduction)"),
    ("gcompris-qt-data", "*/details/resource/image/Eglise_dAuvers*", "painting (Van Gogh reproduction)"),
    ("opencv-doc", "*/starry_night.jpg", "painting (Van Gogh reproduction)"),
    ("opencv-doc", "*/fuzzy/input.png", "digital drawing (anime character)"),
    ("opencv-doc", "*/ximgproc/stanford.png", "map screenshot"),
    ("opencv-doc", "*/data/pic[1-6].png", "synthetic test pattern"),
    ("opencv-doc", "*/data/licenseplate_motion.jpg", "synthetically motion-blurred photo"),
    ("lomiri-wallpapers-16.04", "*/umang_by_Abhishek_Mudgal.jpg", "digital artwork (gradient)"),
    ("lomiri-wallpapers-16.04", "*/analogpattern_by_Peter_Nerlich.jpg", "digital artwork (pattern)"),
    ("lomiri-wallpapers-20.04", "*/Fossa_by_Jasper_Roks.jpg", "digital artwork"),
    ("lomiri-wallpapers-20.04", "*/Infinite-Sea_by_Aury88.jpg", "digital artwork"),
    ("lomiri-wallpapers-20.04", "*/Painting-Colors_by__herobrine7gamer.jpg", "digital artwork"),
    *(("plasma-workspace-wallpapers", f"usr/share/wallpapers/{w}/*", "digital artwork (render)")
      for w in ("Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
                "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills",
                "Patak", "SafeLanding", "Shell", "Volna")),
    *(("lxqt-themes", f"usr/share/lxqt/wallpapers/{w}", "digital artwork (render/logo)")
      for w in ("kde-plasma.png", "*origami*", "plasma-logo-*", "plasma_arch.png",
                "simple_blue_widescreen.png", "triangles*", "waves-*")),
)

# Different views of one scene (stereo pairs, before/after edits): kept, but always put
# in the same split so validation never sees a near copy of a training photo.
RELATED_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("opencv-doc", ("*/data/aloeL.jpg", "*/data/aloeR.jpg")),
    ("opencv-doc", ("*/data/leuvenA.jpg", "*/data/leuvenB.jpg")),
    ("opencv-doc", ("*/data/graf1.png", "*/data/graf3.png")),
    ("opencv-doc", ("*/data/ela_original.jpg", "*/data/ela_modified.jpg")),
    ("opencv-doc", ("*/data/left.jpg", "*/data/right.jpg")),
)
