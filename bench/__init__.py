"""bbcodec's benchmark harness: ``python -m bench --help``.

Every benchmark codes files, so the package pins torch's portable float kernels on
import, before any benchmark runs a kernel (see :mod:`bbcodec.numerics`): the
files it measures are the files any machine can decode, and its speeds are the
speeds of those kernels.
"""

from bbcodec import numerics

numerics.pin()
