"""Report writers, by format name (``--format``).  Adding a format: one module here and
one line in ``_REGISTERED``; the CLI's choices, ``--report-dir`` file names and the
tests follow from it.

Each writer reads only the CertificationReport and writes to the stream it is given; the
CLI decides where that stream goes.  Writers are imported when first used, so the
command line lists the formats without loading them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..base import ReportWriter

_REGISTERED = {  # format -> "module:class", in the order --help lists them
    "text": "text:TextWriter",
    "json": "json_writer:JsonWriter",
    "junit": "junit:JUnitWriter",
    "sarif": "sarif:SarifWriter",
    "markdown": "markdown:MarkdownWriter",
}
FORMATS: tuple[str, ...] = tuple(_REGISTERED)
# --report-dir writes each format as REPORT_STEM + its writer's suffix.
REPORT_STEM = "certification"


class _Writers(Mapping[str, "ReportWriter"]):
    """``WRITERS[format]``: the writer, imported on first use."""

    def __init__(self) -> None:
        self._made: dict[str, ReportWriter] = {}

    def __getitem__(self, name: str) -> ReportWriter:
        if name not in self._made:
            module, _, cls = _REGISTERED[name].partition(":")
            self._made[name] = getattr(importlib.import_module(f".{module}", __name__), cls)()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTERED)

    def __len__(self) -> int:
        return len(_REGISTERED)


WRITERS: Mapping[str, ReportWriter] = _Writers()

__all__ = ["FORMATS", "REPORT_STEM", "WRITERS"]
