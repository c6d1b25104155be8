"""Helpers the writers share: labels, locations, and text made safe to emit.

Report text comes from tools and plugins (mypy messages, test output, file names), so it
may hold terminal escapes, control characters or lone surrogates (undecodable file names).
Writers pass every such string through these helpers so a report never injects escapes
into a terminal and never fails to encode.
"""

from __future__ import annotations

import math
import re

from ..model import CertificationReport, CheckResult, CheckStatus, Finding

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
