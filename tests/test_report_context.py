"""What a report says beside the findings, in every format: a shared root cause named once,
the verdict of a partial run (`--only`, never a certification), each check's notes, and
the isolation and policy the verdict stands on.  Reports are built here, as the runner
builds them (the runner's own `name_once` for the root cause)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import Any

from aitbc.plugin_toolkit.certify.causes import Cause, brief, name_once
from aitbc.plugin_toolkit.certify.model import (
    CertificationReport,
    CheckResult,
    CheckStatus,
    Finding,
    Severity,
)
from aitbc.plugin_toolkit.certify.writers import WRITERS
from aitbc.plugin_toolkit.certify.writers.markdown import text as markdown_text

PLUGIN = {"name": "my-plugin", "version": "0.1.0", "policy": "/etc/aitbc/strict.toml"}
ISOLATION = {"level": "partial", "mechanism": "bubblewrap 0.8.0", "contained": ["lifecycle"],
             "missing": ["no strace: nothing watched from outside"]}  # fmt: skip
CAUSE = "the project does not build: " + " | ".join(f"line {n} of the build" for n in range(9))
WHY = f"cannot run without a plugin wheel: {CAUSE}"


def render(fmt: str, report: CertificationReport) -> str:
    stream = io.StringIO()
    WRITERS[fmt].write(report, stream)
    return stream.getvalue()


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def junit_properties(report: CertificationReport) -> dict[str, str]:
    root = ET.fromstring(render("junit", report))
    return {str(p.get("name")): str(p.get("value")) for p in root.iter("property")}


def sarif_run(report: CertificationReport) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(render("sarif", report))["runs"][0]
    return run


# -- one root cause, once -------------------------------------------------------------------
def blocked_report() -> CertificationReport:
    """No wheel: the build's error stops four checks; structure quotes it as its finding."""
    cause = Cause(owner="build", text=CAUSE)
    failed = [CheckResult(i, CheckStatus.ERROR, 0.1, (Finding(f"{i}.error", Severity.HIGH, WHY),),
                          WHY) for i in ("metadata", "security", "tests", "build")]  # fmt: skip
    quoted = Finding("structure.build", Severity.HIGH, CAUSE)
    structure = CheckResult("structure", CheckStatus.FAILED, 0.1, (quoted,), "the build fails")
    results = name_once([(structure, None), *((r, cause) for r in failed)])
    reasons = tuple(f"{r.id} {r.status.value}: {r.summary}" for r in results[:1]) + tuple(
        f"{r.id} error: blocked by build" for r in results[1:4]
    ) + (f"build error: {results[4].summary}",)  # fmt: skip
    return CertificationReport(False, PLUGIN, tuple(results), reasons=reasons, isolation=ISOLATION)


def test_a_root_cause_is_named_once_in_every_format() -> None:
    report = blocked_report()
    junit = [v for n in ET.fromstring(render("junit", report)).iter()
             for v in [n.text or "", *n.attrib.values()]]  # fmt: skip
    seen = {
        "text": render("text", report).count(CAUSE),
        "markdown": render("markdown", report).count(markdown_text(CAUSE)),
        "json": sum(s.count(CAUSE) for s in strings(json.loads(render("json", report)))),
        "junit": sum(v.count(CAUSE) for v in junit),
        "sarif": sum(s.count(CAUSE) for s in strings(sarif_run(report))),
    }  # fmt: skip
    assert seen == dict.fromkeys(seen, 1), seen
    lines = render("text", report).splitlines()
    for check_id in ("metadata", "security", "tests"):
        (row,) = [line for line in lines if line.split()[:1] == [check_id]]
        assert row.split()[1] == "ERROR" and row.endswith(f"blocked by build: {brief(CAUSE)}")
        assert f"  - {check_id} error: blocked by build" in lines
    assert f"    {WHY} [high build.error]" in lines
    assert f"    {brief(CAUSE)} (in full under build) [high structure.build]" in lines
    # SARIF: a result for structure's pointer and build's error; none for a blocked check.
    run = sarif_run(report)
    assert [r["properties"]["check"] for r in run["results"]] == ["structure", "build"]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"] for n in notes][:1] == [
        f"metadata error: blocked by build: {brief(CAUSE)}"
    ]


# -- a partial run ------------------------------------------------------------------------
def partial(*, failing: bool = False, certified: bool = False) -> CertificationReport:
    status = CheckStatus.FAILED if failing else CheckStatus.PASSED
    checks = (
        CheckResult("security", status, 0.3, (), "bandit: 1 issue" if failing else "no issue"),
        CheckResult("tests", CheckStatus.SKIPPED, summary="not selected (--only)"),
    )
    reasons = ("security failed: bandit: 1 issue",) if failing else ()
    return CertificationReport(certified, PLUGIN, checks, reasons=reasons, only=("security",))


def test_a_partial_run_passes_or_fails_but_never_certifies() -> None:
    out = render("text", partial())
    assert out.startswith(
        "PASSED (only: security): my-plugin 0.1.0\n"
        "This is not a certification: only the named checks ran (certify without --only).\n"
    )
    assert "CERTIFIED" not in out
    # Even a report that claims it (an inconsistent one) is not shown as certified.
    assert render("text", partial(certified=True)).startswith("PASSED (only: security)")
    data = json.loads(render("json", partial(certified=True)))
    assert (data["certified"], data["passed"], data["only"]) == (False, True, ["security"])
    assert data["registry_entry"] is None
    failed = render("text", partial(failing=True))
    assert failed.startswith("FAILED (only: security): my-plugin 0.1.0\n")
    assert "Failed because:\n  - security failed: bandit: 1 issue\n" in failed
    markdown = render("markdown", partial())
    assert markdown.startswith("## Passed (only: security): my-plugin 0.1.0\n")
    assert "This is not a certification" in markdown
    props = junit_properties(partial())
    assert (props["certified"], props["passed"], props["only"]) == ("false", "true", "security")
    sarif = sarif_run(partial(failing=True))["properties"]
    assert (sarif["certified"], sarif["passed"], sarif["only"]) == (False, False, ["security"])


# -- notes --------------------------------------------------------------------------------
NOTED = (
    CheckResult("security", CheckStatus.PASSED, 0.5, (), "no issue at the threshold", details={
        "below_threshold": [{"rule": "security.B404", "severity": "low", "confidence": "high",
                             "message": "Consider the subprocess module.", "file": "plugin.py",
                             "line": 3}],
        "suppressed": [{"rule": "security.B602", "severity": "high", "confidence": "high",
                        "message": "shell=True", "file": "plugin.py", "line": 9,
                        "reason": "the command is fixed"}],
    }),
    CheckResult("tests", CheckStatus.PASSED, 1.0, (), "3 passed", details={
        "notes": ["2 tests were slow"],
        "behaviour": {"phase": "tests", "observed": True,
                      "notes": ["tried to connect to 127.0.0.1:8545 (declared)"]},
    }),
)  # fmt: skip
NOTES = {
    "security": [
        "plugin.py:3: Consider the subprocess module. [security.B404, severity low, "
        "confidence high] below the policy's threshold",
        "plugin.py:9: shell=True [security.B602, severity high, confidence high] suppressed: "
        "the command is fixed",
    ],
    "tests": ["2 tests were slow", "tests: tried to connect to 127.0.0.1:8545 (declared)"],
}


def test_notes_of_every_check_are_listed_in_text_and_markdown() -> None:
    report = CertificationReport(True, PLUGIN, NOTED)
    lines = render("text", report).splitlines()
    for check_id, notes in NOTES.items():
        at = lines.index(f"{check_id}: passed")
        assert lines[at + 1 : at + 1 + len(notes)] == [f"    note: {note}" for note in notes]
    markdown = render("markdown", report)
    assert "\n### Notes\n\n#### security\n\n" in markdown
    for note in (n for notes in NOTES.values() for n in notes):
        assert f"- {markdown_text(note)}\n" in markdown


# -- isolation and policy -----------------------------------------------------------------
def test_the_isolation_and_the_policy_are_in_every_format() -> None:
    report = CertificationReport(True, PLUGIN, NOTED[:1], isolation=ISOLATION)
    label = "partial (lifecycle in bubblewrap 0.8.0; no strace: nothing watched from outside)"
    lines = render("text", report).splitlines()
    assert lines[-2:] == [f"Isolation: {label}", "Policy: /etc/aitbc/strict.toml"]
    data = json.loads(render("json", report))
    assert data["isolation"] == ISOLATION and data["plugin"]["policy"] == PLUGIN["policy"]
    props = junit_properties(report)
    assert (props["isolation"], props["isolation.level"]) == (label, "partial")
    assert props["plugin.policy"] == PLUGIN["policy"]
    sarif = sarif_run(report)["properties"]
    assert sarif["isolation"] == ISOLATION and sarif["policy"] == PLUGIN["policy"]
    markdown = render("markdown", report)
    assert f"{markdown_text(f'Isolation: {label}')}<br>" in markdown
    assert markdown_text("Policy: /etc/aitbc/strict.toml") in markdown
