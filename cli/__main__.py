"""``python -m cli``: the same entry point as the ``qkt`` console script."""

from cli.main import main

main()
