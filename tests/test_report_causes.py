"""One root cause, named once: when one failure stops several checks, every format of the
report names it in full at one check, and the others say `blocked by <check>: ...`.

Real runs of the console script: a project whose build fails, and one whose plugin
environment cannot be made (a dependency no index has).  Then the runner's matching, by
identity: the same words from another failure are not the same cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, CheckError, Lazy, PluginInfo
from aitbc.plugin_toolkit.certify.causes import Causes, brief, name_once
from aitbc.plugin_toolkit.certify.checks import CHECKS
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus, Finding, Severity
from aitbc.plugin_toolkit.certify.policy import load_policy
from certify_support import load_cases, make_project, materialize
from conftest import FAST_POLICY, REPO

TOOL = Path(sys.executable).with_name("aitbc-plugin")
FORMATS = ("text", "json", "junit", "sarif", "markdown")
MISSING = "aitbc-test-no-such-dependency"  # on no index: the environment cannot be made


def certify(project: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    policy = tmp_path / "policy.toml"
    policy.write_text(FAST_POLICY)
    reports = tmp_path / "reports"
    formats = [arg for name in FORMATS for arg in ("--format", name)]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = subprocess.run(
        [str(TOOL), "certify", str(project), *formats, "--report-dir", str(reports),
         "--policy", str(policy)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    return run, reports


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def xml_strings(element: ET.Element) -> Iterator[str]:
    for node in element.iter():
        yield from node.attrib.values()
        yield node.text or ""


def annotation_lines(report: Path) -> list[str]:
    run = subprocess.run([str(TOOL), "ci", "annotations", str(report)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def assert_named_once(
    run: subprocess.CompletedProcess[str], reports: Path, cause: str, owner: str,
    blocked: list[str],
) -> dict[str, Any]:  # fmt: skip
    """``cause`` (longer than the 100 characters a blocked check repeats) appears once in
    each format, at ``owner``; each ``blocked`` check is an error that points to it."""
    assert len(cause) > 120, cause
    report: dict[str, Any] = json.loads((reports / "certification.json").read_text())
    sarif = json.loads((reports / "certification.sarif").read_text())
    junit = ET.parse(reports / "certification.junit.xml").getroot()
    lines = annotation_lines(reports / "certification.json")
    seen = {
        "text": run.stdout.count(cause),
        "json": sum(s.count(cause) for s in strings(report)),
        "junit": sum(s.count(cause) for s in xml_strings(junit)),
        "sarif": sum(s.count(cause) for s in strings(sarif)),
        "annotations": sum(line.count(cause) for line in lines),
    }  # fmt: skip
    assert seen == dict.fromkeys(seen, 1), seen
    assert (reports / "certification.txt").read_text() == run.stdout
    checks = {c["id"]: c for c in report["checks"]}
    (full,) = [f for f in checks[owner]["findings"] if cause in f["message"]]
    assert full["rule"] == f"{owner}.error"
    assert checks[owner]["status"] == "error" and len(checks[owner]["summary"]) <= 100
    for check_id in blocked:
        check = checks[check_id]
        assert check["status"] == "error" and check["findings"] == [], check
        head, _, said = check["summary"].partition(": ")
        assert head == f"blocked by {owner}" and 0 < len(said) <= 100, check["summary"]
        rows = [line.split(maxsplit=2) for line in run.stdout.splitlines()]
        assert [check_id, "ERROR"] in [row[:2] for row in rows]  # its row in the table
        assert f"{check_id} error: blocked by {owner}" in report["reasons"]
        said_in_pr = f"::error title=certify {check_id}%3A error::{check['summary']}"
        assert [line for line in lines if f"certify {check_id}%3A" in line] == [said_in_pr]
    # SARIF: no result for a blocked check; each is a notification, in brief.
    results = sarif["runs"][0]["results"]
    assert not {r["properties"]["check"] for r in results} & set(blocked)
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    noted = {n["descriptor"]["id"] for n in notes}
    incomplete = {c["id"] for c in report["checks"] if c["status"] == "incomplete"}
    assert {owner, *blocked} <= noted <= {owner, *blocked, *incomplete}
    # JUnit: each blocked testcase is an <error> whose message points to the owner.
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    for check_id in blocked:
        error = cases[check_id].find("error")
        assert error is not None and (error.get("message") or "").startswith(f"blocked by {owner}")
    assert report["certified"] is False and report["registry_entry"] is None
    return report


def test_a_build_failure_is_named_once_at_build(tmp_path: Path) -> None:
    case = {c.name: c for c in load_cases()}["build-broken"]
    run, reports = certify(materialize(case, tmp_path), tmp_path)
    report = json.loads((reports / "certification.json").read_text())
    build = next(c for c in report["checks"] if c["id"] == "build")
    (finding,) = build["findings"]
    cause = finding["message"].removeprefix("cannot run without a plugin wheel: ")
    assert cause.startswith("the project does not build: this project cannot be built")
    needs_wheel = [c.id for c in CHECKS if c.needs_wheel and c.id != "build"]
    assert_named_once(run, reports, cause, "build", needs_wheel)
    # structure fails for it too (its rule: the project builds), pointing to build.
    (structure,) = [c for c in report["checks"] if c["id"] == "structure"]
    assert structure["status"] == "failed"
    (said,) = [f["message"] for f in structure["findings"] if f["rule"] == "structure.build"]
    assert said.endswith("... (in full under build)") and said.startswith(cause[:40])


def test_an_environment_failure_is_named_once_at_the_first_check_it_stops(
    tmp_path: Path,
) -> None:
    project = make_project("env-broken", "base", tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    needs = '"aitbc-plugins>=1.0.0",'
    assert text.count(needs) == 1
    pyproject.write_text(text.replace(needs, f'{needs}\n    "{MISSING}==1.0",'))
    with (project / "requirements.txt").open("a") as requirements:
        requirements.write(f"{MISSING}==1.0\n")
    run, reports = certify(project, tmp_path)
    report = json.loads((reports / "certification.json").read_text())
    metadata = next(c for c in report["checks"] if c["id"] == "metadata")
    (finding,) = metadata["findings"]
    cause = finding["message"]
    assert cause.startswith("the plugin environment could not be made: ") and "unsatisf" in cause
    blocked = ["interface", "lifecycle", "tests"]  # each needs the environment
    assert_named_once(run, reports, cause, "metadata", blocked)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    # The audit judges the declarations without an environment: never a pass here (what
    # the pin requires is unknown), and it does not repeat the installer's message.
    assert statuses["audit"] in ("incomplete", "failed")
    assert {k: statuses[k] for k in ("structure", "security", "build")} == dict.fromkeys(
        ("structure", "security", "build"), "passed"
    )  # what needs no environment is judged as usual
    assert metadata["details"]["blocks"] == blocked


# -- matching by identity ------------------------------------------------------------------
def context(tmp_path: Path) -> CheckContext:
    plugin = PluginInfo("p", "1.0", "p", "p", "p.plugin:P")
    return CheckContext(project=tmp_path, workdir=tmp_path, scratch=tmp_path,
                        policy=load_policy(REPO / "checks", None), checks_dir=REPO / "checks",
                        wheel=tmp_path / "p.whl", plugin=plugin)  # fmt: skip


def error(check_id: str, message: str) -> CheckResult:
    finding = Finding(f"{check_id}.error", Severity.HIGH, message)
    return CheckResult(check_id, CheckStatus.ERROR, 0.1, (finding,), message)


def test_a_shared_failure_is_matched_by_identity_not_by_its_words(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    causes = Causes(ctx)
    words = "could not be made: " + "x" * 150

    def fail() -> None:
        raise RuntimeError(words)

    shared = Lazy(causes.noted(fail))
    metadata, interface, audit = (c for c in CHECKS if c.id in ("metadata", "interface", "audit"))
    raised = []
    for _ in range(2):  # two checks asking the same shared value: the same exception
        try:
            try:
                shared.get()
            except RuntimeError as exc:
                raise CheckError(f"environment {words}") from exc
        except CheckError as exc:
            raised.append(exc)
    lookalike = CheckError(f"environment {words}")  # the same words, another failure
    ran = [
        (error("metadata", f"environment {words}"), causes.of(metadata, ctx, raised[0])),
        (error("interface", f"environment {words}"), causes.of(interface, ctx, raised[1])),
        (error("audit", f"environment {words}"), causes.of(audit, ctx, lookalike)),
    ]
    assert ran[0][1] is not None and ran[0][1] is ran[1][1] and ran[2][1] is None
    owner, blocked, other = name_once(ran)
    assert [f.message for f in owner.findings] == [f"environment {words}"]
    assert len(owner.summary) <= 100 and owner.details == {"blocks": ["interface"]}
    assert blocked.findings == () and blocked.status is CheckStatus.ERROR
    assert blocked.summary.startswith("blocked by metadata: environment could not be made: xxx")
    assert other == ran[2][0]  # not blocked: it says its own error in full


@pytest.mark.parametrize("only_tests", [False, True])
def test_no_wheel_blocks_every_check_that_needs_it(tmp_path: Path, only_tests: bool) -> None:
    why = "the project does not build: " + "y " * 100
    broken = replace(context(tmp_path), wheel=None, plugin=None, build_error=why)
    causes = Causes(broken)
    chosen = [c for c in CHECKS if c.needs_wheel and (c.id == "tests" or not only_tests)]
    ran = [(error(c.id, f"cannot run without a plugin wheel: {why}"), causes.of(c, broken, None))
           for c in chosen]  # fmt: skip
    results = {r.id: r for r in name_once(ran)}
    # build owns it when it ran; else the first check it stopped, in the report's order.
    owner = "tests" if only_tests else "build"
    assert [r.id for r in results.values() if r.findings] == [owner]
    assert results[owner].summary == brief(f"cannot run without a plugin wheel: {why}")
    blocked = {r.summary for i, r in results.items() if i != owner}
    assert blocked == (set() if only_tests else {f"blocked by build: {brief(why)}"})
