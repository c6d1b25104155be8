"""Report writers, by format name (``--format``).  Adding a format: one module, one line.

Each writer reads only the CertificationReport and writes to the stream it is given; the
CLI decides where that stream goes.
"""

from __future__ import annotations

from ..base import ReportWriter
from .json_writer import JsonWriter
from .junit import JUnitWriter
from .markdown import MarkdownWriter
from .sarif import SarifWriter
from .text import TextWriter

WRITERS: dict[str, ReportWriter] = {}


def _register(writer: ReportWriter) -> None:
    WRITERS[writer.format] = writer


_register(TextWriter())
_register(JsonWriter())
_register(JUnitWriter())
_register(SarifWriter())
_register(MarkdownWriter())

__all__ = ["WRITERS", "JUnitWriter", "JsonWriter", "MarkdownWriter", "SarifWriter", "TextWriter"]
