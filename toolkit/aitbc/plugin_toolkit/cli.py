"""The ``aitbc-plugin`` command line.  The only place that prints and picks exit codes."""

from __future__ import annotations

import sys

import click
from aitbc.plugins import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aitbc-plugin")
def cli() -> None:
    """Create, check and certify AITBC plugins."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="aitbc-plugin", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
