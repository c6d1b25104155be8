"""The report for people in a terminal or a CI log: plain text, no colour codes.

Verdict first, then one line per check, then what a person must act on: the findings of
every check that did not pass (and the notes of every check), the artifacts, the reasons,
and what the verdict stands on: the toolkit, the isolation and the policy.

``compact`` leaves out the one-line-per-check table: the CLI asks for it only when its
live progress has just shown every check's result on the same terminal.
"""

from __future__ import annotations

from typing import IO

from ..model import CertificationReport, CheckResult, Finding
from ._common import (
    PARTIAL,
    isolation_label,
    location,
    notes,
    one_line,
    plugin_label,
    policy_label,
    printable,
    seconds,
    shown_findings,
    status_label,
    toolkit_label,
    verdict,
)


class TextWriter:
    suffix = ".txt"

    def write(self, report: CertificationReport, stream: IO[str], *, compact: bool = False) -> None:
        stream.write("\n".join(render(report, compact=compact)) + "\n")


def render(report: CertificationReport, *, compact: bool = False) -> list[str]:
    lines = [f"{verdict(report)}: {plugin_label(report)}"]
    lines += [PARTIAL] if report.only else []
    if not compact:
        lines += ["", *_check_lines(report.checks)]
    for check in report.checks:
        noted = notes(check)
        if shown_findings(check) or noted:
            lines += ["", f"{one_line(check.id)}: {status_label(check)}"]
        if shown_findings(check):
            lines += [line for finding in check.findings for line in _finding_lines(finding)]
        lines += [f"    note: {note}" for note in noted]
    if report.artifacts:
        lines += ["", "Artifacts:"]
        lines += [
            f"  {one_line(a.path)}  sha256:{one_line(a.sha256)}  {a.size:,} bytes"
            for a in report.artifacts
        ]
    if report.reasons:
        lines += ["", "Failed because:" if report.only else "Not certified because:"]
        lines += [f"  - {one_line(reason)}" for reason in report.reasons]
    lines += ["", f"Checked by {toolkit_label(report)}"]
    if report.isolation:
        lines.append(f"Isolation: {isolation_label(report)}")
    if policy_label(report):
        lines.append(f"Policy: {policy_label(report)}")
    if report.toolkit.get("cache"):
        lines.append(f"Cache: {one_line(str(report.toolkit['cache']))}")
    return lines


def _check_lines(checks: tuple[CheckResult, ...]) -> list[str]:
    if not checks:
        return ["  (no checks ran)"]
    ids = [one_line(c.id) for c in checks]
    statuses = [status_label(c) for c in checks]
    id_width = max(map(len, ids))
    status_width = max(map(len, statuses))
    lines = []
    for check, check_id, status in zip(checks, ids, statuses, strict=True):
        took = "cached" if check.cached else f"{seconds(check.duration_s):.2f}s"
        line = f"  {check_id:<{id_width}}  {status:<{status_width}}  {took:>7}"
        summary = one_line(check.summary)
        lines.append(f"{line}  {summary}" if summary else line)
    return lines


def _finding_lines(finding: Finding) -> list[str]:
    """``  file:line: message [severity rule]``; later lines of the message indented."""
    first, *rest = printable(finding.message).splitlines() or [""]
    where = location(finding)
    head = f"{one_line(where)}: {first}" if where else first
    tag = f"[{finding.severity.value} {one_line(finding.rule)}]"
    return [f"    {head} {tag}".rstrip(), *(f"        {line}".rstrip() for line in rest)]
