"""The report as SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

One run of the tool ``aitbc-plugin``: one rule per finding rule id, one result per
finding (with a location when the finding has a file, relative to ``%SRCROOT%``).  What
is not a finding (the verdict, each check's status) goes in the run's properties, and a
check that errored or was incomplete is also a tool-execution notification, since SARIF
has no other way to say "this could not be analysed".  Validates against the OASIS
sarif-schema-2.1.0.json.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote

from ..model import CertificationReport, CheckResult, CheckStatus, Finding, Severity
from ._common import allowed_incomplete, no_surrogates

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
}

SECURITY_SEVERITY = {  # GitHub's bands: >= 9.0 critical, 7.0 high, 4.0 medium, else low
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}


class SarifWriter:
    suffix = ".sarif"

    def write(self, report: CertificationReport, stream: IO[str]) -> None:
        json.dump(sarif_log(report), stream, indent=2, ensure_ascii=True)
        stream.write("\n")


def sarif_log(report: CertificationReport) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for check in report.checks:
        for finding in check.findings:
            if finding.rule not in rules:
                rules[finding.rule] = _rule(check, finding, len(rules))
            results.append(_result(check, finding, rules[finding.rule]["index"]))
    driver: dict[str, Any] = {"name": "aitbc-plugin"}
    if report.toolkit.get("version"):
        driver["version"] = _text(str(report.toolkit["version"]))
    driver["rules"] = [rule["rule"] for rule in rules.values()]
    name = _text(str(report.plugin.get("name") or "unknown"))
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        # GitHub keys an analysis on "category/": one category per plugin, so several
        # plugins certified in one repository do not replace each other's alerts.
        "automationDetails": {"id": f"aitbc-plugin-certify/{name.replace('/', '_')}/"},
        "invocations": [_invocation(report.checks)],
        "results": results,
        "properties": {
            "certified": report.certified and not report.only,
            "passed": report.passed,
            "only": [_text(check_id) for check_id in report.only],
            "plugin": {"name": name, "version": _text(str(report.plugin.get("version", "")))},
            "checks": {_text(c.id): c.status.value for c in report.checks},
            "reasons": [_text(reason) for reason in report.reasons],
            # What the verdict stands on: how plugin code was contained, under which policy.
            "isolation": _plain(report.isolation),
            "policy": _text(str(report.plugin.get("policy") or "")),
        },
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule(check: CheckResult, finding: Finding, index: int) -> dict[str, Any]:
    """GitHub shows a rule's descriptions atop each alert and its help in a side panel."""
    from ..checks import check_info  # the registry imports every check: only when writing

    info = check_info(check.id)
    title = info.title if info is not None else check.id
    properties: dict[str, Any] = {"tags": [_text(check.id)]}
    if info is not None and info.security:  # ranks the alert among security alerts on GitHub
        properties["tags"] = list(dict.fromkeys([_text(check.id), "security"]))  # unique
        properties["security-severity"] = SECURITY_SEVERITY[finding.severity]
    explanation = info.explanation if info is not None else f"The {check.id} check."
    rule = {
        "id": _text(finding.rule),
        "shortDescription": {"text": _text(f"{title}: {finding.rule}")},
        "fullDescription": {
            "text": _text(f"Rule {finding.rule} of the {check.id} check of aitbc-plugin certify.")
        },
        "help": {
            "text": _text(
                f"{explanation}\n\nReported by `aitbc-plugin certify` ({check.id} check); each "
                "result's message says what to change.  Run `aitbc-plugin certify` in the "
                "plugin project to check again."
            )
        },
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": properties,
    }
    return {"index": index, "rule": rule}


def _result(check: CheckResult, finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": _text(finding.rule),
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": _text(finding.message) or _text(finding.rule) or check.id},
    }
    if finding.file:
        physical: dict[str, Any] = {"artifactLocation": _artifact(finding.file)}
        if finding.line is not None and finding.line >= 1:
            physical["region"] = {"startLine": finding.line}
        result["locations"] = [{"physicalLocation": physical}]
    result["properties"] = {"check": _text(check.id), "severity": finding.severity.value}
    return result


def _artifact(path: str) -> dict[str, Any]:
    """A relative path under ``%SRCROOT%``, percent-encoded as a URI reference."""
    posix = _text(path).replace("\\", "/")
    if posix.startswith("/"):  # not under the project: say exactly where it is
        return {"uri": PurePosixPath(posix).as_uri()}
    while posix.startswith("./"):
        posix = posix[2:]
    return {"uri": quote(posix, safe="/"), "uriBaseId": "%SRCROOT%"}


def _invocation(checks: tuple[CheckResult, ...]) -> dict[str, Any]:
    notes = [
        {
            "level": "warning" if allowed_incomplete(check) else "error",
            "message": {"text": _text(f"{check.id} {check.status.value}: {check.summary}")},
            "descriptor": {"id": _text(check.id)},
        }
        for check in checks
        if check.status in (CheckStatus.ERROR, CheckStatus.INCOMPLETE)
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": all(c.status is not CheckStatus.ERROR for c in checks)
    }
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _text(text: str) -> str:
    """SARIF is read as UTF-8 JSON: no lone surrogates."""
    return no_surrogates(text)


def _plain(value: Any) -> Any:
    """``value`` (report data) with every string fit for SARIF."""
    if isinstance(value, dict):
        return {_text(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _text(value) if isinstance(value, str) else value
