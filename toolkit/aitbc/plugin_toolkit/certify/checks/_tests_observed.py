"""What the `tests` check reads once pytest has run: the JUnit XML pytest wrote, and the
record of the toolkit's own observer plugin (checks/pytest_plugins/
aitbc_tests_observer.py), and where the two disagree.

Both come from the plugin's test process, so neither is trusted alone: the observer
sees each test's raw outcome from the innermost hook wrapper, before any report hook
of a conftest, and the JUnit XML is what pytest made of the reports afterwards.  A
failure the XML does not show, a test it shows passed that never passed, a collected
test it never mentions: each is a rewritten outcome.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as ET  # the XML comes from the plugin's own test run

Key = tuple[str, str]  # (classname, name), as JUnit names a test
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "failed": 3}
_TIMEOUT = re.compile(r"Timeout \(>[0-9.e+]+s\) from pytest-timeout")


def worse(a: str | None, b: str) -> str:
    return b if a is None or _RANK.get(b, 3) > _RANK.get(a, 3) else a


def is_timeout(message: str | None) -> bool:
    return bool(message and _TIMEOUT.search(message))


@dataclass(frozen=True)
class JunitCase:
    key: Key
    outcome: str  # passed | failed | skipped
    message: str | None
    file: str | None
    line: int | None  # 1-based

    @property
    def name(self) -> str:
        return "::".join(part for part in self.key if part)


def read_junit(junit_xml: Path) -> list[JunitCase]:
    """Every test case of pytest's JUnit XML (xunit1) and how it ended."""
    root = ET.parse(junit_xml).getroot()
    if root is None:
        raise ValueError("empty report")
    cases = []
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        outcome = (
            "failed" if problem is not None else "skipped" if skipped is not None else "passed"
        )
        message = None
        if problem is not None:
            message = (problem.get("message") or problem.tag).splitlines()[0][:300]
        line = case.get("line")
        cases.append(JunitCase(
            (case.get("classname", ""), case.get("name", "")), outcome, message, case.get("file"),
            int(line) + 1 if line and line.isdigit() else None,
        ))  # fmt: skip
    return cases


@dataclass
class Record:
    """The observer's record: one JSON object a line, as the test run went."""

    keys: dict[str, Key] = field(default_factory=dict)  # node id -> JUnit key
    collected: list[str] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)  # node id -> its worst raw outcome
    called: set[str] = field(default_factory=set)  # node ids whose test function ran
    failure: dict[str, dict[str, Any]] = field(default_factory=dict)  # first failed phase
    failure_by_key: dict[Key, dict[str, Any]] = field(default_factory=dict)
    shown_passed: list[str] = field(default_factory=list)
    running: str | None = None  # started and never finished
    ended: bool = False
    coverage: dict[str, list[int]] | None = None  # file -> [statements, run]
    coverage_error: str | None = None  # why there is none

    def first_failure(self, key: Key) -> dict[str, Any] | None:
        """The first failed phase of the test JUnit names ``key``, as recorded."""
        return self.failure_by_key.get(key)


def read_record(path: Path) -> Record | None:
    """The record, or None when the observer wrote none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    record = Record()
    for line in lines:
        try:
            event = json.loads(line)
            _apply(record, event)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a torn last line (the run was killed), or noise: never a pass
    return record


def _apply(record: Record, event: dict[str, Any]) -> None:
    kind, nodeid = event["e"], str(event.get("id"))
    if "junit" in event:
        record.keys[nodeid] = (str(event["junit"][0]), str(event["junit"][1]))
    if kind == "collected":
        record.collected.append(nodeid)
    elif kind == "start":
        record.running = nodeid
    elif kind == "finish":
        record.running = None
    elif kind == "phase":
        outcome = str(event["outcome"])
        record.raw[nodeid] = worse(record.raw.get(nodeid), outcome)
        if event["when"] == "call" and outcome == "passed":
            record.called.add(nodeid)
        if outcome == "failed":
            record.failure.setdefault(nodeid, event)
            record.failure_by_key.setdefault(record.keys.get(nodeid, (nodeid, "")), event)
    elif kind == "report":
        if event["outcome"] == "failed" and event.get("category") == "passed":
            record.shown_passed.append(nodeid)
    elif kind == "end":
        record.ended = True
        record.coverage = event.get("coverage")
        record.coverage_error = event.get("coverage_error")


def _file_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".py") else None


Difference = tuple[str | None, str]  # (the test's file, what differs)


def rewritten(record: Record | None, cases: list[JunitCase]) -> list[Difference]:
    """How the JUnit XML, or the reports it was made from, differ from what the tests
    really did, one test at a time (empty: they agree)."""
    if record is None:
        return [(None, "the toolkit's test observer recorded nothing: the tests' process "
                       "disabled it")]  # fmt: skip
    said: dict[Key, str] = {}
    for case in cases:
        said[case.key] = worse(said.get(case.key), case.outcome)
    found: dict[Key, Difference] = {}  # per test, the first difference found

    def note(nodeid: str, what: str) -> None:
        found.setdefault(record.keys.get(nodeid, (nodeid, "")), (_file_of(nodeid), what))

    for nodeid in record.collected:
        if record.keys.get(nodeid) not in said:
            note(nodeid, f"{nodeid} was collected but never reported (deselected or dropped)")
    for nodeid, raw in record.raw.items():
        reported = said.get(record.keys.get(nodeid, (nodeid, "")))
        if raw == "failed" and reported not in ("failed", None):
            why = record.failure[nodeid].get("message") or "failed"
            note(nodeid, f"{nodeid} failed when run ({why}), yet is reported {reported}")
    for nodeid in record.shown_passed:
        note(nodeid, f"{nodeid} failed, yet a pytest_report_teststatus hook shows it passed")
    by_key: dict[Key, list[str]] = {}
    for nodeid, key in record.keys.items():
        by_key.setdefault(key, []).append(nodeid)
    for case in cases:
        ran = by_key.get(case.key, [])
        if case.outcome == "passed" and (
            not ran or any(record.raw.get(n) != "passed" or n not in record.called for n in ran)
        ):
            what = ", ".join(sorted({record.raw.get(n, "not run") for n in ran})) or "not run"
            found.setdefault(
                case.key, (case.file, f"{case.name} is reported passed, but was {what}")
            )
    lines = list(found.values())
    if not record.ended:
        lines.append((None, "the toolkit's test observer stopped before the session ended"))
    return lines


@dataclass(frozen=True)
class Coverage:
    percent: float
    statements: int
    run: int
    files: dict[str, float]  # shown path -> percent

    def as_dict(self) -> dict[str, Any]:
        files = {name: round(percent, 1) for name, percent in self.files.items()}
        return {"percent": round(self.percent, 1), "statements": self.statements,
                "run": self.run, "files": files}  # fmt: skip


def coverage_of(record: Record | None, shown: dict[str, str]) -> Coverage | None:
    """Line coverage of the shipped modules (``shown``: measured file -> its name)."""
    if record is None or record.coverage is None:
        return None
    files, statements, run = {}, 0, 0
    for name, (total, ran) in sorted(record.coverage.items()):
        statements, run = statements + total, run + ran
        files[shown.get(name, name)] = 100.0 * ran / total if total else 100.0
    return Coverage(100.0 * run / statements if statements else 100.0, statements, run, files)
