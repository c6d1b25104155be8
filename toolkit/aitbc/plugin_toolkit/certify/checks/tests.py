"""The `tests` check."""

from __future__ import annotations

import shutil
from pathlib import Path

import defusedxml.ElementTree as ET  # the XML comes from the plugin's own test run
from aitbc.plugins.sandbox.jail import interpreter_paths, run_observed

from ..base import CheckContext, CheckError, result, timed
from ..behaviour import declared_permissions, judge
from ..model import CheckResult, CheckStatus, Finding, Severity


def read_junit(junit_xml: Path) -> tuple[list[Finding], int]:
    """Failed tests as findings, and how many tests ran, from pytest's JUnit XML."""
    root = ET.parse(junit_xml).getroot()
    if root is None:
        raise ValueError("empty report")
    findings = []
    total = 0
    for case in root.iter("testcase"):
        total += 1
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        line = case.get("line")
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        message = (problem.get("message") or problem.tag).splitlines()[0][:300]
        findings.append(
            Finding(
                "tests.failed",
                Severity.HIGH,
                f"{name}: {message}",
                case.get("file"),
                int(line) + 1 if line and line.isdigit() else None,
            )
        )
    return findings, total


class TestsCheck:
    """The plugin's own tests pass against its built wheel.

    Only the project's `tests/` folder is copied out and run with pytest in the
    plugin's isolated environment, where the wheel is installed beside the SDK, so
    the tests import the code as users get it, not the source tree.  Each failing or
    erroring test is a finding at its file and line; a project without `tests/`, or
    whose tests collect nothing, fails.  pytest that cannot run, times out
    (`[limits] tool_timeout_s`) or writes no report makes the check an error."""

    __test__ = False  # not a pytest test class, whatever its name
    id = "tests"
    title = "The plugin's own tests pass against the built wheel"
    security = False
    needs_wheel = True

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            tests = context.workdir / "tests"
            if not tests.is_dir():
                finding = Finding(
                    "tests.missing", Severity.HIGH, "the project has no tests/", "tests"
                )
                return result(self.id, [finding], elapsed(), "no tests to run")
            environment = context.environment()
            # Only tests/ is copied: imports must come from the installed wheel.
            run_dir = context.scratch / "tests-run"
            shutil.copytree(tests, run_dir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            report = run_dir / "junit.xml"
            observed = run_observed(
                [
                    str(environment.python),
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    str(run_dir),
                    f"--junitxml={report}",
                    "-o",
                    "junit_family=xunit1",
                    "tests",
                ],
                scratch=run_dir,
                cwd=run_dir,
                timeout=context.policy.tool_timeout_s,
                env={"PYTHONDONTWRITEBYTECODE": "1"},
                readable=interpreter_paths(environment.python),
                expected_programs=[str(environment.python)],
            )
            run = observed.completed
            if run.timed_out:
                raise CheckError(f"pytest took longer than {context.policy.tool_timeout_s:g}s")
            if run.returncode == 5:
                finding = Finding("tests.none", Severity.HIGH, "pytest collected no tests", "tests")
                return result(self.id, [finding], elapsed(), "no tests collected")
            if run.returncode not in (0, 1) or not report.is_file():
                raise CheckError(f"pytest could not run: {run.tail(3)}")
            try:
                findings, total = read_junit(report)
            except (ET.ParseError, ValueError) as exc:
                raise CheckError(f"unreadable pytest report: {exc}") from None
            if run.returncode == 1 and not findings:
                raise CheckError(f"pytest failed: {run.tail(3)}")
            seen, record = judge(
                self.id, "tests", observed.behaviour, declared_permissions(context)
            )
        summary = (
            f"{total} test(s) passed against the installed wheel"
            if not findings
            else f"{len(findings)} of {total} test(s) failed against the installed wheel"
        )
        if seen:  # the tests passed, yet what running them did is the verdict
            summary = seen[0].message + (f" (and {len(seen) - 1} more)" if len(seen) > 1 else "")
        return result(
            self.id,
            [*findings, *seen],
            elapsed(),
            summary,
            status=CheckStatus.FAILED if findings or seen else CheckStatus.PASSED,
            tests=total,
            behaviour=record,
        )

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        tests = sorted(p for p in (context.workdir / "tests").rglob("*.py"))
        return [*tests, *([context.wheel] if context.wheel else [])]
