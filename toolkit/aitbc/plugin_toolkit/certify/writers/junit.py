"""The report as JUnit XML: one testsuite, one testcase per check, for CI dashboards.

failed -> ``<failure>``; error and incomplete -> ``<error>`` (a check that could not
decide must never show green); skipped -> ``<skipped/>``.  An incomplete check the user
accepted (``--allow-incomplete-audit``) is shown as skipped: not a pass, not a failure.
Follows the Jenkins xUnit ``junit-10.xsd`` that pytest also writes to.  The document is
ASCII (other characters as character references) and free of characters XML forbids.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import IO

from ..model import CertificationReport, CheckResult, CheckStatus
from ._common import (
    allowed_incomplete,
    isolation_label,
    location,
    no_surrogates,
    plugin_label,
    seconds,
)

CLASSNAME = "aitbc-plugin.certify"
# Characters XML 1.0 cannot hold at all, not even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class JUnitWriter:
    suffix = ".junit.xml"

    def write(self, report: CertificationReport, stream: IO[str]) -> None:
        counts = Counter(_outcome(check) for check in report.checks)
        totals = {
            "tests": str(len(report.checks)),
            "failures": str(counts["failure"]),
            "errors": str(counts["error"]),
            # The run's wall time: the checks ran in parallel, their sum overstates it.
            "time": _time(report.duration_s),
        }
        root = ET.Element("testsuites", {"name": CLASSNAME, **totals})
        name = _xml(f"{CLASSNAME}: {plugin_label(report)}")
        suite = ET.SubElement(
            root, "testsuite", {"name": name, **totals, "skipped": str(counts["skipped"])}
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in _properties(report):
            ET.SubElement(properties, "property", name=_xml(name), value=_xml(value))
        suite.extend(_testcase(check) for check in report.checks)
        if report.reasons:
            out = ET.SubElement(suite, "system-out")
            heading = "Failed because:" if report.only else "Not certified because:"
            out.text = _xml(heading + "\n" + "\n".join(report.reasons) + "\n")
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        stream.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        stream.write(body.encode("ascii", "xmlcharrefreplace").decode("ascii") + "\n")


def _outcome(check: CheckResult) -> str:
    """The JUnit element a check becomes: failure, error, skipped, or passed (none)."""
    if check.status is CheckStatus.FAILED:
        return "failure"
    if check.status is CheckStatus.SKIPPED or allowed_incomplete(check):
        return "skipped"
    if check.status in (CheckStatus.ERROR, CheckStatus.INCOMPLETE):
        return "error"
    return "passed"


def _testcase(check: CheckResult) -> ET.Element:
    case = ET.Element(
        "testcase", classname=CLASSNAME, name=_xml(check.id), time=_time(check.duration_s)
    )
    outcome = _outcome(check)
    body = _findings_text(check)
    if outcome == "passed":
        if body:  # findings below the policy's threshold: shown, but not a failure
            ET.SubElement(case, "system-out").text = _xml(body)
        return case
    summary = check.summary or f"{check.status.value} with {len(check.findings)} finding(s)"
    if allowed_incomplete(check):
        summary = f"incomplete (allowed): {summary}"
    trace = check.details.get("traceback")
    if outcome == "error" and isinstance(trace, str):
        body = f"{body}\n{trace}".strip("\n")
    element = ET.SubElement(case, outcome, type=check.status.value, message=_xml(summary))
    if body:
        element.text = _xml(body)
    return case


def _findings_text(check: CheckResult) -> str:
    lines = []
    for finding in check.findings:
        where = location(finding)
        head = f"{where}: " if where else ""
        lines.append(f"{head}{finding.message} [{finding.severity.value} {finding.rule}]")
    return "\n".join(lines)


def _properties(report: CertificationReport) -> list[tuple[str, str]]:
    pairs = [("certified", str(report.certified and not report.only).lower())]
    if report.only:  # a partial run: its verdict, and which checks it covers
        pairs += [("passed", str(report.passed).lower()), ("only", ",".join(report.only))]
    if report.isolation:  # how plugin code was contained: what the verdict stands on
        pairs.append(("isolation", isolation_label(report)))
        pairs.append(("isolation.level", str(report.isolation.get("level", "unknown"))))
    pairs += [  # plugin.policy among them: the policy in force
        (f"plugin.{key}", str(value))
        for key, value in report.plugin.items()
        if value is not None and not isinstance(value, (dict, list))
    ]
    if report.toolkit.get("version"):
        pairs.append(("toolkit.version", str(report.toolkit["version"])))
    tools = report.toolkit.get("tools") or {}
    if isinstance(tools, dict):
        pairs += [(f"tool.{name}", str(version)) for name, version in tools.items()]
    pairs += [(f"artifact.{a.path}", f"sha256:{a.sha256}") for a in report.artifacts]
    return pairs


def _time(value: float) -> str:
    """Seconds with at most three decimals, as the schema's SUREFIRE_TIME allows."""
    return f"{seconds(value):.3f}"


def _xml(text: str) -> str:
    """``text`` without what XML 1.0 cannot carry (shown as an escape instead)."""
    return _NOT_XML.sub(_escape, no_surrogates(text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
