"""Helpers the writers share: labels, locations, and text made safe to emit.

Report text comes from tools and plugins (mypy messages, test output, file names), so it
may hold terminal escapes, control characters or lone surrogates (undecodable file names).
Writers pass every such string through these helpers so a report never injects escapes
into a terminal and never fails to encode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..model import CertificationReport, CheckResult, CheckStatus, Finding, Severity

T = TypeVar("T")
# Most severe first: capped outputs keep the head of this order.
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls except tab and newline: ESC starts ANSI sequences, CR rewrites lines.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def no_surrogates(text: str) -> str:
    """``text`` with lone surrogates replaced, so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def printable(text: str) -> str:
    """``text`` fit for a log: control characters shown as ``\\xNN``; tabs, newlines kept."""
    text = no_surrogates(text).replace("\r\n", "\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """``text`` printable and on one line (runs of whitespace become one space)."""
    return " ".join(printable(text).split())


def location(finding: Finding) -> str | None:
    """``file:line``, ``file``, or None when the finding has no place."""
    if not finding.file:
        return None
    if finding.line is not None and finding.line >= 1:
        return f"{finding.file}:{finding.line}"
    return finding.file


def by_severity(items: Iterable[T], severity: Callable[[T], Severity]) -> list[T]:
    """``items`` most severe first; their order kept within a severity (a stable sort)."""
    return sorted(items, key=lambda item: SEVERITY_RANK[severity(item)])


def seconds(value: float) -> float:
    """A duration fit to print: finite and not negative."""
    return value if math.isfinite(value) and value > 0 else 0.0


def allowed_incomplete(check: CheckResult) -> bool:
    """An incomplete check the user accepted (``--allow-incomplete-audit``)."""
    return check.status is CheckStatus.INCOMPLETE and check.allowed


def status_label(check: CheckResult) -> str:
    """The status as a word; one that is not a pass stands out without colour."""
    if check.status in (CheckStatus.PASSED, CheckStatus.SKIPPED):
        return str(check.status.value)
    if allowed_incomplete(check):
        return "incomplete (allowed)"
    return str(check.status.value).upper()


def plugin_label(report: CertificationReport) -> str:
    """``name version``, or what is known when the build never named the plugin."""
    name = report.plugin.get("name") or report.plugin.get("project") or "unknown plugin"
    version = report.plugin.get("version")
    return one_line(f"{name} {version}" if version else str(name))


def toolkit_label(report: CertificationReport) -> str:
    """``aitbc-plugin 1.2.3 (mypy 1.13, bandit 1.8)``."""
    version = report.toolkit.get("version")
    tools = report.toolkit.get("tools") or {}
    text = f"aitbc-plugin {version}" if version else "aitbc-plugin"
    if isinstance(tools, dict) and tools:
        text += " (" + ", ".join(f"{name} {ver}" for name, ver in tools.items()) + ")"
    return one_line(text)


def shown_findings(check: CheckResult) -> bool:
    """Whether a person needs this check's findings spelled out (it did not pass)."""
    return check.status is not CheckStatus.PASSED and bool(check.findings)


def isolation_label(report: CertificationReport) -> str:
    """``partial (lifecycle in bubblewrap 0.8.0; not yet in the jail: ...)``."""
    found = report.isolation
    contained = found.get("contained") or []
    parts = [f"{', '.join(map(str, contained))} in {found.get('mechanism')}"] if contained else []
    parts += [str(item) for item in found.get("missing") or []]
    level = str(found.get("level", "unknown"))
    return one_line(f"{level} ({'; '.join(parts)})" if parts else level)


def verdict(report: CertificationReport) -> str:
    """``CERTIFIED``, ``NOT CERTIFIED``, or for a partial run (``--only``), which is
    never a certification, ``PASSED (only: a, b)`` or ``FAILED (only: a, b)``."""
    if report.only:
        word = "PASSED" if report.passed else "FAILED"
        return one_line(f"{word} (only: {', '.join(report.only)})")
    return "CERTIFIED" if report.certified else "NOT CERTIFIED"


PARTIAL = "This is not a certification: only the named checks ran (certify without --only)."


def policy_label(report: CertificationReport) -> str | None:
    """Where the policy in force came from (its file), when the report says."""
    source = report.plugin.get("policy")
    return one_line(str(source)) if source else None


def notes(check: CheckResult) -> list[str]:
    """What a check noted without failing for it, one line each: its ``details["notes"]``
    (a list of strings), findings below the policy's threshold and ones suppressed with
    a reason (``details["below_threshold"]``, ``["suppressed"]``: finding-like records)
    and what the plugin did that it declares (the behaviour record's ``notes``)."""
    details = check.details
    said = [one_line(n) for n in _list(details.get("notes")) if isinstance(n, str)]
    for key, why in (("below_threshold", "below the policy's threshold"),
                     ("warnings", "a warning by the policy"),
                     ("suppressed", "suppressed")):  # fmt: skip
        said += [_record_note(r, why) for r in _list(details.get(key)) if isinstance(r, dict)]
    behaviour = details.get("behaviour")
    if isinstance(behaviour, dict):
        phase = behaviour.get("phase")
        for note in _list(behaviour.get("notes")):
            said.append(one_line(f"{phase}: {note}" if phase else str(note)))
    return said


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _record_note(record: dict[str, Any], why: str) -> str:
    """``file:line: message [rule, severity s, confidence c] why: reason``."""
    file, line = record.get("file"), record.get("line")
    where = f"{file}:{line}" if file and isinstance(line, int) and line >= 1 else file or ""
    levels = [f"{key} {record[key]}" for key in ("severity", "confidence") if record.get(key)]
    tag = ", ".join([str(record.get("rule") or "?"), *levels])
    text = f"{where}: " if where else ""
    text += f"{record.get('message') or ''} [{tag}] {why}"
    extra = record.get("reason") or record.get("note")
    return one_line(f"{text}: {extra}" if extra else text)
