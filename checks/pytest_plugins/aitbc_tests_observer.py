"""The `tests` check's own pytest plugin: what each test really did, and how much of the
plugin's shipped code the tests ran.

Loaded explicitly (``-p aitbc_tests_observer``, this folder on ``PYTHONPATH``) into the
plugin's test run, with plugin autoload off.  ``--observer-config`` names a JSON file
``{"record": PATH, "measure": [FILE, ...], "packages": [NAME, ...]}`` (``record``
relative to the folder pytest starts in); one JSON object a line is appended to it as
things happen, so a run killed half-way still says which test was running:

- ``collected``: every item as pytest collected it, before any hook may deselect it;
- ``start``/``finish``: a test's protocol began/ended;
- ``phase``: setup, call or teardown as it ended, seen from the innermost hook wrapper
  (``trylast``), before ``pytest_runtest_makereport`` turns it into a report: the raw
  outcome (passed, failed, skipped, xfailed), the exception and where it was raised;
- ``report``: each report as it was logged, with the status that
  ``pytest_report_teststatus`` gives it;
- ``end``: the session ended; with line coverage of the ``measure`` files (coverage.py,
  started when one of ``packages`` is first imported).

The toolkit compares this with the JUnit XML (checks/README.md, `## tests`).  Never
imported into the toolkit's own process.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import types
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

#: Frames here are never where a test "was": the standard library, pytest, the timer...
_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve()) + os.sep
_PLUMBING = frozenset({"_pytest", "pytest", "pluggy", "pytest_timeout.py", "coverage",
                       "aitbc_tests_observer.py"})  # fmt: skip
_SDK_HARNESS = f"{os.sep}aitbc{os.sep}plugins{os.sep}testing{os.sep}"  # runs async tests


class _State:
    record: Path | None = None
    fd: int | None = None
    measure: list[str] = []
    coverage: Any = None  # coverage.Coverage, once started
    coverage_error: str | None = None
    config: pytest.Config | None = None


_STATE = _State()


def _write(event: str, **fields: Any) -> None:
    if _STATE.record is None:
        return
    line = (json.dumps({"e": event, **fields}, default=str) + "\n").encode()
    # One descriptor for the run (each open is a traced system call), opened again if a
    # test closed it.  One write a line, appended: a killed run leaves whole lines.
    for _ in range(2):
        try:
            if _STATE.fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                _STATE.fd = os.open(_STATE.record, flags, 0o600)
            os.write(_STATE.fd, line)
            return
        except OSError:
            _STATE.fd = None


def _junit_key(nodeid: str) -> list[str]:
    """(classname, name) as pytest's junitxml names the test (no prefix: the toolkit
    passes an empty one)."""
    try:
        from _pytest.junitxml import bin_xml_escape, mangle_test_address

        names = mangle_test_address(nodeid)
        return [".".join(names[:-1]), str(bin_xml_escape(names[-1]))]
    except Exception:  # another pytest: its layout, rebuilt
        parts = nodeid.replace("::()", "").split("::")
        parts[0] = parts[0].replace("/", ".").removesuffix(".py")
        return [".".join(parts[:-1]), parts[-1]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--observer-config", help="the tests check's settings (a JSON file)")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # The earliest hook a `-p` plugin gets: before any conftest, so before a hook of
    # the plugin's tests could run.
    where = early_config.known_args_namespace.observer_config
    if not where or _STATE.record is not None:
        return
    config = json.loads(Path(where).read_text(encoding="utf-8"))
    # Resolved now: a test may change the working folder later.
    _STATE.record = Path(config["record"]).resolve()
    _STATE.measure = [str(f) for f in config.get("measure", [])]
    packages = frozenset(str(p) for p in config.get("packages", []))
    _write("begin", pid=os.getpid())
    if _STATE.measure:
        if packages & set(sys.modules):  # imported already (a .pth file): from now on
            _start_coverage()
        else:
            sys.meta_path.insert(0, _StartCoverageOnImport(packages))


class _StartCoverageOnImport:
    """Starts coverage.py when the plugin is first imported, and finds nothing itself.
    Tracing from then on, not from the start of pytest, is what keeps measuring cheap:
    on Python 3.11 its tracer sees every line of every frame, pytest's included."""

    def __init__(self, packages: frozenset[str]) -> None:
        self.packages = packages

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.packages:
            sys.meta_path.remove(self)
            _start_coverage()


def _coverage() -> Any:
    import glob

    import coverage  # type: ignore[import-not-found, unused-ignore]  # the environment's

    cov = coverage.Coverage(
        data_file=None, config_file=False, branch=False,
        include=[glob.escape(name) for name in _STATE.measure],
    )  # fmt: skip
    # `# pragma: no cover` is the author's say; what the tests ran is the question.
    cov.set_option("report:exclude_lines", [])
    return cov


def _start_coverage() -> None:
    try:
        import coverage.collector  # type: ignore[import-not-found, unused-ignore]

        # It keeps the stack that started it for its debug output; inspecting pytest's
        # deep stack (each frame's source read) costs more than the rest of the start.
        if hasattr(coverage.collector, "short_stack"):
            coverage.collector.short_stack = lambda *args, **kwargs: ""
        cov = _coverage()
        cov.start()
        _STATE.coverage = cov
    except Exception as exc:  # never the plugin's import that fails for it
        _STATE.coverage_error = f"coverage.py did not start: {type(exc).__name__}: {exc}"[:300]


def pytest_itemcollected(item: pytest.Item) -> None:
    _write("collected", id=item.nodeid, junit=_junit_key(item.nodeid))


def pytest_runtest_logstart(nodeid: str) -> None:
    _write("start", id=nodeid)


def pytest_runtest_logfinish(nodeid: str) -> None:
    _write("finish", id=nodeid)


def _outcome(item: pytest.Item, when: str, exc: BaseException | None) -> str:
    if exc is None:
        return "passed"
    if isinstance(exc, pytest.skip.Exception):
        return "skipped"
    if isinstance(exc, pytest.xfail.Exception):
        return "xfailed"
    if when == "call" and item.get_closest_marker("xfail") is not None:
        return "xfailed"  # the marker's own report says whether it really was expected
    return "failed"


def _where(tb: types.TracebackType | None) -> list[Any] | None:
    """The innermost frame of the test's or the plugin's code the exception passed: the
    file relative to the rootdir when it is a test's (the toolkit sees that folder under
    another path), else absolute."""
    found = None
    root = str(_STATE.config.rootpath) + os.sep if _STATE.config is not None else None
    while tb is not None:
        filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        if (not filename.startswith(_STDLIB) and _SDK_HARNESS not in filename
                and _PLUMBING.isdisjoint(Path(filename).parts)):  # fmt: skip
            shown = filename[len(root) :] if root and filename.startswith(root) else filename
            found = [shown, tb.tb_lineno]
        tb = tb.tb_next
    return found


def _line_in_test(tb: types.TracebackType | None, item: pytest.Item) -> int | None:
    """The line of the test's own file the exception last passed: its failing assert
    (or the call into the plugin that raised), not the ``def`` line JUnit gives."""
    own = str(Path(str(item.path)).resolve())
    line = None
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == own:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _phase(item: pytest.Item, when: str, exc: BaseException | None) -> None:
    if exc is None and when == "call":
        # unittest.TestCase items keep the failure on the item instead of raising it.
        kept = getattr(item, "_excinfo", None)
        if kept:
            exc = kept[0].value
    fields: dict[str, Any] = {"outcome": _outcome(item, when, exc)}
    if exc is not None:
        fields["message"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        fields["where"] = _where(exc.__traceback__)
        fields["line"] = _line_in_test(exc.__traceback__, item)
    _write("phase", id=item.nodeid, junit=_junit_key(item.nodeid), when=when, **fields)


def _observe(item: pytest.Item, when: str) -> Generator[None, Any, None]:
    outcome = yield
    excinfo = outcome.excinfo
    _phase(item, when, excinfo[1] if excinfo else None)


# Old-style wrappers: they work with every pytest a plugin may pin (new-style ones need 8).
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _observe(item, "setup")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _observe(item, "call")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, None]:
    yield from _observe(item, "teardown")


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config, category = _STATE.config, None
    if config is not None:
        status = config.hook.pytest_report_teststatus(report=report, config=config)
        category = status[0] if status else None
    _write("report", id=report.nodeid, when=report.when, outcome=report.outcome,
           category=category)  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    _STATE.config = config


def _measured() -> dict[str, Any] | None:
    """Line coverage of the measured files: [statements, run] each; a plugin never
    imported ran none of its lines."""
    if not _STATE.measure or _STATE.coverage_error:
        return None
    try:
        cov = _STATE.coverage or _coverage()
        cov.stop()
    except Exception as exc:
        _STATE.coverage_error = f"coverage.py failed: {type(exc).__name__}: {exc}"[:300]
        return None
    files = {}
    for name in _STATE.measure:
        try:
            _, statements, _, missing, _ = cov.analysis2(name)
        except Exception:  # not Python source (a template, data): nothing to run
            statements, missing = [], []
        files[name] = [len(statements), len(statements) - len(missing)]
    return files


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, Any, None]:
    yield  # after every other implementation, the JUnit XML written
    measured = _measured()
    _write("end", exitstatus=int(session.exitstatus), coverage=measured,
           coverage_error=_STATE.coverage_error)  # fmt: skip
