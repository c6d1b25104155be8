"""`aitbc-plugin certify` as a user runs it: the real console script in a subprocess,
real tools underneath.  Exit codes, every output, the dist folder, the cache, the
untouched project, and one line with exit 2 for every bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aitbc.plugins import PluginRegistry
from aitbc.plugins.registry import sha256_file
from certify_support import load_cases, make_project, materialize
from conftest import FAST_POLICY, VULN_DB

pytestmark = pytest.mark.integration
TOOL = Path(sys.executable).with_name("aitbc-plugin")
CASES = {c.name: c for c in load_cases()}
CACHED_CHECKS = {"interface", "security", "audit", "lifecycle", "tests", "build"}


def certify(
    *args: str | Path, cache: Path, cwd: Path | None = None, vuln_db: str | None = None
) -> subprocess.CompletedProcess[str]:
    """certify run as a user runs it; $AITBC_VULN_DB only when ``vuln_db`` says so."""
    env = {k: v for k, v in os.environ.items() if k != "AITBC_VULN_DB"}
    env |= {"XDG_CACHE_HOME": str(cache), **({"AITBC_VULN_DB": vuln_db} if vuln_db else {})}
    return subprocess.run([str(TOOL), "certify", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)  # fmt: skip


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and mtime: what "left exactly as it was" means."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(FAST_POLICY)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project("cli-good", "cli", tmp_path_factory.mktemp("good"))


def test_certified_plugin_every_output_dist_and_untouched_project(
    good: Path, policy: Path, tmp_path: Path
) -> None:
    before = tree(good)
    reports, dist, cache = tmp_path / "reports", tmp_path / "dist", tmp_path / "cache"
    formats = [a for f in ("text", "json", "junit", "sarif", "markdown") for a in ("--format", f)]
    run = certify(good, *formats, "--report-dir", reports, "--dist-dir", dist,
                  "--vuln-db", VULN_DB, "--policy", policy, cache=cache)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("CERTIFIED: cli-good 0.1.0")
    assert sorted(p.name for p in reports.iterdir()) == [
        "certification.json", "certification.junit.xml", "certification.md",
        "certification.sarif", "certification.txt",
    ]  # fmt: skip
    report = json.loads((reports / "certification.json").read_text())
    assert report["certified"] is True and report["reasons"] == []
    assert [c["id"] for c in report["checks"]] == [
        "structure", "metadata", "interface", "security", "audit", "lifecycle", "tests", "build",
    ]  # fmt: skip
    assert {c["status"] for c in report["checks"]} == {"passed"}
    assert set(report["toolkit"]["tools"]) >= {"mypy", "bandit", "pip-audit", "build", "pytest"}
    # The dist folder: the very artifacts the report names, checkable with sha256sum -c.
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True,
                          text=True)  # fmt: skip
    assert sums.returncode == 0 and sums.stdout.count(": OK") == 2, sums.stdout + sums.stderr
    wheel = next(dist.glob("*.whl"))
    by_name = {a["path"]: a for a in report["artifacts"]}
    assert by_name[wheel.name]["sha256"] == sha256_file(wheel)
    # The registry entry is the spec's format, and its checksum verifies the wheel.
    entry = report["registry_entry"]
    PluginRegistry.validate({"plugins": [entry]})
    registry = PluginRegistry({"plugins": [entry]})
    release = registry.get("cli-good", "0.1.0")
    assert release is not None and release.verify(wheel)
    assert entry["compatibility"] == {"min_aitbc_version": "1.0.0", "max_aitbc_version": "2.0.0"}
    assert tree(good) == before  # built in a copy: not a byte, not an mtime changed
    assert (cache / "aitbc-plugin").is_dir()  # XDG_CACHE_HOME is where the cache goes

    # Unchanged plugin, same cache: the expensive checks come from the cache ...
    again = certify(good, "--format", "json", "--vuln-db", VULN_DB, "--policy", policy,
                    cache=cache)  # fmt: skip
    assert again.returncode == 0, again.stderr
    warm = json.loads(again.stdout)
    assert {c["id"] for c in warm["checks"] if c["cached"]} == CACHED_CHECKS
    # ... the plugin is not imported again to ask for its metadata (its answer was
    # quiet, and is kept), yet the registry entry is the same ...
    assert len(list((cache / "aitbc-plugin" / "answers").glob("*.json"))) == 1
    assert warm["registry_entry"] == report["registry_entry"]
    # ... and the unchanged tree is not built again: the very same sdist (whose gzip
    # header holds the build time) comes back, with the same checksums.
    assert warm["artifacts"] == report["artifacts"]
    assert "cached" in certify(good, "--vuln-db", VULN_DB, "--policy", policy, cache=cache).stdout
    # ... and --no-cache runs every one of them again.
    fresh = certify(good, "--format", "json", "--vuln-db", VULN_DB, "--policy", policy,
                    "--no-cache", cache=cache)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert not any(c["cached"] for c in json.loads(fresh.stdout)["checks"])


def test_an_edit_invalidates_only_what_reads_it(good: Path, policy: Path, tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "cli-good"
    shutil.copytree(good, project)
    cache = tmp_path / "cache"
    args = ("--format", "json", "--only", "security", "--only", "tests", "--policy", policy)
    assert certify(project, *args, cache=cache).returncode == 0
    test_file = project / "tests" / "test_plugin.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_added():\n    assert True\n")
    report = json.loads(certify(project, *args, cache=cache).stdout)
    cached = {c["id"]: c["cached"] for c in report["checks"] if c["status"] != "skipped"}
    assert cached == {"security": False, "tests": False}  # the tests run: both read them
    docs = project / "docs" / "configuration.md"
    docs.write_text(docs.read_text() + "\nOne more sentence.\n")
    report = json.loads(certify(project, *args, cache=cache).stdout)
    cached = {c["id"]: c["cached"] for c in report["checks"] if c["status"] != "skipped"}
    assert cached == {"security": True, "tests": True}  # neither reads the docs


def test_not_certified_exits_1_and_names_the_reason(tmp_path: Path, policy: Path) -> None:
    project = materialize(CASES["security-subprocess-shell"], tmp_path)
    run = certify(project, "--only", "security", "--policy", policy, cache=tmp_path / "c")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.startswith("FAILED (only: security): security-subprocess-shell 0.1.0\n")
    assert "security failed" in run.stdout and "B602" in run.stdout
    # `import subprocess` (B404) is below the policy's threshold: a note, not a failure.
    assert any(line.startswith("    note: plugin.py:") and line.endswith(
        "[security.B404, severity low, confidence high] below the policy's threshold")
        for line in run.stdout.splitlines()), run.stdout  # fmt: skip
    # A policy that does not require the check passes, and still reports the finding.
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('required = ["structure", "metadata"]\n')
    run = certify(project, "--only", "security", "--only", "structure", "--only", "metadata",
                  "--format", "json", "--policy", lenient, cache=tmp_path / "c")  # fmt: skip
    report = json.loads(run.stdout)
    assert run.returncode == 0 and report["passed"] is True
    assert report["certified"] is False and report["registry_entry"] is None  # partial
    assert {c["id"]: c["status"] for c in report["checks"]}["security"] == "failed"


def test_a_passing_partial_run_exits_0_but_certifies_nothing(
    good: Path, policy: Path, tmp_path: Path
) -> None:
    """A fast subset of the checks (as a CI step may run): exit 0, and no certification."""
    only = ("--only", "metadata", "--only", "interface", "--only", "security")
    reports = tmp_path / "reports"
    run = certify(good, *only, "--format", "text", "--format", "json", "--report-dir", reports,
                  "--policy", policy, cache=tmp_path / "c")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(
        "PASSED (only: metadata, interface, security): cli-good 0.1.0\n"
        "This is not a certification: only the named checks ran (certify without --only).\n"
    )
    assert "CERTIFIED" not in run.stdout
    report = json.loads((reports / "certification.json").read_text())
    assert (report["certified"], report["passed"]) == (False, True)
    assert report["only"] == ["metadata", "interface", "security"]
    assert report["registry_entry"] is None
    outputs = subprocess.run([str(TOOL), "ci", "outputs", str(reports / "certification.json")],
                             capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                             timeout=60)  # fmt: skip
    assert outputs.returncode == 0, outputs.stderr
    assert "certified=false\n" in outputs.stdout and "registry-entry=\n" in outputs.stdout


def test_unauditable_dependency_is_incomplete_never_passed(good: Path, tmp_path: Path) -> None:
    """Online, where the index serves no vulnerability data: incomplete, not certified,
    unless the user accepts it explicitly."""
    run = certify(good, "--only", "audit", "--format", "json", cache=tmp_path / "c")
    report = json.loads(run.stdout)
    audit = {c["id"]: c for c in report["checks"]}["audit"]
    if audit["status"] == "passed":  # pragma: no cover - a machine with a vulnerability service
        pytest.skip("this machine reaches a vulnerability service: the audit completed")
    assert run.returncode == 1 and audit["status"] == "incomplete", audit
    reason = next(r for r in report["reasons"] if r.startswith("audit incomplete"))
    # One line: what is missing, and both ways to give it; not pip-audit's "Dependency
    # not found on PyPI", which names the wrong thing (the package is there).
    assert "\n" not in reason and "not found on PyPI" not in reason, reason
    assert "no OSV records given" in reason, reason
    assert reason.endswith("audit offline with --vuln-db DIR or AITBC_VULN_DB=DIR"), reason
    allowed = certify(good, "--only", "audit", "--allow-incomplete-audit", cache=tmp_path / "c")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_vuln_db_defaults_to_the_environment_variable(good: Path, tmp_path: Path) -> None:
    run = certify(good, "--only", "audit", "--format", "json", cache=tmp_path / "c",
                  vuln_db=str(VULN_DB))  # fmt: skip
    audit = {c["id"]: c for c in json.loads(run.stdout)["checks"]}["audit"]
    assert run.returncode == 0 and audit["status"] == "passed", audit
    assert f"(local OSV records in {VULN_DB})" in audit["summary"]


def test_help_says_what_a_user_can_use(tmp_path: Path) -> None:
    shown = subprocess.run([str(TOOL), "certify", "--help"], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    text = " ".join(shown.stdout.split())
    assert shown.returncode == 0
    assert "checks/policy.toml" not in text  # an internal path means nothing to a user
    assert "its settings override the toolkit's built-in policy" in text
    assert "[env var: AITBC_VULN_DB]" in text
    cpus = min(32, len(os.sched_getaffinity(0)))
    assert f"[default: (the number of CPUs available, {cpus} here)" in text
    taskset = shutil.which("taskset")
    if taskset is not None:  # one CPU allowed: the default follows the affinity mask
        one = subprocess.run([taskset, "-c", "0", str(TOOL), "certify", "--help"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "(the number of CPUs available, 1 here)" in " ".join(one.stdout.split())


BAD_POLICIES = {
    "not-toml.toml": ("required = [", "is not valid TOML"),
    "unknown-key.toml": ("colour = 'red'\n", "unknown setting 'colour'"),
    "wrong-type.toml": ("[lifecycle]\nmemory_mb = 'lots'\n", "memory_mb has the wrong type"),
    "unknown-check.toml": ('required = ["speed"]\n', "unknown check(s) in required"),
    "bad-level.toml": ("[security]\nseverity = 'extreme'\n", "security.severity must be one of"),
    "negative.toml": ("[lifecycle]\ncpu_s = -1\n", "lifecycle.cpu_s must be positive"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["no-such-dir"], "no-such-dir: no such project directory"),
        (["{empty}"], "is not a plugin project"),
        (["{good}", "--vuln-db", "no-such-db"], "--vuln-db no-such-db: no such directory"),
        (["{good}", "env:no-such-db"],
         "AITBC_VULN_DB=no-such-db (the default of --vuln-db): no such directory"),
        (["{good}", "--policy", "no-such.toml"], "cannot read policy no-such.toml"),
        (["{good}", "--format", "xml"], "Invalid value for '--format'"),
        (["{good}", "--only", "speed"], "--only: unknown check(s) speed"),
        (["{good}", "--format", "json", "--format", "sarif"], "several formats need --report-dir"),
        (["{good}", "--format", "json", "--format", "sarif", "--output", "r"],
         "--output takes exactly one --format"),
        (["{good}", "--jobs", "0"], "Invalid value for '--jobs'"),
        *[(["{good}", "--policy", f"{{tmp}}/{name}"], said)
          for name, (_, said) in BAD_POLICIES.items()],
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], said: str, good: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    for name, (text, _) in BAD_POLICIES.items():
        (tmp_path / name).write_text(text)
    filled = [a.format(good=good, empty=tmp_path / "empty", tmp=tmp_path) for a in args]
    from_env = [a.removeprefix("env:") for a in filled if a.startswith("env:")]
    filled = [a for a in filled if not a.startswith("env:")]
    run = certify(*filled, cache=tmp_path / "c", cwd=tmp_path,
                  vuln_db=from_env[0] if from_env else None)  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aitbc-plugin: "), run.stderr
    assert said in lines[0]
    assert not (tmp_path / "r").exists()  # nothing written on bad input
