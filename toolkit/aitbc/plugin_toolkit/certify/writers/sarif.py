"""The report as SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

One run of the tool ``aitbc-plugin``: one rule per finding rule id, one result per
finding, most severe first.  Every result has a location (code scanning shows none
without one): the finding's file (relative to ``%SRCROOT%``) with a region, or, for a
finding that names no file, the project file it concerns.  What is not a finding (the
verdict, each check's status) goes in the run's properties, and a check that errored or
was incomplete is also a tool-execution notification, since SARIF has no other way to say
"this could not be analysed".  Over GitHub's results-per-run limit the least severe
results give way to one that says how many more there are and where they all are.

The run has no ``automationDetails.id``: the upload's ``category`` says which analysis
this is (codeql-action ignores its category input when the file sets one).  Validates
against the OASIS sarif-schema-2.1.0.json.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote

from ...ci.limits import SARIF_MAX_RESULTS_PER_RUN, capped, more_text
from ..docs import help_uri
from ..model import CertificationReport, CheckResult, CheckStatus, Finding, Severity
from ._common import allowed_incomplete, by_severity, no_surrogates

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
# A finding that names no file is shown at the spec file it concerns (both files the
# structure check requires), line 1: the requirements for the audit, else the plugin.
_PLACE = {"audit": "requirements.txt", "structure": "setup.py", "build": "setup.py"}
_DEFAULT_PLACE = "plugin.py"
TRUNCATED_RULE = "aitbc-plugin.truncated"
FINGERPRINT = "aitbcFindingHash/v1"
# Line numbers inside a message ("plugin.py:12", "line 12") would move its fingerprint
# whenever code above it moves.
_LINE_NUMBERS = re.compile(r"(?::\d+)+|\bline \d+", re.IGNORECASE)


class SarifWriter:
    suffix = ".sarif"

    def write(self, report: CertificationReport, stream: IO[str]) -> None:
        json.dump(sarif_log(report), stream, indent=2, ensure_ascii=True)
        stream.write("\n")


def sarif_log(report: CertificationReport) -> dict[str, Any]:
    version = str(report.toolkit.get("version") or "") or None
    located = fingerprinted(report)
    shown, omitted = capped(located, SARIF_MAX_RESULTS_PER_RUN)
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for check, finding, fingerprint in shown:
        if finding.rule not in rules:
            rules[finding.rule] = _rule(check, finding, len(rules), version)
        results.append(_result(check, finding, rules[finding.rule]["index"], fingerprint))
    if omitted:
        rules[TRUNCATED_RULE] = _truncated_rule(len(rules), version)
        results.append(_truncated_result(omitted, rules[TRUNCATED_RULE]["index"]))
    driver: dict[str, Any] = {"name": "aitbc-plugin", "informationUri": help_uri(None, version)}
    if version:
        driver["version"] = _text(version)
    driver["rules"] = [rule["rule"] for rule in rules.values()]
    name = _text(str(report.plugin.get("name") or "unknown"))
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "invocations": [_invocation(report.checks, omitted)],
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
            "results": {"total": len(located), "omitted": omitted},
        },
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def fingerprinted(report: CertificationReport) -> list[tuple[CheckResult, Finding, str]]:
    """Every finding with its fingerprint, most severe first (report order within a
    severity).  The fingerprint hashes the rule, the file and the message without line
    numbers, so it survives code moving; identical findings are told apart by their
    occurrence, as GitHub's own ``primaryLocationLineHash`` does."""
    seen: Counter[str] = Counter()
    found = []
    for check in report.checks:
        for finding in check.findings:
            message = _LINE_NUMBERS.sub("", " ".join(finding.message.split()))
            key = "\0".join((finding.rule, _place(check, finding), message))
            digest = hashlib.sha256(_text(key).encode("utf-8")).hexdigest()[:32]
            seen[digest] += 1
            found.append((check, finding, f"{digest}:{seen[digest]}"))
    return by_severity(found, lambda item: item[1].severity)


def _place(check: CheckResult, finding: Finding) -> str:
    return finding.file or _PLACE.get(check.id, _DEFAULT_PLACE)


def _rule(check: CheckResult, finding: Finding, index: int, version: str | None) -> dict[str, Any]:
    """GitHub shows a rule's descriptions atop each alert and its help in a side panel."""
    from ..checks import check_info  # the registry imports every check: only when writing

    info = check_info(check.id)
    title = info.title if info is not None else check.id
    properties: dict[str, Any] = {"tags": [_text(check.id)]}
    # A check that could not run found no vulnerability: its error is no security alert.
    if info is not None and info.security and check.status is not CheckStatus.ERROR:
        properties["tags"] = list(dict.fromkeys([_text(check.id), "security"]))  # unique
        properties["security-severity"] = SECURITY_SEVERITY[finding.severity]
    explanation = info.explanation if info is not None else f"The {check.id} check."
    uri = help_uri(check.id if info is not None else None, version)
    advice = (
        f"Reported by `aitbc-plugin certify` ({check.id} check); each result's message says "
        "what to change.  Run `aitbc-plugin certify` in the plugin project to check again."
    )
    rule = {
        "id": _text(finding.rule),
        "shortDescription": {"text": _text(f"{title}: {finding.rule}")},
        "fullDescription": {
            "text": _text(f"Rule {finding.rule} of the {check.id} check of aitbc-plugin certify.")
        },
        "helpUri": _text(uri),
        "help": {
            "text": _text(f"{explanation}\n\n{advice}\n\nDocumentation: {uri}"),
            "markdown": _text(
                f"{explanation}\n\n{advice}\n\n[checks/README.md: {check.id}]({uri})"
            ),
        },
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": properties,
    }
    return {"index": index, "rule": rule}


def _truncated_rule(index: int, version: str | None) -> dict[str, Any]:
    uri = help_uri(None, version)
    about = "Results beyond GitHub's limit of results per SARIF run, counted."
    rule = {
        "id": TRUNCATED_RULE,
        "shortDescription": {"text": "More findings than code scanning accepts"},
        "helpUri": uri,
        "help": {"text": about, "markdown": f"{about} See [the checks]({uri})."},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["aitbc-plugin"]},
    }
    return {"index": index, "rule": rule}


def _result(
    check: CheckResult, finding: Finding, rule_index: int, fingerprint: str
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": _text(finding.rule),
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": _text(finding.message) or _text(finding.rule) or check.id},
        "locations": [_location(_place(check, finding), finding.line)],
        "partialFingerprints": {FINGERPRINT: fingerprint},
        "properties": {"check": _text(check.id), "severity": finding.severity.value},
    }
    return result


def _truncated_result(omitted: int, rule_index: int) -> dict[str, Any]:
    return {
        "ruleId": TRUNCATED_RULE,
        "ruleIndex": rule_index,
        "level": "warning",
        "message": {"text": more_text(omitted, "finding")},
        "locations": [_location(_DEFAULT_PLACE, None)],
        "partialFingerprints": {FINGERPRINT: TRUNCATED_RULE},
    }


def _location(path: str, line: int | None) -> dict[str, Any]:
    """A file and a region: the finding's line, or line 1 for the file as a whole."""
    region = {"startLine": line if line is not None and line >= 1 else 1}
    return {"physicalLocation": {"artifactLocation": _artifact(path), "region": region}}


def _artifact(path: str) -> dict[str, Any]:
    """A relative path under ``%SRCROOT%``, percent-encoded as a URI reference."""
    posix = _text(path).replace("\\", "/")
    if posix.startswith("/"):  # not under the project: say exactly where it is
        return {"uri": PurePosixPath(posix).as_uri()}
    while posix.startswith("./"):
        posix = posix[2:]
    return {"uri": quote(posix, safe="/"), "uriBaseId": "%SRCROOT%"}


def _invocation(checks: tuple[CheckResult, ...], omitted: int) -> dict[str, Any]:
    notes = [
        {
            "level": "warning" if allowed_incomplete(check) else "error",
            "message": {"text": _text(f"{check.id} {check.status.value}: {check.summary}")},
            "descriptor": {"id": _text(check.id)},
        }
        for check in checks
        if check.status in (CheckStatus.ERROR, CheckStatus.INCOMPLETE)
    ]
    if omitted:
        notes.append({"level": "warning", "message": {"text": more_text(omitted, "finding")},
                      "descriptor": {"id": TRUNCATED_RULE}})  # fmt: skip
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
