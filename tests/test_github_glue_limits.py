"""GitHub's limits on what the workflow glue prints and uploads: annotations within a
step's limit (most severe first, the last saying how many more and where the JSON report
is), and a SARIF file over code scanning's hard limits told apart before the upload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.model import (
    CertificationReport,
    CheckResult,
    CheckStatus,
    Finding,
    Severity,
)
from aitbc.plugin_toolkit.ci import limits
from hypothesis import given, settings
from hypothesis import strategies as st
from test_github_limits import PLUGIN, TOOLKIT, noisy, render


@pytest.fixture(scope="module")
def flood() -> CertificationReport:
    return noisy()


# -- annotations ----------------------------------------------------------------------------
def annotate(report: CertificationReport, tmp_path: Path, *extra: str) -> list[str]:
    """``aitbc-plugin ci annotations`` on the JSON report, as certify.yml's Report step."""
    path = tmp_path / "certification.json"
    path.write_text(render("json", report), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run([sys.executable, "-m", "aitbc.plugin_toolkit", "ci", "annotations",
                           str(path), "--plugin-path", "plugins/noisy", *extra],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def level(line: str) -> str:
    return line[2:].split(" ", 1)[0].split("::", 1)[0]


def test_annotations_of_26000_findings_fit_a_step(
    flood: CertificationReport, tmp_path: Path
) -> None:
    tools = CheckResult("tests", CheckStatus.PASSED, 1.0, tuple(
        Finding("tests.slow", Severity.LOW, f"slow test {i}", "tests/t.py", i)
        for i in range(1, 40)), "ok")  # fmt: skip  # warnings: a passed check's findings
    report = CertificationReport(False, PLUGIN, (*flood.checks, tools), toolkit=TOOLKIT)
    lines = annotate(report, tmp_path, "--artifact", "aitbc-certify-report-py3.12")
    assert all(line.startswith(("::error ", "::warning ")) for line in lines)
    errors = [line for line in lines if level(line) == "error"]
    warnings = [line for line in lines if level(line) == "warning"]
    assert len(errors) == limits.ANNOTATIONS_PER_STEP["error"]
    assert len(warnings) == limits.ANNOTATIONS_PER_STEP["warning"]
    assert len(lines) <= limits.ANNOTATIONS_PER_JOB
    *shown, last = errors
    # The most severe: five criticals (one in 5,000), then highs.
    assert [line.split("::")[2].split("]")[0] for line in shown] == ["[critical"] * 5 + [
        "[high"] * 4  # fmt: skip
    assert shown[0].startswith("::error title=certify security%3A security.B106,")
    assert ",file=plugins/noisy/pkg/mod" in shown[0]
    omitted = 26_000 + 39 - 9 - 10
    assert last == (
        f"::error title=certify%3A {omitted:,} more".replace(",", "%2C")
        + f"::{omitted:,} more findings not shown here "
        "(GitHub's limit); the full JSON report, certification.json in the artifact "
        "aitbc-certify-report-py3.12 has them all."
    )
    assert warnings[0].endswith("::[low] slow test 1")


def test_warnings_alone_overflowing_end_with_a_warning(tmp_path: Path) -> None:
    check = CheckResult("tests", CheckStatus.PASSED, 1.0, tuple(
        Finding("tests.slow", Severity.LOW, f"slow {i}", "t.py", i) for i in range(1, 13)),
        "ok")  # fmt: skip
    lines = annotate(CertificationReport(True, PLUGIN, (check,)), tmp_path)
    assert [level(line) for line in lines] == ["warning"] * 10
    assert lines[-1].startswith("::warning title=certify%3A 3 more::3 more findings not shown")
    assert str(tmp_path / "certification.json") in lines[-1]  # no artifact: the path itself


def test_annotations_within_the_limits_are_all_there(tmp_path: Path) -> None:
    lines = annotate(noisy(10), tmp_path)
    assert len(lines) == 10 and not any("more findings" in line for line in lines)


# -- code scanning's hard limits, before the upload -------------------------------------------
def sarif_with(runs: int = 1, results: int = 0, rules: int = 0, locations: int = 1,
               tags: int = 1) -> dict[str, Any]:  # fmt: skip
    result = {"ruleId": "r", "message": {"text": "m"}, "locations": [{}] * locations}
    run = {"tool": {"driver": {"name": "t", "rules": [{"id": "r", "properties": {
        "tags": ["t"] * tags}}] * rules}}, "results": [result] * results}  # fmt: skip
    return {"version": "2.1.0", "runs": [run] * runs}


_around = st.sampled_from([-1, 0, 1])


@settings(max_examples=40, deadline=None)
@given(_around, _around, _around, _around, _around)
def test_over_limits_names_each_limit_broken_and_only_those(
    runs: int, results: int, rules: int, locations: int, tags: int
) -> None:
    from aitbc.plugin_toolkit.ci.github import over_limits

    document = sarif_with(
        limits.SARIF_MAX_RUNS + runs, limits.SARIF_MAX_RESULTS_PER_RUN + results,
        limits.SARIF_MAX_RULES_PER_RUN + rules, limits.SARIF_MAX_LOCATIONS_PER_RESULT + locations,
        limits.SARIF_MAX_TAGS_PER_RULE + tags,
    )  # fmt: skip
    said = " ".join(over_limits(document, 1000))
    for over, word in ((runs, "runs ("), (results, "results"), (rules, "rules"),
                       (locations, "locations"), (tags, "tags")):  # fmt: skip
        assert (word in said) is (over > 0), (word, said)
    assert over_limits(sarif_with(), limits.SARIF_MAX_GZIP_BYTES) == []
    assert "gzip-compressed" in over_limits(sarif_with(), limits.SARIF_MAX_GZIP_BYTES + 1)[0]


def ci_sarif(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run([sys.executable, "-m", "aitbc.plugin_toolkit", "ci", "sarif",
                           str(path), "--plugin-path", "plugins/noisy"],
                          capture_output=True, text=True, env=env)  # fmt: skip


def test_ci_sarif_says_a_sarif_is_too_large_and_marks_it_for_the_upload_job(
    tmp_path: Path, flood: CertificationReport
) -> None:
    path = tmp_path / "certification.sarif"
    path.write_text(json.dumps(sarif_with(runs=limits.SARIF_MAX_RUNS + 1)))
    done = ci_sarif(path)
    assert done.returncode == 0, done.stderr  # the step goes on: the summary still follows
    (line,) = done.stdout.splitlines()
    assert line.startswith("::warning title=SARIF too large::certification.sarif is over code "
                           "scanning's upload limits, so it is not uploaded: 21 runs (at most "
                           "20).")  # fmt: skip
    marker = tmp_path / "certification.sarif.over-limits"
    assert marker.read_text() == "21 runs (at most 20)\n"
    # What certify writes for 26,000 findings is within every limit: no marker, none left.
    path.write_text(render("sarif", flood))
    done = ci_sarif(path)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert not marker.exists()
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in json.loads(path.read_text())["runs"][0]["results"]}  # fmt: skip
    assert all(uri.startswith("plugins/noisy/") for uri in uris)


def test_a_matrix_plan_skipping_many_plugins_warns_within_a_step(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"plugins": [
        {"name": f"p{i}", "version": "1.0.0", "description": "d", "author": "a",
         "license": "MIT"} for i in range(15)] + [
        {"name": "kept", "version": "1.0.0", "description": "d", "author": "a",
         "license": "MIT", "repository": "https://github.com/o/kept"}]}))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run([sys.executable, "-m", "aitbc.plugin_toolkit", "ci", "matrix",
                           "--registry", str(registry), "--github-output",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == limits.ANNOTATIONS_PER_STEP["warning"]
    assert lines[0] == ("::warning title=not recertified::p0 1.0.0: no repository to "
                        "certify from")  # fmt: skip
    assert lines[-1] == (
        "::warning title=not recertified%3A 6 more::6 more skipped plugins not shown here "
        "(GitHub's limit); this step's log has them all."
    )
    logged = [line for line in done.stderr.splitlines() if line.startswith("not recertified: ")]
    assert len(logged) == 15
