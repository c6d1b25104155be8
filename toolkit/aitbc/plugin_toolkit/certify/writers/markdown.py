"""The report as GitHub-flavoured Markdown, fit for ``$GITHUB_STEP_SUMMARY``.

A heading with the verdict and the plugin, a table of checks, the findings of each check
that did not pass (``file:line`` and message, most severe first), every check's notes,
the artifacts with their sha256, the reasons, and the isolation and policy the verdict
stands on.  The whole stays under GitHub's job summary limit: findings and notes that do
not fit are counted, with where the full report is.  Every
piece of report text is escaped, so a message holding ``|``, ``<``, ``*`` or a newline
shows as written and never breaks the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import IO

from ...ci.limits import STEP_SUMMARY_MAX_BYTES, more_text, summary_bytes
from ..model import CertificationReport, CheckResult, Finding
from ._common import (
    PARTIAL,
    by_severity,
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
    head = [f"## {text(_heading(report))}: {text(plugin_label(report))}", ""]
    head += [text(PARTIAL), ""] if report.only else []
    head += [
        "| Check | Status | Duration | Findings | Summary |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    head += [_check_row(check) for check in report.checks]
    tail = _tail(report)
    # GitHub drops a summary over its limit whole: findings, most severe first, then
    # notes take what room the rest leaves, and what does not fit is counted instead.
    room = STEP_SUMMARY_MAX_BYTES - summary_bytes(head) - summary_bytes(tail) - _RESERVE
    failing = [(c, f) for c in report.checks if shown_findings(c) for f in c.findings]
    ranked = by_severity(failing, lambda item: item[1].severity)
    findings, room = _fit([(c, _finding_item(f)) for c, f in ranked], room, _finding_group)
    noted = [(check, f"- {text(note)}") for check in report.checks for note in notes(check)]
    said, _ = _fit(noted, room, _note_group)
    lines = head
    lines += _section("### Findings", report, findings, _finding_group, len(ranked), "finding")
    lines += _section("### Notes", report, said, _note_group, len(noted), "note")
    return lines + tail


_RESERVE = 4096  # the section headings and the two "more" lines, with room to spare
Group = Callable[[CheckResult], list[str]]


def _finding_group(check: CheckResult) -> list[str]:
    return ["", f"#### {text(check.id)} ({text(status_label(check))})", ""]


def _note_group(check: CheckResult) -> list[str]:
    return ["", f"#### {text(check.id)}", ""]


def _fit(
    items: list[tuple[CheckResult, str]], room: int, group: Group
) -> tuple[list[tuple[CheckResult, str]], int]:
    """The items that fit in ``room`` bytes, in order, with their check's heading counted
    when it is the check's first; and the room left."""
    kept, headed = [], set()
    for check, line in items:
        cost = summary_bytes([line]) + (0 if id(check) in headed else summary_bytes(group(check)))
        if cost <= room:
            kept.append((check, line))
            headed.add(id(check))
            room -= cost
    return kept, room


def _section(
    title: str,
    report: CertificationReport,
    kept: list[tuple[CheckResult, str]],
    group: Group,
    total: int,
    what: str,
) -> list[str]:
    """``title`` with each check's kept lines under its heading (checks in report order),
    and, when some did not fit, how many more there are and where they all are."""
    if not total:
        return []
    lines = ["", title]
    for check in report.checks:
        mine = [line for owner, line in kept if owner is check]
        if mine:
            lines += [*group(check), *mine]
    if len(kept) < total:
        lines += ["", text(more_text(total - len(kept), what))]
    return lines


def _tail(report: CertificationReport) -> list[str]:
    lines: list[str] = []
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
