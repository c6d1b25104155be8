"""GitHub's limits, as a user meets them: a plugin with 26,000 findings gives a SARIF run
code scanning accepts (schema-valid, at most 25,000 results), a job summary under 1 MiB
that still renders (annotations and the upload: test_github_glue_limits.py); each most
severe first, ending with how many more there are and where they all are.  And what code
scanning needs of each result: a location, a fingerprint, rule help that links to a
heading that exists."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.checks import CHECKS
from aitbc.plugin_toolkit.certify.docs import github_anchor
from aitbc.plugin_toolkit.certify.model import (
    CertificationReport,
    CheckResult,
    CheckStatus,
    Finding,
    Severity,
)
from aitbc.plugin_toolkit.certify.writers import WRITERS
from aitbc.plugin_toolkit.ci import limits
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from test_writers import SARIF

PLUGIN = {"name": "noisy-plugin", "version": "1.0.0"}
TOOLKIT = {"version": "0.3.0"}
ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]


def render(fmt: str, report: CertificationReport) -> str:
    stream = io.StringIO()
    WRITERS[fmt].write(report, stream)
    return stream.getvalue()


def noisy(count: int = 26_000) -> CertificationReport:
    """A bandit-like flood: ``count`` findings, mostly low, a few of each higher severity
    spread through the list (so most-severe-first has to reorder), a long message each."""
    findings = []
    for i in range(count):
        severity = (Severity.CRITICAL if i % 5000 == 4999 else Severity.HIGH if i % 1000 == 999
                    else Severity.MEDIUM if i % 100 == 99 else Severity.LOW)  # fmt: skip
        message = f"Possible hardcoded password number {i}: " + "x" * 20
        findings.append(Finding(f"security.B{105 + i % 3}", severity, message,
                                f"pkg/mod{i % 50}.py", 1 + i % 700))  # fmt: skip
    security = CheckResult("security", CheckStatus.FAILED, 3.0, tuple(findings), "bandit: many")
    return CertificationReport(False, PLUGIN, (security,), toolkit=TOOLKIT,
                               reasons=("security failed: bandit: many",))  # fmt: skip


@pytest.fixture(scope="module")
def flood() -> CertificationReport:
    return noisy()


def rank(severity: str) -> int:
    return [s.value for s in ORDER].index(severity)


# -- SARIF ----------------------------------------------------------------------------------
def test_sarif_of_26000_findings_is_one_run_code_scanning_accepts(
    flood: CertificationReport,
) -> None:
    log = json.loads(render("sarif", flood))
    errors = list(SARIF.iter_errors(log))
    assert not errors, errors[0]
    (run,) = log["runs"]
    results = run["results"]
    assert len(results) == limits.SARIF_MAX_RESULTS_PER_RUN
    assert len(run["tool"]["driver"]["rules"]) <= limits.SARIF_MAX_RULES_PER_RUN
    *kept, last = results
    severities = [r["properties"]["severity"] for r in kept]
    assert [rank(s) for s in severities] == sorted(rank(s) for s in severities)
    # Every finding above low survived; only low ones gave way.
    above_low = sum(1 for f in flood.checks[0].findings if f.severity is not Severity.LOW)
    assert sum(1 for s in severities if s != "low") == above_low
    omitted = 26_000 - (limits.SARIF_MAX_RESULTS_PER_RUN - 1)
    assert last["ruleId"] == "aitbc-plugin.truncated"
    assert last["message"]["text"] == (
        f"{omitted:,} more findings not shown here (GitHub's limit); the full JSON report, "
        "certification.json (certify --format json; in the certify workflow, the reports "
        "artifact) has them all."
    )
    assert last["locations"]  # shown in code scanning like any other result
    assert run["properties"]["results"] == {"total": 26_000, "omitted": omitted}
    assert any(n["descriptor"]["id"] == "aitbc-plugin.truncated"
               for n in run["invocations"][0]["toolExecutionNotifications"])  # fmt: skip


def test_sarif_at_the_limit_is_not_truncated() -> None:
    log = json.loads(render("sarif", noisy(limits.SARIF_MAX_RESULTS_PER_RUN)))
    results = log["runs"][0]["results"]
    assert len(results) == limits.SARIF_MAX_RESULTS_PER_RUN
    assert all(r["ruleId"] != "aitbc-plugin.truncated" for r in results)


def readme_anchors() -> set[str]:
    """Each heading of checks/README.md as GitHub anchors it, parsed by markdown-it."""
    tokens = MarkdownIt("commonmark").parse((REPO / "checks" / "README.md").read_text())
    return {github_anchor(tokens[i + 1].content) for i, token in enumerate(tokens)
            if token.type == "heading_open"}  # fmt: skip


def test_github_anchor_follows_githubs_slugs() -> None:
    assert github_anchor("security") == "security"
    assert github_anchor("What runs: `interface.runtime-signature`") == (
        "what-runs-interfaceruntime-signature"
    )
    assert github_anchor("`# nosec` needs a reason") == "-nosec-needs-a-reason"


def test_every_rule_links_to_its_checks_section_at_the_toolkits_tag() -> None:
    anchors = readme_anchors()
    checks = tuple(
        CheckResult(check.id, CheckStatus.FAILED, 1.0,
                    (Finding(f"{check.id}.r", Severity.MEDIUM, "m", "plugin.py", 2),), "s")
        for check in CHECKS
    )  # fmt: skip
    report = CertificationReport(False, PLUGIN, checks, toolkit=TOOLKIT)
    rules = json.loads(render("sarif", report))["runs"][0]["tool"]["driver"]["rules"]
    assert len(rules) == len(CHECKS) >= 8
    for rule in rules:
        page, _, anchor = rule["helpUri"].partition("#")
        assert page == "https://github.com/aitbc/aitbc-plugins/blob/v0.3.0/checks/README.md"
        assert anchor in anchors, f"{rule['id']}: no heading #{anchor} in checks/README.md"
        assert rule["helpUri"] in rule["help"]["markdown"]
        html = MarkdownIt("commonmark").render(rule["help"]["markdown"])
        assert f'<a href="{rule["helpUri"]}">' in html


def test_a_tool_failure_is_no_security_alert() -> None:
    crashed = CheckResult("security", CheckStatus.ERROR, 1.0,
                          (Finding("security.error", Severity.HIGH, "bandit crashed"),),
                          "bandit crashed")  # fmt: skip
    found = CheckResult("audit", CheckStatus.FAILED, 1.0,
                        (Finding("audit.PYSEC-1", Severity.HIGH, "vulnerable", "requirements.txt",
                                 3),), "1 vulnerability")  # fmt: skip
    run = json.loads(render("sarif", CertificationReport(False, PLUGIN, (crashed, found))))
    rules = {rule["id"]: rule for rule in run["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["security.error"]["properties"] == {"tags": ["security"]}
    assert rules["audit.PYSEC-1"]["properties"]["security-severity"] == "8.0"
    assert "security" in rules["audit.PYSEC-1"]["properties"]["tags"]
    (error,) = [r for r in run["runs"][0]["results"] if r["ruleId"] == "security.error"]
    assert error["level"] == "error" and error["locations"]


def fingerprints(report: CertificationReport) -> list[str]:
    results = json.loads(render("sarif", report))["runs"][0]["results"]
    return [r["partialFingerprints"]["aitbcFindingHash/v1"] for r in results]


_finding = st.builds(
    Finding,
    st.sampled_from(["security.B105", "audit.PYSEC-1", "interface.abstract"]),
    st.sampled_from(Severity),
    st.text(min_size=1, max_size=20),
    st.none() | st.sampled_from(["plugin.py", "pkg/a.py"]),
    st.none() | st.integers(1, 500),
)


@settings(max_examples=50)
@given(st.lists(_finding, max_size=8), st.integers(1, 40))
def test_fingerprints_are_stable_distinct_and_survive_moved_lines(
    findings: list[Finding], shift: int
) -> None:
    def report(items: list[Finding]) -> CertificationReport:
        check = CheckResult("security", CheckStatus.FAILED, 1.0, tuple(items), "s")
        return CertificationReport(False, PLUGIN, (check,))

    first = fingerprints(report(findings))
    assert fingerprints(report(findings)) == first  # two runs, the same fingerprints
    assert len(set(first)) == len(first)  # even identical findings are told apart
    moved = [Finding(f.rule, f.severity, f.message, f.file, f.line and f.line + shift)
             for f in findings]  # fmt: skip
    assert sorted(fingerprints(report(moved))) == sorted(first)


def test_fingerprints_tell_different_findings_apart() -> None:
    base = Finding("security.B105", Severity.LOW, "hardcoded password 'x'", "plugin.py", 4)
    others = [
        Finding("security.B106", Severity.LOW, base.message, "plugin.py", 4),
        Finding(base.rule, Severity.LOW, "hardcoded password 'y'", "plugin.py", 4),
        Finding(base.rule, Severity.LOW, base.message, "other.py", 4),
    ]
    check = CheckResult("security", CheckStatus.FAILED, 1.0, (base, *others), "s")
    prints = fingerprints(CertificationReport(False, PLUGIN, (check,)))
    assert len(set(prints)) == 4


def test_every_result_has_a_location(flood: CertificationReport) -> None:
    results: list[dict[str, Any]] = json.loads(render("sarif", flood))["runs"][0]["results"]
    for result in results:
        (location,) = result["locations"]
        assert location["physicalLocation"]["region"]["startLine"] >= 1


@given(st.integers(0, 60), st.integers(1, 30))
def test_capped_keeps_the_head_and_a_slot_for_the_rest(count: int, limit: int) -> None:
    shown, omitted = limits.capped(list(range(count)), limit)
    assert list(shown) == list(range(len(shown)))  # the head, in order
    assert len(shown) + omitted == count
    assert len(shown) + (1 if omitted else 0) <= limit
    assert omitted == 0 or omitted >= 2  # one that fits is never replaced by a "1 more"


# -- the job summary (Markdown) -------------------------------------------------------------
def items_and_paragraphs(source: str) -> tuple[list[str], list[str]]:
    """The list items and paragraphs a reader of the rendered summary sees (inline text)."""
    tokens = MarkdownIt("commonmark").enable(["table"]).parse(source)
    items: list[str] = []
    paragraphs: list[str] = []
    depth = 0
    for i, token in enumerate(tokens):
        depth += token.type == "list_item_open"
        depth -= token.type == "list_item_close"
        if token.type == "inline" and tokens[i - 1].type == "paragraph_open":
            (items if depth else paragraphs).append(token.content)
    return items, paragraphs


@pytest.mark.parametrize("wide", [False, True], ids=["ascii", "multibyte"])
def test_summary_of_26000_findings_fits_githubs_limit_and_renders(wide: bool) -> None:
    report = noisy()
    if wide:  # three bytes a character: the limit is in bytes, not characters
        check = report.checks[0]
        findings = tuple(Finding(f.rule, f.severity, f.message + " 日本語" * 10, f.file, f.line)
                         for f in check.findings)  # fmt: skip
        report = CertificationReport(False, PLUGIN, (CheckResult(
            check.id, check.status, 1.0, findings, check.summary),), toolkit=TOOLKIT)  # fmt: skip
    source = render("markdown", report)
    assert len(source.encode("utf-8")) <= limits.STEP_SUMMARY_MAX_BYTES
    assert len(source.encode("utf-8")) > limits.STEP_SUMMARY_MAX_BYTES * 0.9  # not wasteful
    items, paragraphs = items_and_paragraphs(source)
    shown = [item for item in items if "Possible hardcoded password" in item]
    severities = [item.rsplit("(", 1)[1].split(",")[0] for item in shown]
    assert [rank(s) for s in severities] == sorted(rank(s) for s in severities)
    above_low = sum(1 for f in report.checks[0].findings if f.severity is not Severity.LOW)
    assert sum(1 for s in severities if s != "low") == above_low
    more = [p for p in paragraphs if "more findings not shown" in p]
    assert more == [f"{26_000 - len(shown):,} more findings not shown here (GitHub's limit); the "
                    "full JSON report, certification.json (certify --format json; in the "
                    "certify workflow, the reports artifact) has them all."]  # fmt: skip
    assert source.rstrip().endswith("<sub>Checked by aitbc-plugin 0.3.0</sub>")  # all the rest


def test_summary_caps_notes_too() -> None:
    below = [{"rule": "B101", "severity": "low", "message": f"assert used {i}", "file": "p.py",
              "line": i} for i in range(1, 26_001)]  # fmt: skip
    check = CheckResult("security", CheckStatus.PASSED, 1.0, (), "ok",
                        details={"below_threshold": below})  # fmt: skip
    source = render("markdown", CertificationReport(True, PLUGIN, (check,), toolkit=TOOLKIT))
    assert len(source.encode("utf-8")) <= limits.STEP_SUMMARY_MAX_BYTES
    items, paragraphs = items_and_paragraphs(source)
    noted = [item for item in items if "assert used" in item]
    assert 1000 < len(noted) < 26_000
    assert any(p.startswith(f"{26_000 - len(noted):,} more notes not shown") for p in paragraphs)


def test_a_small_summary_is_whole() -> None:
    source = render("markdown", noisy(300))
    assert "not shown here" not in source
    assert source.count("Possible hardcoded password") == 300
