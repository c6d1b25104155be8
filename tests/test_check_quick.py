"""`aitbc-plugin check`, the pre-commit hook: the interface and security checks on the
source, with the real mypy and bandit, building nothing and running no plugin code.
A good plugin passes; a careless one (a sync method where the SDK is async, a shell
command) and a hostile one (a `# type: ignore` over the interface error, a package
mapped outside the project, code that acts at import) fail or change nothing; bad input
is one line and exit 2.  And the real consumer: `pre-commit try-repo` runs the hook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from certify_support import load_cases, make_project, materialize
from conftest import REPO

TOOL = Path(sys.executable).parent / "aitbc-plugin"
CASES = {case.name: case for case in load_cases()}


def check(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOL), "check", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project("quick-good", "cli", tmp_path_factory.mktemp("quick"))


def test_a_good_plugin_passes_and_is_not_certified(good: Path) -> None:
    run = check(cwd=good)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("PASSED (only: interface, security)"), run.stdout
    assert "CERTIFIED" not in run.stdout
    run = check("--format", "json", "plugin.py", cwd=good)
    report = json.loads(run.stdout)
    assert (report["passed"], report["certified"]) == (True, False)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {"interface": "passed", "security": "passed"}
    security = next(c for c in report["checks"] if c["id"] == "security")
    assert [f["file"] for f in security["details"]["scanned_files"]] == ["plugin.py"]


def test_a_sync_method_where_the_sdk_is_async_fails_at_its_line(tmp_path: Path) -> None:
    project = materialize(CASES["interface-sync-method"], tmp_path)
    run = check("--format", "json", cwd=project)
    assert run.returncode == 1, run.stdout + run.stderr
    interface = next(c for c in json.loads(run.stdout)["checks"] if c["id"] == "interface")
    assert interface["status"] == "failed"
    assert any('"train"' in f["message"] and f["file"] == "plugin.py"
               for f in interface["findings"]), interface  # fmt: skip


def test_a_type_ignore_does_not_hide_the_interface_error(tmp_path: Path) -> None:
    """Hostile: the override's error silenced the way mypy allows; check strips it."""
    project = materialize(CASES["interface-signature"], tmp_path)
    plugin = project / "plugin.py"
    old = "async def get_balance(self, address: int) -> dict[str, Any]:"
    plugin.write_text(plugin.read_text().replace(old, old + "  # type: ignore[override]"))
    run = check("--format", "json", cwd=project)
    assert run.returncode == 1, run.stdout
    interface = next(c for c in json.loads(run.stdout)["checks"] if c["id"] == "interface")
    assert interface["details"]["disregarded_suppressions"] >= 1
    assert any(f["line"] == 160 for f in interface["findings"]), interface


def test_a_changed_file_with_a_shell_command_fails_security(tmp_path: Path) -> None:
    project = materialize(CASES["security-subprocess-shell"], tmp_path)
    run = check("plugin.py", cwd=project)
    assert run.returncode == 1
    assert "subprocess call with shell=True identified" in run.stdout
    # Only the files named are scanned (pre-commit names the changed ones): certify
    # scans every file, whatever changed.
    assert check("__init__.py", cwd=project).returncode == 0


def test_no_plugin_code_runs(tmp_path: Path) -> None:
    """Hostile: module code that acts when imported; check only reads it."""
    project = make_project("quick-acts", "base", tmp_path)
    marker = tmp_path / "ran"
    plugin = project / "plugin.py"
    acts = 'import os\nimport pathlib\n\npathlib.Path(os.environ["QUICK_MARKER"]).touch()\n'
    plugin.write_text(acts + plugin.read_text())
    run = check(cwd=project, env={"QUICK_MARKER": str(marker)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert not marker.exists()


def _pyproject(project: Path, old: str, new: str) -> None:
    path = project / "pyproject.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("missing", "pyproject.toml: cannot read it"),
        ("not-toml", "pyproject.toml: cannot read it"),
        ("no-entry-point", 'check needs one [project.entry-points."aitbc.plugins"] entry'),
        ("bad-entry-point", "is not 'module:Class'"),
        ("outside", "is not a folder of the project"),
        ("no-file", "no such file: nowhere.py"),
        ("no-project", "no such project directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(good: Path, tmp_path: Path, change: str,
                                          said: str) -> None:  # fmt: skip
    project = tmp_path / "p"
    shutil.copytree(good, project)
    args: list[str | Path] = []
    if change == "missing":
        (project / "pyproject.toml").unlink()
    elif change == "not-toml":
        (project / "pyproject.toml").write_text("[project\n")
    elif change == "no-entry-point":
        _pyproject(project, '[project.entry-points."aitbc.plugins"]', "[other]")
    elif change == "bad-entry-point":
        path = project / "pyproject.toml"
        path.write_text(re.sub(r'(?m)^quick-good = ".*"$', 'quick-good = "not an entry point"',
                               path.read_text()))  # fmt: skip
    elif change == "outside":  # hostile: the package mapped to a folder outside
        _pyproject(project, '"quick_good" = "."', '"quick_good" = ".."')
    elif change == "no-file":
        args = ["nowhere.py"]
    elif change == "no-project":
        args = ["--project", tmp_path / "absent"]
    run = check(*args, cwd=project)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == "" and run.stderr.count("\n") == 1, run.stderr
    assert said in run.stderr and "Traceback" not in run.stderr


@pytest.mark.integration
def test_pre_commit_try_repo_runs_the_hook(good: Path, tmp_path: Path) -> None:
    """The real consumer: pre-commit installs this repository as a hook repository
    (its own venv, `aitbc-plugins[toolkit]` from the checkout) and runs the hook on a
    plugin's changed file; a shell command added to it then fails the commit."""
    project = tmp_path / "plugin"
    shutil.copytree(good, project)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "plugin"]):
        subprocess.run(["git", *command], cwd=project, env=env, check=True, timeout=60)
    source = tmp_path / "hook-repo"  # try-repo needs a git repository: the tree as it is
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", ".demo",
                                                                 "__pycache__"))  # fmt: skip
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "toolkit"]):
        subprocess.run(["git", *command], cwd=source, env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    pre_commit = [str(Path(sys.executable).parent / "pre-commit"), "try-repo", str(source),
                  "aitbc-certify", "--files", "plugin.py", "--verbose"]  # fmt: skip
    run = subprocess.run(pre_commit, cwd=project, env=env, capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "aitbc-plugin check (interface, security)" in run.stdout
    assert "Passed" in run.stdout and "PASSED (only: interface, security)" in run.stdout
    plugin = project / "plugin.py"
    plugin.write_text("import subprocess\n" + plugin.read_text()
                      + "\n\ndef hook(command: str) -> int:\n"
                      "    return subprocess.call(command, shell=True)\n")  # fmt: skip
    run = subprocess.run(pre_commit, cwd=project, env=env, capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:]
    assert "Failed" in run.stdout and "shell=True" in run.stdout
