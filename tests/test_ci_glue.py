"""`aitbc-plugin ci ...`: the Python glue the reusable workflows' run: steps call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import github_runner as runner
import pytest
from aitbc.plugin_toolkit.ci import github as ci
from aitbc.plugin_toolkit.ci import matrix as ci_matrix
from aitbc.plugin_toolkit.errors import ToolkitError
from hypothesis import given
from hypothesis import strategies as st

CLI = [sys.executable, "-m", "aitbc.plugin_toolkit"]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    full_env.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=full_env)


def report(
    certified: bool = False,
    checks: list[dict[str, Any]] | None = None,
    entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "certified": certified,
        "plugin": {"name": "demo", "version": "1.0.0"},
        "checks": checks if checks is not None else [],
        "artifacts": [],
        "registry_entry": entry,
        "reasons": [] if certified else ["security failed"],
    }


def entry(name: str, version: str, **extra: object) -> dict[str, Any]:
    return {"name": name, "version": version, "description": "d", "author": "a",
            "license": "MIT", **extra}  # fmt: skip


# -- annotations ----------------------------------------------------------------------------
def test_annotations_put_findings_on_files_in_the_repository() -> None:
    data = report(checks=[
        {"id": "security", "status": "failed", "summary": "bandit found 1 issue", "findings": [
            {"rule": "B602", "severity": "high", "message": "shell=True, 100%\nreally",
             "file": "plugin.py", "line": 12}]},
        {"id": "tests", "status": "passed", "summary": "ok", "findings": [
            {"rule": "slow", "severity": "low", "message": "slow test", "file": "tests/t.py",
             "line": None}]},
        {"id": "build", "status": "error", "summary": "build crashed", "findings": []},
        {"id": "metadata", "status": "passed", "summary": "fine", "findings": []},
    ])  # fmt: skip
    lines = ci.annotation_lines(data, "plugins/demo")
    assert lines == [  # errors first, a check that could not run leading; then warnings
        "::error title=certify build%3A error::build crashed",
        "::error title=certify security%3A B602,file=plugins/demo/plugin.py,line=12::"
        "[high] shell=True, 100%25%0Areally",
        "::warning title=certify tests%3A slow,file=plugins/demo/tests/t.py::[low] slow test",
    ]


def test_annotations_at_the_repository_root_have_plain_paths() -> None:
    data = report(checks=[{"id": "interface", "status": "failed", "summary": "", "findings": [
        {"rule": "R", "severity": "medium", "message": "m", "file": "./pkg/plugin.py",
         "line": 3}]}])  # fmt: skip
    assert ci.annotation_lines(data, ".") == [
        "::error title=certify interface%3A R,file=pkg/plugin.py,line=3::[medium] m"
    ]


@given(st.text())
def test_escaped_data_round_trips_and_keeps_to_one_line(text: str) -> None:
    escaped = ci.escape_data(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert runner.unescape_data(escaped) == text


@given(st.text())
def test_escaped_properties_round_trip_without_separators(text: str) -> None:
    escaped = ci.escape_property(text)
    assert not set(escaped) & {",", ":", "\n", "\r"}
    assert runner.unescape_property(escaped) == text


# -- step outputs ---------------------------------------------------------------------------
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
                       st.text().filter(lambda v: "\r" not in v)))  # fmt: skip
def test_outputs_round_trip_through_the_github_output_format(values: dict[str, str]) -> None:
    assert runner.parse_outputs(ci.format_outputs(values)) == values


def test_outputs_of_a_report() -> None:
    out = ci.step_outputs(report(True, entry=entry("demo", "1.0.0")))
    assert out["certified"] == "true"
    assert json.loads(out["registry-entry"])["name"] == "demo"
    assert ci.step_outputs(report(False))["registry-entry"] == ""


def test_a_partial_or_uncertified_report_gives_no_registry_entry(tmp_path: Path) -> None:
    """Only a certified whole run names an entry, even in a report that carries one."""
    uncertified = report(False, entry=entry("demo", "1.0.0"))
    partial = {**report(True, entry=entry("demo", "1.0.0")), "only": ["security"]}
    older = report(True, entry=entry("demo", "1.0.0"))  # an older toolkit put it here
    older["plugin"] = {**older["plugin"], "only": ["security"]}
    for data in (uncertified, partial, older):
        out = ci.step_outputs(data)
        assert (out["certified"], out["registry-entry"]) == ("false", "")
    write_result(tmp_path / "partial", partial)  # nor does a merge admit it
    merged = ci_matrix.merge([tmp_path])
    assert not merged.certified and merged.registry["plugins"] == []


def test_annotations_name_a_root_cause_once_and_blocked_checks_briefly() -> None:
    cause = "cannot run without a plugin wheel: the project does not build: " + "x " * 80
    blocked = "blocked by build: the project does not build: x x x..."
    data = report(checks=[
        {"id": "metadata", "status": "error", "summary": blocked, "findings": [],
         "details": {"blocked_by": "build"}},
        {"id": "tests", "status": "error", "summary": blocked, "findings": [],
         "details": {"blocked_by": "build"}},
        {"id": "build", "status": "error", "summary": cause[:97] + "...", "findings": [
            {"rule": "build.error", "severity": "high", "message": cause, "file": None,
             "line": None}]},
    ])  # fmt: skip
    lines = ci.annotation_lines(data)
    assert lines == [
        f"::error title=certify metadata%3A error::{blocked}",
        f"::error title=certify tests%3A error::{blocked}",
        f"::error title=certify build%3A build.error::[high] {cause}",
    ]
    assert sum(line.count(cause) for line in lines) == 1


# -- planning -------------------------------------------------------------------------------
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(st.lists(segment, min_size=1, max_size=3).map("/".join), min_size=1,
                max_size=20, unique=True))  # fmt: skip
def test_paths_parse_back_in_order(paths: list[str]) -> None:
    text = "\n".join(["# plugins", *paths, ""])
    assert ci_matrix.parse_paths(text) == paths


@pytest.mark.parametrize("text", ["", "# only a comment\n", "/abs", "../up", "a/../../up",
                                  "-rf", "a\nb\na", "~/x", "a\\b"])  # fmt: skip
def test_bad_paths_are_refused(text: str) -> None:
    with pytest.raises(ToolkitError):
        ci_matrix.parse_paths(text)


@given(st.integers(0, 600), st.integers(1, 256))
def test_chunks_cover_every_item_once_within_the_limit(count: int, max_jobs: int) -> None:
    items = tuple(ci_matrix.PlanItem(id=f"p{i}", name=f"p{i}", path=f"p{i}") for i in range(count))
    chunks = ci_matrix.chunks(items, max_jobs)
    assert [item for chunk in chunks for item in chunk] == list(items)
    assert len(chunks) <= max_jobs
    sizes = {len(chunk) for chunk in chunks}
    assert not sizes or (max(sizes) - min(sizes) <= 1 and min(sizes) >= 1)


def test_a_thousand_plugins_fit_in_256_jobs() -> None:
    plan = ci_matrix.plan_from_paths("\n".join(f"plugins/p{i}" for i in range(1000)))
    rows = ci_matrix.matrix(plan)["include"]
    assert len(rows) == 256
    ids = [item["id"] for row in rows for item in json.loads(row["items"])]
    assert ids == [f"plugins-p{i}" for i in range(1000)]


def test_registry_plan_clones_each_release_at_its_tag(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"plugins": [
        entry("alpha", "1.0.0", repository="https://github.com/o/alpha"),
        entry("alpha", "1.1.0", repository="https://github.com/o/alpha"),
        entry("beta", "2.0.0"),
    ]}))  # fmt: skip
    plan = ci_matrix.plan_from_registry(registry, "release-{name}-{version}")
    assert [(i.id, i.repository, i.ref) for i in plan.items] == [
        ("alpha-1.0.0", "https://github.com/o/alpha", "release-alpha-1.0.0"),
        ("alpha-1.1.0", "https://github.com/o/alpha", "release-alpha-1.1.0"),
    ]
    assert plan.skipped == ("beta 2.0.0: no repository to certify from",)


# -- merging --------------------------------------------------------------------------------
def write_result(folder: Path, data: dict[str, Any], item: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "certification.json").write_text(json.dumps(data))
    if item is not None:
        (folder / "outcome.json").write_text(json.dumps({"item": item, "error": ""}))


def test_merge_refreshes_certified_releases_and_removes_failed_ones(tmp_path: Path) -> None:
    base = tmp_path / "registry.json"
    base.write_text(json.dumps({"plugins": [entry("good", "1.0.0"), entry("bad", "1.0.0"),
                                            entry("other", "3.0.0")]}))  # fmt: skip
    fresh = entry("good", "1.0.0", checksum="sha256:" + "a" * 64, tags=["x"])
    good = {**report(True, entry=fresh), "plugin": {"name": "good", "version": "1.0.0"}}
    bad = {**report(False), "plugin": {"name": "bad", "version": "1.0.0"}}
    write_result(tmp_path / "r" / "c0" / "good-1.0.0", good)
    write_result(tmp_path / "r" / "c1" / "bad-1.0.0", bad)
    merged = ci_matrix.merge([tmp_path / "r"], base)
    assert not merged.certified
    assert merged.registry["plugins"] == [fresh, entry("other", "3.0.0", tags=[])]
    assert merged.report["registry"]["removed"] == ["bad 1.0.0"]
    assert merged.report["registry"]["not_recertified"] == ["other 3.0.0"]
    assert "| bad | 1.0.0 | **not certified** | security failed |" in merged.markdown
    kept = ci_matrix.merge([tmp_path / "r"], base, keep_failed=True)
    assert [e["name"] for e in kept.registry["plugins"]] == ["bad", "good", "other"]


def test_the_merged_summary_fits_a_job_summary_failures_first(tmp_path: Path) -> None:
    """A registry of thousands of releases with long reasons: the summary stays within
    GitHub's 1 MiB, the releases not certified come first, and the last line counts the
    rest and says where they all are."""
    why = "security failed: " + "a long reason, " * 70
    for i in range(3000):
        certified = i % 3 == 0
        data = {**report(certified, entry=entry(f"p{i}", "1.0.0") if certified else None),
                "plugin": {"name": f"p{i}", "version": "1.0.0"},
                "reasons": [] if certified else [why]}  # fmt: skip
        write_result(tmp_path / "r" / f"p{i}", data)
    merged = ci_matrix.merge([tmp_path / "r"])
    summary = merged.markdown
    assert len(summary.encode()) <= 1024 * 1024 < len(why) * 2000
    rows = [line for line in summary.splitlines() if line.startswith("| p")]
    assert rows and all("**not certified**" in row for row in rows)  # failures first
    hidden = 3000 - len(rows)
    assert (
        f"{hidden:,} more plugin releases not shown here (GitHub's limit); report.json "
        "in the merged artifact (aitbc-recertify-merged) has them all."
    ) in summary
    assert summary.rstrip().splitlines()[-1].startswith("Registry: 1000 entries")


def test_a_release_failing_on_one_python_is_not_certified(tmp_path: Path) -> None:
    ok = report(True, entry=entry("demo", "1.0.0"))
    write_result(tmp_path / "py3.10", ok)
    write_result(tmp_path / "py3.13", report(False))
    merged = ci_matrix.merge([tmp_path])
    assert merged.report["total"] == 1 and not merged.certified
    assert ci_matrix.merge_outputs(merged)["registry-entry"] == ""


def test_merge_outputs_name_the_entry_of_one_certified_release(tmp_path: Path) -> None:
    write_result(tmp_path / "py3.12", report(True, entry=entry("demo", "1.0.0")))
    outputs = ci_matrix.merge_outputs(ci_matrix.merge([tmp_path]))
    assert outputs["certified"] == "true"
    assert json.loads(outputs["registry-entry"])["name"] == "demo"


# -- the command line: bad input is one line and exit 2 --------------------------------------
BAD = [
    ("annotations", "{missing}"),
    ("annotations", "{notjson}"),
    ("annotations", "{notreport}"),
    ("annotations", "{dir}"),
    ("outputs", "{notreport}"),
    ("sarif", "{notreport}"),
    ("sarif", "{missing}"),
    ("matrix",),
    ("matrix", "--paths", "a", "--registry", "{registry}"),
    ("matrix", "--paths", "../escape"),
    ("matrix", "--paths", "a", "--max-jobs", "0"),
    ("matrix", "--paths", "a", "--max-jobs", "257"),
    ("matrix", "--registry", "{notjson}"),
    ("matrix", "--registry", "{notreport}"),
    ("matrix", "--registry", "{registry}", "--ref-template", "main"),
    ("run-chunk", "--items", "not json", "--out", "{dir}"),
    ("run-chunk", "--items", "[]", "--out", "{dir}"),
    ("run-chunk", "--items", '[{"id": 1}]', "--out", "{dir}"),
    ("merge", "{dir}", "--out", "{out}"),
    ("merge", "{missing}", "--out", "{out}"),
    ("merge", "{results}", "--registry", "{notjson}", "--out", "{out}"),
    ("outputs", "{report}", "--github-output", "{dir}"),
]


@pytest.mark.parametrize("args", BAD, ids=lambda args: " ".join(args))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "notjson").write_text("{nope")
    (tmp_path / "notreport").write_text('{"plugins": 3}')
    (tmp_path / "registry").write_text(json.dumps({"plugins": [entry("a", "1.0.0")]}))
    (tmp_path / "report").write_text(json.dumps(report(True)))
    write_result(tmp_path / "results" / "x", report(True))
    names = {
        "missing": "missing",
        "notjson": "notjson",
        "notreport": "notreport",
        "dir": "dir",
        "registry": "registry",
        "results": "results",
        "out": "out",
        "report": "report",
    }
    concrete = [str(tmp_path / names[a[1:-1]]) if a[1:-1] in names else a for a in args]
    result = run_cli("ci", *concrete, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("aitbc-plugin: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_outputs_go_to_github_output_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(report(True, entry=entry("demo", "1.0.0"))))
    output = tmp_path / "github_output"
    result = run_cli("ci", "outputs", str(tmp_path / "report.json"),
                     env={"GITHUB_OUTPUT": str(output)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert runner.parse_outputs(output.read_text())["certified"] == "true"
