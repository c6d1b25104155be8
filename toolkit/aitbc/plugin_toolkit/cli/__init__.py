"""The ``aitbc-plugin`` command line: the only part of the toolkit that prints and picks
exit codes.  ``main`` holds ``new``, ``update`` and ``certify``; ``ci`` the workflow glue."""

from .main import cli, main

__all__ = ["cli", "main"]
