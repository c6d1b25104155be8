"""What GitHub accepts and shows, as named numbers: every writer and glue function that
must stay within one of GitHub's limits reads it here, and only here.

Sources (read 2026-12):

- SARIF: "SARIF support for code scanning", the upload limits table, and "SARIF results
  exceed one or more limits" (docs.github.com/en/code-security/code-scanning/
  troubleshooting-sarif-uploads/results-exceed-limit): runs per file 20, results per run
  25,000 (only the top 5,000 shown, by severity), rules per run 25,000, locations per
  result 1,000 (100 shown), tags per rule 20 (10 shown); "SARIF file is too large"
  (.../troubleshooting-sarif-uploads/file-too-large): at most 10 MB gzip-compressed.
- Job summary: "Adding a job summary" in "Workflow commands for GitHub Actions"
  (docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands): 1 MiB
  per step; over it the runner says "$GITHUB_STEP_SUMMARY upload aborted, supports
  content up to a size of 1024k" and shows nothing.
- Annotations from workflow commands (actions/toolkit docs/problem-matchers.md, "Limitations",
  actions/toolkit#734): 10 error and 10 warning annotations per step, 50 per job; the rest
  are dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ..certify.writers import REPORT_STEM
from ..certify.writers.json_writer import JsonWriter

SARIF_MAX_RUNS = 20
SARIF_MAX_RESULTS_PER_RUN = 25_000
SARIF_SHOWN_RESULTS_PER_RUN = 5_000
SARIF_MAX_RULES_PER_RUN = 25_000
SARIF_MAX_LOCATIONS_PER_RESULT = 1_000
SARIF_MAX_TAGS_PER_RULE = 20
SARIF_SHOWN_TAGS_PER_RULE = 10
SARIF_MAX_GZIP_BYTES = 10 * 1000 * 1000  # "10 MB"; decimal, the stricter reading

STEP_SUMMARY_MAX_BYTES = 1024 * 1024  # "1024k"

ANNOTATIONS_PER_STEP = {"error": 10, "warning": 10}
ANNOTATIONS_PER_JOB = 50

# Where a capped output sends its reader: the CLI writes the JSON report under this name
# in --report-dir, and certify.yml uploads that folder as the reports artifact.
FULL_REPORT_NAME = REPORT_STEM + JsonWriter.suffix


T = TypeVar("T")


def summary_bytes(lines: Sequence[str]) -> int:
    """Bytes these lines take in a job summary (each ends with a newline)."""
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def capped(items: Sequence[T], limit: int) -> tuple[Sequence[T], int]:
    """The head of ``items`` that fits ``limit`` entries and how many gave way; when any
    did, one slot is left for the entry that says so."""
    if len(items) <= limit:
        return items, 0
    return items[: limit - 1], len(items) - (limit - 1)


def more_text(count: int, what: str, where: str | None = None) -> str:
    """The final entry of a capped output: how many more, and where they all are."""
    place = where or (
        f"the full JSON report, {FULL_REPORT_NAME} (certify --format json; in the certify "
        "workflow, the reports artifact)"
    )
    noun = what if count == 1 else f"{what}s"
    return f"{count:,} more {noun} not shown here (GitHub's limit); {place} has them all."
