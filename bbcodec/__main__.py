"""``python -m bbcodec`` is the ``bbcodec`` command."""

from bbcodec.cli import main

main()
