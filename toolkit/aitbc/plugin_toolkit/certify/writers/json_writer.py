"""The report as JSON: exactly ``CertificationReport.as_dict()``, for programs.

Key order is the model's, so the output is stable for a given report.  Non-ASCII text is
written as ``\\u`` escapes: the document is then valid whatever encoding the stream uses
and every string (even an undecodable file name) survives the round trip.
"""

from __future__ import annotations

import json
from typing import IO

from ..model import CertificationReport


class JsonWriter:
    suffix = ".json"

    def write(self, report: CertificationReport, stream: IO[str]) -> None:
        # default=str: a check's details are plain data by contract; should one slip
        # through (a Path), the report is still written rather than lost.
        json.dump(report.as_dict(), stream, indent=2, ensure_ascii=True, default=str)
        stream.write("\n")
