"""The `tests` check on a real wheel in a real plugin environment: what the plugin's
tests prove.  A conftest that rewrites outcomes is caught, a hung test is named within
its own limit, tests that never run the plugin fail its coverage threshold, and tests
that legitimately skip, xfail or fail are reported as they ran."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy, PluginInfo
from aitbc.plugin_toolkit.certify.checks.tests import TestsCheck
from aitbc.plugin_toolkit.certify.distributions import plugin_info
from aitbc.plugin_toolkit.certify.environment import IsolatedEnvironment, environment_for
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.policy import Policy, load_policy
from aitbc.plugin_toolkit.certify.runner import run_check
from aitbc.plugin_toolkit.errors import ToolkitError
from certify_support import make_project
from conftest import REPO, run_checked
from filelock import FileLock

pytestmark = pytest.mark.integration
CHECKS = REPO / "checks"
POLICY = replace(load_policy(CHECKS), test_timeout_s=2.0)
FAILING_TEST = "def test_broken() -> None:\n    assert 1 + 1 == 3\n"


@dataclass(frozen=True)
class Built:
    project: Path
    wheel: Path
    plugin: PluginInfo
    environment: IsolatedEnvironment


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The generated base plugin, its wheel and its real plugin environment (the one
    certification makes, with its tools), shared by the xdist workers of a run."""
    root = tmp_path_factory.getbasetemp()
    root = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "tests-check"
    with FileLock(str(root) + ".lock"):
        if not (root / "ready").exists():
            shutil.rmtree(root, ignore_errors=True)
            project = make_project("tests-check-plugin", "base", root / "src")
            run_checked([sys.executable, "-m", "uv", "build", "-q", "--wheel", "--out-dir",
                         str(root / "dist"), str(project)])  # fmt: skip
            (root / "ready").write_text("")
        wheel = next((root / "dist").glob("*.whl"))
        environment = environment_for(wheel, root / "cache")
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    return Built(root / "src" / "tests-check-plugin", wheel, info, environment)


def check(built: Built, where: Path, files: Mapping[str, str | None] | None = None,
          policy: Policy = POLICY) -> CheckResult:  # fmt: skip
    """The tests check on a copy of the project whose files are ``files`` (None: deleted)."""
    project = where / "project"
    shutil.copytree(built.project, project)
    for relative, text in (files or {}).items():
        if text is None:
            (project / relative).unlink()
        else:
            (project / relative).write_text(textwrap.dedent(text), encoding="utf-8")
    scratch = where / "scratch"
    scratch.mkdir()
    context = CheckContext(
        project=project, workdir=project, scratch=scratch, policy=policy, wheel=built.wheel,
        plugin=built.plugin, checks_dir=CHECKS, plugin_environment=Lazy(lambda: built.environment),
    )  # fmt: skip
    return run_check(TestsCheck(), context)


def messages(outcome: CheckResult, rule: str) -> list[str]:
    return [f.message for f in outcome.findings if f.rule == rule]


def test_the_generated_tests_pass_and_run_the_plugin(built: Built, tmp_path: Path) -> None:
    outcome = check(built, tmp_path)
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.summary == (
        "7 test(s) passed against the installed wheel, running 97.9% of its code"
    )
    coverage: dict[str, Any] = outcome.details["coverage"]
    assert coverage["threshold"] == 60.0 and coverage["statements"] > 0
    assert set(coverage["files"]) == {"tests_check_plugin/__init__.py",
                                      "tests_check_plugin/plugin.py"}  # fmt: skip


REWRITERS = {
    "makereport": """
        import pytest


        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item):
            outcome = yield
            report = outcome.get_result()
            if report.failed:
                report.outcome = "passed"
                report.longrepr = None
        """,
    "junit-edited": """
        import re

        import pytest


        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(session):
            path = session.config.option.xmlpath
            with open(path) as xml:
                text = re.sub(r"<failure.*?</failure>", "", xml.read(), flags=re.S)
            with open(path, "w") as xml:
                xml.write(text)
        """,
    "deselected": """
        def pytest_collection_modifyitems(config, items):
            items[:] = [item for item in items if item.name != "test_broken"]
        """,
    "teststatus": """
        def pytest_report_teststatus(report, config):
            if report.when == "call" and report.failed:
                return "passed", ".", "PASSED"
        """,
}
REWRITTEN = {
    "makereport": "tests/test_broken.py::test_broken failed when run (AssertionError: "
                  "assert (1 + 1) == 3), yet is reported passed",
    "junit-edited": "tests/test_broken.py::test_broken failed when run (AssertionError: "
                    "assert (1 + 1) == 3), yet is reported passed",
    "deselected": "tests/test_broken.py::test_broken was collected but never reported "
                  "(deselected or dropped)",
    "teststatus": "tests/test_broken.py::test_broken failed, yet a pytest_report_teststatus "
                  "hook shows it passed",
}  # fmt: skip


@pytest.mark.parametrize("how", sorted(REWRITERS))
def test_a_conftest_that_rewrites_outcomes_is_caught(
    built: Built, tmp_path: Path, how: str
) -> None:
    files = {"tests/conftest.py": REWRITERS[how], "tests/test_broken.py": FAILING_TEST}
    outcome = check(built, tmp_path, files)
    assert outcome.status is CheckStatus.FAILED, outcome
    assert messages(outcome, "tests.rewritten") == [f"outcome rewritten: {REWRITTEN[how]}"]
    (finding,) = [f for f in outcome.findings if f.rule == "tests.rewritten"]
    assert finding.file == "tests/test_broken.py"


def test_legitimate_outcomes_are_reported_as_they_ran(built: Built, tmp_path: Path) -> None:
    """No false alarm: xfail, skips, unittest outcomes, odd parameter ids, a fixture
    that fails, a teardown error, a report hook that only keeps reports, and an ini
    file that asks for `-x` and blocks the observer: only the real failures are found."""
    files = {
        "tests/pytest.ini": "[pytest]\naddopts = -x -p no:aitbc_tests_observer\n",
        "tests/conftest.py": """
            import pytest


            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(item):
                outcome = yield
                setattr(item, "rep_" + outcome.get_result().when, outcome.get_result())


            @pytest.fixture
            def bad_teardown():
                yield
                raise RuntimeError("teardown broke")
            """,
        "tests/test_outcomes.py": """
            import unittest

            import pytest


            @pytest.mark.xfail(reason="known")
            def test_xfail():
                raise ValueError("known")


            def test_skipped():
                pytest.skip("not here")


            @pytest.mark.parametrize("value", ["a::b", "ü", "[x]", '<"&>'])
            def test_ids(value):
                assert value


            def test_teardown_fails(bad_teardown):
                assert True


            def test_fails():
                assert 1 + 1 == 3


            class TestUnit(unittest.TestCase):
                def test_skip(self):
                    self.skipTest("no")

                @unittest.expectedFailure
                def test_expected(self):
                    self.assertEqual(1, 2)

                def test_fails(self):
                    self.assertEqual(1, 2)
            """,
    }
    outcome = check(built, tmp_path, files)
    assert outcome.status is CheckStatus.FAILED, outcome
    assert {f.rule for f in outcome.findings} == {"tests.failed"}, outcome.findings
    lines = textwrap.dedent(files["tests/test_outcomes.py"]).splitlines()
    names = ("def test_teardown_fails(bad_teardown):",)
    at = {name: lines.index(name) + 1 for name in names}
    # A failure points at the line that failed in the test's own file, not its def.
    at["assert"] = lines.index("    assert 1 + 1 == 3") + 1
    at["assertEqual"] = len(lines) - lines[::-1].index("        self.assertEqual(1, 2)")
    assert [(f.message, f.file, f.line) for f in outcome.findings] == [
        ('tests.test_outcomes::test_teardown_fails: failed on teardown with '
         '"RuntimeError: teardown broke"', "tests/test_outcomes.py",
         at["def test_teardown_fails(bad_teardown):"]),
        ("tests.test_outcomes::test_fails: assert (1 + 1) == 3", "tests/test_outcomes.py",
         at["assert"]),
        ("tests.test_outcomes.TestUnit::test_fails: AssertionError: 1 != 2",
         "tests/test_outcomes.py", at["assertEqual"]),
    ]  # fmt: skip
    assert outcome.details["tests"] == 7 + 11


def test_a_hung_test_is_named_within_its_timeout(built: Built, tmp_path: Path) -> None:
    files = {"tests/test_hang.py": "import time\n\n\ndef test_waits_forever():\n"
                                   "    while True:\n        time.sleep(3600)\n"}  # fmt: skip
    began = time.monotonic()
    outcome = check(built, tmp_path, files)
    assert time.monotonic() - began < POLICY.test_timeout_s + 20  # not tool_timeout_s (300)
    assert outcome.status is CheckStatus.FAILED, outcome
    (finding,) = outcome.findings
    assert finding.rule == "tests.timeout"
    assert finding.message == (
        "tests/test_hang.py::test_waits_forever: still running after 2s "
        "([tests] test_timeout_s), stuck at tests/test_hang.py:6"
    )
    assert (finding.file, finding.line) == ("tests/test_hang.py", 6)
    assert outcome.summary == finding.message
    assert outcome.details["tests"] == 8  # the other tests ran, and passed


def test_a_test_that_swallows_its_timeout_is_named_when_the_run_is_stopped(
    built: Built, tmp_path: Path
) -> None:
    files = {"tests/test_hang.py": """
        import time


        def test_never_stops():
            while True:
                try:
                    time.sleep(3600)
                except BaseException:
                    pass
        """}  # fmt: skip
    outcome = check(built, tmp_path, files, replace(POLICY, tool_timeout_s=8.0))
    assert outcome.status is CheckStatus.FAILED, outcome
    assert messages(outcome, "tests.timeout") == [
        "tests/test_hang.py::test_never_stops: still running when pytest was stopped after 8s "
        "([limits] tool_timeout_s); the test's own limit ([tests] test_timeout_s = 2) did not "
        "stop it"
    ]


def test_tests_that_never_import_the_plugin_fail(built: Built, tmp_path: Path) -> None:
    files = {"tests/test_plugin.py": "def test_adds() -> None:\n    assert 1 + 1 == 2\n"}
    outcome = check(built, tmp_path, files)
    assert outcome.status is CheckStatus.FAILED, outcome
    (message,) = messages(outcome, "tests.coverage")
    assert message.startswith("the tests ran 0.0% of the plugin's shipped code (0 of ")
    assert message.endswith(
        "tests_check_plugin/__init__.py 0.0%, tests_check_plugin/plugin.py 0.0%), below the "
        "policy's [tests] min_coverage of 60%"
    )
    assert outcome.summary == message


def test_tests_that_only_import_the_plugin_fail_too(built: Built, tmp_path: Path) -> None:
    files = {"tests/test_plugin.py": "import tests_check_plugin.plugin\n\n\n"
                                     "def test_imports() -> None:\n"
                                     "    assert tests_check_plugin.plugin\n"}  # fmt: skip
    outcome = check(built, tmp_path, files)
    coverage = outcome.details["coverage"]["percent"]
    assert 20 < coverage < POLICY.min_coverage, outcome
    assert [f.rule for f in outcome.findings] == ["tests.coverage"]
    assert check(built, tmp_path / "lower", files,
                 replace(POLICY, min_coverage=20)).status is CheckStatus.PASSED  # fmt: skip


def test_the_tests_settings_are_read_and_checked(tmp_path: Path) -> None:
    default = load_policy(CHECKS)
    assert (default.test_timeout_s, default.min_coverage) == (60.0, 60.0)
    override = tmp_path / "policy.toml"
    override.write_text("[tests]\ntest_timeout_s = 5\nmin_coverage = 80.5\n")
    changed = load_policy(CHECKS, override)
    assert (changed.test_timeout_s, changed.min_coverage) == (5.0, 80.5)
    assert changed.fingerprint() != default.fingerprint()  # a cached result is not reused
    for text, said in [
        ("[tests]\ntest_timeout_s = 0\n", "tests.test_timeout_s must be positive"),
        ("[tests]\nmin_coverage = 101\n", "tests.min_coverage must be a percentage (0 to 100)"),
        ("[tests]\nmin_coverage = true\n", "tests.min_coverage must be a number"),
        ("[tests]\nthreshold = 1\n", "unknown setting 'tests.threshold'"),
    ]:
        override.write_text(text)
        with pytest.raises(ToolkitError, match=said.replace("(", r"\(").replace(")", r"\)")):
            load_policy(CHECKS, override)
