"""A plugin author's first steps as they read them: the "Next:" that `new` prints works
in a fresh venv where the toolkit came from this repository (aitbc-plugins is on no
package index), `aitbc-plugin test` passes pytest's verdict through, and nothing a
generated project says promises what does not work (plain `copier update`)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, make_venv

CLI = [sys.executable, "-m", "aitbc.plugin_toolkit"]
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"  # no toolkit on it, and no pytest of ours


def run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def next_command(stdout: str) -> str:
    found = [line.removeprefix("Next: ") for line in stdout.splitlines()
             if line.startswith("Next: ")]  # fmt: skip
    assert len(found) == 1, stdout
    return found[0]


@pytest.fixture(scope="module")
def toolkit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the toolkit installed from this checkout, as .ci/dev.py does."""
    return make_venv(tmp_path_factory.mktemp("first-steps") / "venv", "-e", f"{REPO}[toolkit]")


@pytest.mark.integration
@pytest.mark.parametrize("activated", [True, False], ids=["venv-on-PATH", "script-by-path"])
def test_the_printed_next_commands_run_the_tests(
    toolkit_venv: Path, tmp_path: Path, activated: bool
) -> None:
    """Run exactly what `new` prints, in a shell, as the user would paste it."""
    bin_dir = toolkit_venv.parent
    path = f"{bin_dir}:{BASE_PATH}" if activated else BASE_PATH
    env = {**os.environ, "PATH": path, "PYTHONPATH": ""}
    env.pop("VIRTUAL_ENV", None)
    made = run([str(bin_dir / "aitbc-plugin"), "new", "first-steps", "--kind", "cli",
                "--defaults"], tmp_path, env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    command = next_command(made.stdout)
    tool = "aitbc-plugin" if activated else str(bin_dir / "aitbc-plugin")
    assert command == f"cd first-steps && {tool} test"
    ran = run(["bash", "-c", command], tmp_path, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"^=+ \d+ passed", ran.stdout, re.MULTILINE), ran.stdout
    assert "ModuleNotFoundError" not in ran.stdout + ran.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("project")
    made = run([*CLI, "new", "tested", "--defaults"], where)
    assert made.returncode == 0, made.stderr
    return where / "tested"


@pytest.mark.integration
def test_pytest_status_and_arguments_pass_through(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tested"
    shutil.copytree(project, copy)
    none = run([*CLI, "test", str(copy), "--", "-k", "no_test_has_this_name"], tmp_path)
    assert none.returncode == 5, none.stdout + none.stderr  # pytest's "nothing collected"
    (copy / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()}
    failed = run([*CLI, "test"], copy)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()}
    assert after == before  # built and run in copies: the project is left as it was
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED tests/test_broken.py::test_broken" in failed.stdout
    assert re.search(r"1 failed, \d+ passed", failed.stdout), failed.stdout
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize(
    ("setup", "args", "said"),
    [
        ("none", ["test", "no-such-dir"], "no-such-dir: no such project directory"),
        ("empty", ["test", "empty"], "is not a plugin project"),
        ("no-tests", ["test", "proj"], "has no tests/ folder to run"),
        ("none", ["test", ".", "-k", "x"], "pytest's arguments go after --"),
        ("none", ["test", "a", "b"], "pytest's arguments go after --"),
    ],
)
def test_test_bad_input_is_one_line_exit_2(
    tmp_path: Path, setup: str, args: list[str], said: str
) -> None:
    (tmp_path / "empty").mkdir()
    if setup == "no-tests":
        (tmp_path / "proj").mkdir()
        (tmp_path / "proj" / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    result = run([*CLI, *args], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aitbc-plugin: ") and said in lines[0], lines


def test_plain_copier_update_is_promised_nowhere(project: Path, tmp_path: Path) -> None:
    """The answers file names the built-in template, which copier alone cannot follow:
    plain `copier update` fails (and changes nothing), so no generated file offers it,
    and the answers file and the docs say `aitbc-plugin update`."""
    copy = tmp_path / "tested"
    shutil.copytree(project, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    copier = Path(sys.executable).with_name("copier")
    plain = run([str(copier), "update", "--defaults"], copy)
    assert plain.returncode != 0
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    texts = {str(p.relative_to(copy)): p.read_text(errors="replace") for p in copy.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(copy).parts}  # fmt: skip
    promising = [name for name, text in texts.items() if "copier update" in text]
    assert promising == [], promising
    answers = texts[".copier-answers.yml"]
    assert "_src_path: aitbc-plugin:builtin" in answers and "aitbc-plugin update" in answers
    assert "aitbc-plugin update" in texts["docs/README.md"]
    check = run([*CLI, "update", "--check"], copy)
    assert check.returncode == 0 and "is up to date" in check.stdout, check.stderr


def test_generated_docs_give_the_one_instruction(project: Path) -> None:
    """One instruction for running the tests, and no install hint that needs
    aitbc-plugins on a package index or a build backend the project does not use."""
    texts = {str(p.relative_to(project)): p.read_text() for p in project.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(project).parts}  # fmt: skip
    readme = texts["docs/README.md"]
    assert "aitbc-plugin test" in readme
    for name, text in texts.items():
        assert "pip install -e" not in text, name
        assert ".[dev]" not in text and ".[test]" not in text, name
        assert "hatch" not in text, name  # the project is built by setuptools


def _dev_script_in(root: Path) -> ModuleType:
    """.ci/dev.py as it would run from a checkout at ``root`` (beside no ../shared)."""
    copy = root / "repo" / ".ci" / "dev.py"
    copy.parent.mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "dev.py", copy)
    spec = importlib.util.spec_from_file_location("dev_copy", copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_without_advisory_data_says_so_and_that_it_skips_the_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AITBC_VULN_DB", raising=False)
    dev = _dev_script_in(tmp_path)
    assert dev.vulnerability_db() == []
    said = capsys.readouterr().err
    assert said.count("\n") == 1, said
    assert f"AITBC_VULN_DB is not set and {tmp_path / 'shared' / 'advisory-db'} does not" in said
    assert "the host demo is skipped" in said
    assert dev.skipped_host_demo(1).startswith("skipped the host demo (examples/host_demo.py)")
    # With the variable set, certify reads it itself: the demo passes nothing.
    monkeypatch.setenv("AITBC_VULN_DB", str(tmp_path))
    assert dev.vulnerability_db() == [] and capsys.readouterr().err == ""
    (tmp_path / "shared" / "advisory-db").mkdir(parents=True)
    monkeypatch.delenv("AITBC_VULN_DB")
    assert dev.vulnerability_db() == ["--vuln-db", str(tmp_path / "shared" / "advisory-db")]


def test_test_help_shows_where_pytest_arguments_go(tmp_path: Path) -> None:
    shown = run([*CLI, "test", "--help"], tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.startswith("Usage: aitbc-plugin test [OPTIONS] [PATH] [-- PYTEST-ARGS...]")
