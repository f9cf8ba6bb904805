"""The ``qkt`` command line: thin Typer commands over the :mod:`qkt` library."""
