"""The `tests` check: the plugin's own tests, run against its installed wheel, pass as
they really ran, each within its time, and run enough of the shipped code.

pytest runs with plugin autoload off and loads only what certification chooses: the
SDK's pytest plugin (its fixtures), pytest-timeout and the toolkit's own observer
(checks/pytest_plugins/aitbc_tests_observer.py, compared with the JUnit XML in
_tests_observed.py).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import defusedxml.ElementTree as ET  # the XML comes from the plugin's own test run
from aitbc.plugins.sandbox.jail import interpreter_paths, run_observed

from ..base import CheckContext, CheckError, PluginEnvironment, result, timed
from ..behaviour import declared_permissions, judge
from ..model import CheckResult, CheckStatus, Finding, Severity
from ._shipped import is_test_or_scaffolding
from ._tests_observed import (
    Coverage,
    Difference,
    JunitCase,
    Record,
    coverage_of,
    is_timeout,
    read_junit,
    read_record,
    rewritten,
)

OBSERVER = PurePosixPath("pytest_plugins", "aitbc_tests_observer.py")
#: What pytest loads, named: nothing else is, whatever an entry point says.
PYTEST_PLUGINS = ("aitbc_tests_observer", "pytest_timeout", "aitbc.plugins.testing.pytest_plugin")
_MAX_LISTED = 10  # rewritten tests named one by one; the rest counted
# In the run folder, which the jail shows under a neutral path: no path the tests see
# names the certification.
JUNIT = "junit.xml"
RECORD = "observer.jsonl"  # written by the observer
OBSERVER_CONFIG = "observer.json"


def pytest_command(python: Path, run_dir: Path, test_timeout_s: float) -> list[str]:
    """pytest as the check runs it.  Our options come after any ``addopts`` of the
    plugin's ini file, so they win: ``-p`` unblocks what a ``-p no:`` there blocked,
    the last ``--timeout`` counts, and ``--maxfail=0`` undoes an ``-x`` that would
    leave collected tests unreported."""
    plugins = [arg for name in PYTEST_PLUGINS for arg in ("-p", name)]
    # The signal method fails the stuck test and the run goes on, so the JUnit XML and
    # the coverage are still written; the thread method would end the whole process.
    return [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins,
            f"--timeout={test_timeout_s:g}", "--timeout-method=signal",
            "--timeout-disable-debugger-detection", "--maxfail=0", "--junit-prefix=",
            f"--observer-config={run_dir / OBSERVER_CONFIG}", "--rootdir", str(run_dir),
            f"--junitxml={run_dir / JUNIT}", "-o", "junit_family=xunit1", "tests"]  # fmt: skip


def shipped_modules(wheel: Path, site_packages: Path) -> dict[str, str]:
    """The wheel's Python modules as installed (not its tests or scaffolding): real
    path -> the path shown (relative to site-packages)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    found = {}
    for name in names:
        path = PurePosixPath(name)
        if path.suffix != ".py" or path.parts[0].endswith((".dist-info", ".data")):
            continue
        if path.is_absolute() or ".." in path.parts:  # the build check names it
            continue
        installed = site_packages.joinpath(*path.parts)
        if not is_test_or_scaffolding(name) and installed.is_file():
            found[os.path.realpath(installed)] = path.as_posix()
    return found


class TestsCheck:
    """The plugin's own tests pass against its built wheel, as they really ran, each
    in its time, and they run the plugin's code.

    Only the project's `tests/` folder is copied out and run with pytest in the
    plugin's isolated environment, where the wheel is installed beside the SDK, so
    the tests import the code as users get it, not the source tree.  pytest runs with
    plugin autoload off: it loads the SDK's pytest plugin, pytest-timeout and the
    toolkit's own observer (`pytest_plugins/aitbc_tests_observer.py`), and no
    `pytest11` entry point of the plugin or of a dependency.  Each failing or erroring
    test is a finding at its file and line (`tests.failed`).  A test still running
    after `[tests] test_timeout_s` is stopped and named, with the line it was stuck
    at when known (`tests.timeout`).  A test whose outcome the reports or the JUnit
    XML give otherwise than the observer saw it end, or that they leave out, is
    `tests.rewritten`.  Tests that run less than `[tests] min_coverage` percent of
    the lines of the wheel's modules fail (`tests.coverage`).  A project without
    `tests/`, or whose tests collect nothing, fails.  pytest that cannot run, that
    outlives `[limits] tool_timeout_s` with no test running, or that writes no report
    makes the check an error."""

    __test__ = False  # not a pytest test class, whatever its name
    id = "tests"
    title = "The plugin's own tests pass against the built wheel"
    security = False
    needs_wheel = True
    uses_environment = True
    typical_s = 0.6

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            tests = context.workdir / "tests"
            if not tests.is_dir():
                finding = Finding(
                    "tests.missing", Severity.HIGH, "the project has no tests/", "tests"
                )
                return result(self.id, [finding], elapsed(), "no tests to run")
            wheel, _ = context.built_plugin()
            environment = context.environment()
            observer = context.checks_dir.joinpath(*OBSERVER.parts)
            if not observer.is_file():
                raise CheckError(f"the toolkit's test observer is missing: {observer}")
            # Only tests/ is copied: imports must come from the installed wheel.
            run_dir = context.scratch / "tests-run"
            shutil.copytree(tests, run_dir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            report = run_dir / JUNIT
            modules = shipped_modules(wheel, environment.site_packages)
            packages = sorted({PurePosixPath(name).parts[0].removesuffix(".py")
                               for name in modules.values()})  # fmt: skip
            # Read before any code of the tests runs, so writable like the rest; the
            # record's path is relative, as the jail shows run_dir under another path.
            settings = {"record": RECORD, "measure": list(modules), "packages": packages}
            (run_dir / OBSERVER_CONFIG).write_text(json.dumps(settings), encoding="utf-8")
            policy = context.policy
            observed = run_observed(
                pytest_command(environment.python, run_dir, policy.test_timeout_s),
                scratch=run_dir,
                cwd=run_dir,
                timeout=policy.tool_timeout_s,
                env={"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                     "PYTHONPATH": str(observer.parent)},
                readable=[*interpreter_paths(environment.python), observer.parent],
                expected_programs=[str(environment.python)],
            )  # fmt: skip
            run = observed.completed
            record = read_record(run_dir / RECORD)
            if run.timed_out:
                if record is None or record.running is None:
                    raise CheckError(f"pytest took longer than {policy.tool_timeout_s:g}s")
                finding = Finding("tests.timeout", Severity.HIGH, (
                    f"{record.running}: still running when pytest was stopped after "
                    f"{policy.tool_timeout_s:g}s ([limits] tool_timeout_s); the test's own limit "
                    f"([tests] test_timeout_s = {policy.test_timeout_s:g}) did not stop it"
                ), record.running.split("::")[0])  # fmt: skip
                return result(self.id, [finding], elapsed(), finding.message)
            if run.returncode == 5 and not (record and record.collected):
                finding = Finding("tests.none", Severity.HIGH, "pytest collected no tests", "tests")
                return result(self.id, [finding], elapsed(), "no tests collected")
            if run.returncode not in (0, 1, 5) or not report.is_file():
                raise CheckError(f"pytest could not run: {run.tail(3)}")
            try:
                cases = read_junit(report)
            except (ET.ParseError, ValueError) as exc:
                raise CheckError(f"unreadable pytest report: {exc}") from None
            findings = _outcomes(cases, record, environment, policy.test_timeout_s)
            changed = rewritten(record, cases)
            findings += _rewritten(changed)
            if run.returncode == 1 and not findings:
                raise CheckError(f"pytest failed: {run.tail(3)}")
            measured = coverage_of(record, modules)
            if measured is not None and measured.percent < policy.min_coverage:
                findings.append(_too_little(measured, policy.min_coverage))
            elif measured is None and modules and record is not None and record.ended:
                why = record.coverage_error or "the tests' process stopped coverage.py"
                findings.append(Finding("tests.coverage", Severity.HIGH,
                                        f"the shipped code's coverage was not measured: {why}",
                                        "tests"))  # fmt: skip
            seen, behaviour = judge(
                self.id, "tests", observed.behaviour, declared_permissions(context)
            )
        summary = _summary(cases, findings, measured)
        if seen:  # the tests passed, yet what running them did is the verdict
            summary = seen[0].message + (f" (and {len(seen) - 1} more)" if len(seen) > 1 else "")
        details: dict[str, Any] = {"tests": len(cases), "behaviour": behaviour}
        if measured is not None:
            details["coverage"] = {**measured.as_dict(), "threshold": policy.min_coverage}
        return result(
            self.id,
            [*findings, *seen],
            elapsed(),
            summary,
            status=CheckStatus.FAILED if findings or seen else CheckStatus.PASSED,
            **details,
        )

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        tests = sorted(p for p in (context.workdir / "tests").rglob("*.py"))
        observer = context.checks_dir.joinpath(*OBSERVER.parts)
        return [*tests, observer, *([context.wheel] if context.wheel else [])]


def _outcomes(
    cases: list[JunitCase], record: Record | None, environment: PluginEnvironment,
    test_timeout_s: float,
) -> list[Finding]:  # fmt: skip
    """A finding per failed test: `tests.timeout` for one pytest-timeout stopped."""
    findings = []
    for case in cases:
        if case.outcome != "failed":
            continue
        raw = record.first_failure(case.key) if record else None
        if not is_timeout(case.message) and not (raw and is_timeout(raw.get("message"))):
            message = f"{case.name}: {case.message}"
            # The failing line of the test itself, as the observer saw it raise.
            line = raw.get("line") if raw else None
            at = line if isinstance(line, int) and line > 0 and case.file else case.line
            findings.append(Finding("tests.failed", Severity.HIGH, message, case.file, at))
            continue
        file, line = case.file, case.line
        where = ""
        if raw and isinstance(raw.get("where"), list):
            shown, line_no = _shown(str(raw["where"][0]), environment), raw["where"][1]
            where = f", stuck at {shown}:{line_no}"
            if shown.startswith("tests/"):
                file, line = shown, int(line_no)
        name = str(raw["id"]) if raw and raw.get("id") else case.name
        message = f"{name}: still running after {test_timeout_s:g}s ([tests] test_timeout_s){where}"
        findings.append(Finding("tests.timeout", Severity.HIGH, message, file, line))
    return findings


def _shown(path: str, environment: PluginEnvironment) -> str:
    """A path the author recognises: a test's is relative already; the package's is
    shown as installed, relative to site-packages."""
    real = os.path.realpath(environment.site_packages) + os.sep
    return path[len(real) :] if path.startswith(real) else path


def _rewritten(changed: list[Difference]) -> list[Finding]:
    findings = [
        Finding("tests.rewritten", Severity.HIGH, f"outcome rewritten: {line}", file or "tests")
        for file, line in changed[:_MAX_LISTED]
    ]
    if len(changed) > _MAX_LISTED:
        more = f"outcome rewritten: and {len(changed) - _MAX_LISTED} more test(s)"
        findings.append(Finding("tests.rewritten", Severity.HIGH, more, "tests"))
    return findings


def _too_little(measured: Coverage, threshold: float) -> Finding:
    least = sorted(measured.files.items(), key=lambda item: item[1])[:3]
    listed = ", ".join(f"{name} {percent:.1f}%" for name, percent in least)
    shown = int(measured.percent * 10) / 10  # rounded down: never "60.0%, below 60%"
    return Finding("tests.coverage", Severity.HIGH, (
        f"the tests ran {shown:.1f}% of the plugin's shipped code "
        f"({measured.run} of {measured.statements} lines; {listed}), below the policy's "
        f"[tests] min_coverage of {threshold:g}%"
    ), "tests")  # fmt: skip


def _summary(cases: list[JunitCase], findings: list[Finding], measured: Coverage | None) -> str:
    covering = f", running {measured.percent:.1f}% of its code" if measured else ""
    if not findings:
        return f"{len(cases)} test(s) passed against the installed wheel{covering}"
    first = next((f for f in findings if f.rule != "tests.failed"), None)
    failed = sum(1 for f in findings if f.rule in ("tests.failed", "tests.timeout"))
    if first is not None and first.rule in ("tests.rewritten", "tests.timeout"):
        return first.message
    if failed:
        return f"{failed} of {len(cases)} test(s) failed against the installed wheel{covering}"
    return findings[0].message
