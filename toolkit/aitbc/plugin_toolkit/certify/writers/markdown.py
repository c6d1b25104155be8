"""The report as GitHub-flavoured Markdown, fit for ``$GITHUB_STEP_SUMMARY``.

A heading with the verdict and the plugin, a table of checks, the findings of each check
that did not pass (``file:line`` and message), every check's notes, the artifacts with
their sha256, the reasons, and the isolation and policy the verdict stands on.  Every
piece of report text is escaped, so a message holding ``|``, ``<``, ``*`` or a newline
shows as written and never breaks the table.
"""

from __future__ import annotations

import re
from typing import IO

from ..model import CertificationReport, CheckResult, Finding
from ._common import (
    PARTIAL,
    isolation_label,
    location,
    notes,
    plugin_label,
    policy_label,
    printable,
    seconds,
    shown_findings,
    status_label,
    toolkit_label,
    verdict,
)

# ASCII punctuation Markdown or HTML could read as inline syntax; a backslash makes it
# literal.  Block syntax only matters where text starts a line: see _BLOCK_START.
_SYNTAX = re.compile(r"([\\`*_\[\]<>|~&])")
# A list item whose text starts "- ", "+ ", "# " or "1. " would nest a list or heading.
_BLOCK_START = re.compile(r"^(?:[-+#]|\d+(?=[.)]))")


class MarkdownWriter:
    suffix = ".md"

    def write(self, report: CertificationReport, stream: IO[str]) -> None:
        stream.write("\n".join(render(report)) + "\n")


def render(report: CertificationReport) -> list[str]:
    lines = [f"## {text(_heading(report))}: {text(plugin_label(report))}", ""]
    lines += [text(PARTIAL), ""] if report.only else []
    lines += [
        "| Check | Status | Duration | Findings | Summary |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    lines += [_check_row(check) for check in report.checks]
    failing = [check for check in report.checks if shown_findings(check)]
    if failing:
        lines += ["", "### Findings"]
        for check in failing:
            lines += ["", f"#### {text(check.id)} ({text(status_label(check))})", ""]
            lines += [_finding_item(finding) for finding in check.findings]
    noted = [(check, notes(check)) for check in report.checks]
    if any(said for _, said in noted):
        lines += ["", "### Notes"]
        for check, said in noted:
            if said:
                lines += ["", f"#### {text(check.id)}", ""]
                lines += [f"- {text(note)}" for note in said]
    if report.artifacts:
        lines += [
            "",
            "### Artifacts",
            "",
            "| File | SHA-256 | Size (bytes) |",
            "| --- | --- | ---: |",
        ]
        lines += [
            f"| {code(a.path, table=True)} | {code(a.sha256, table=True)} | {a.size} |"
            for a in report.artifacts
        ]
    if report.reasons:
        lines += ["", "### Why it failed" if report.only else "### Why not certified", ""]
        lines += [f"- {text(reason)}" for reason in report.reasons]
    stands_on = [f"Isolation: {isolation_label(report)}"] if report.isolation else []
    stands_on += [f"Policy: {policy_label(report)}"] if policy_label(report) else []
    if stands_on:
        lines += ["", "<br>".join(text(line) for line in stands_on)]
    lines += ["", f"<sub>Checked by {text(toolkit_label(report))}</sub>"]
    return lines


def _heading(report: CertificationReport) -> str:
    """The verdict in sentence case: ``Certified``, ``Passed (only: security)``."""
    said = verdict(report)
    word, _, rest = said.partition(" (")
    return word.capitalize() + (f" ({rest}" if rest else "")


def _check_row(check: CheckResult) -> str:
    took = "cached" if check.cached else f"{seconds(check.duration_s):.2f} s"
    cells = [
        text(check.id),
        text(status_label(check)),
        took,
        str(len(check.findings)),
        text(check.summary),
    ]
    return "| " + " | ".join(cells) + " |"


def _finding_item(finding: Finding) -> str:
    where = location(finding)
    head = f"{code(where)} — " if where else ""
    tag = f"({text(finding.severity.value)}, {code(finding.rule)})"
    return f"- {head}{text(finding.message)} {tag}"


def text(value: str) -> str:
    """Report text as literal inline Markdown: syntax escaped, line breaks as ``<br>``."""
    escaped = _SYNTAX.sub(r"\\\1", printable(value).strip())
    escaped = _BLOCK_START.sub(_unblock, escaped)
    return "<br>".join(escaped.splitlines())


def code(value: str, *, table: bool = False) -> str:
    """``value`` as a code span, on one line; in a table its pipes are escaped too."""
    value = " ".join(printable(value).split()) or " "
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", value)), default=0))
    if value.startswith("`") or value.endswith("`"):
        value = f" {value} "
    if table:  # GFM splits table cells on "|" before it sees code spans
        value = value.replace("|", "\\|")
    return f"{fence}{value}{fence}"


def _unblock(match: re.Match[str]) -> str:
    """``\\-``, ``\\#``, or ``1\\.``: the same text, no longer a list marker or heading."""
    marker = match.group()
    return marker + "\\" if marker[0].isdigit() else "\\" + marker
