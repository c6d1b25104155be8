"""`aitbc-plugin new` with the built-in template: the shipped bundle, prompting in a
terminal, and the installed wheel working from any directory."""

from __future__ import annotations

import filecmp
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.scaffold.bundle import IGNORED, bundle_versions
from aitbc.plugin_toolkit.scaffold.git import git
from conftest import REPO, VULN_DB, make_venv

TEMPLATE = REPO / "templates" / "plugin"
BUNDLE = REPO / "templates" / "plugin.bundle"
CLI = [sys.executable, "-m", "aitbc.plugin_toolkit"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def _files(root: Path) -> set[str]:
    ignored = {".git"}
    found = set()
    for path in root.rglob("*"):
        parts = set(path.relative_to(root).parts)
        if path.is_file() and not parts & ignored and not IGNORED(str(path.parent), [path.name]):
            found.add(str(path.relative_to(root)))
    return found


def test_shipped_bundle_holds_the_current_template(tmp_path: Path) -> None:
    """Editing templates/plugin/ needs a release (.ci/release_template.py), or `new` and
    `update` would not give what the working tree says."""
    newest = str(bundle_versions(BUNDLE)[-1])
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--branch", newest, str(BUNDLE), str(clone))
    ours, shipped = _files(TEMPLATE), _files(clone)
    assert ours == shipped, f"release the template: {sorted(ours ^ shipped)}"
    _, mismatch, errors = filecmp.cmpfiles(TEMPLATE, clone, sorted(ours), shallow=False)
    assert mismatch == [] and errors == [], f"release the template: {mismatch + errors}"


@pytest.mark.parametrize("kind", ["base", "cli", "blockchain", "ai"])
def test_new_project_passes_its_own_tests(kind: str, tmp_path: Path) -> None:
    made = subprocess.run(
        [*CLI, "new", f"fresh-{kind}", "--kind", kind, "--defaults"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"Created fresh-{kind} ({kind}) in fresh-{kind}: 14 files")
    project = tmp_path / f"fresh-{kind}"
    assert git(project, "status", "--porcelain") == ""  # committed, ready for `update`
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, capture_output=True, text=True)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr


def converse(
    argv: list[str], cwd: Path, replies: dict[str, list[str]], timeout: float = 60
) -> tuple[int, str]:
    """Run ``argv`` in a real terminal; answer prompts containing a key with its next reply
    (clearing the pre-filled default first), and press Enter on any other prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(cwd)
        os.execv(argv[0], argv)
    output, last, deadline = b"", time.monotonic(), time.monotonic() + timeout
    pending = {k: list(v) for k, v in replies.items()}
    seen = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            last = time.monotonic()
            continue
        if time.monotonic() - last < 0.5 or len(output) == seen:
            continue  # answer only a prompt that has appeared, never ahead of it
        text = ANSI.sub("", output[seen:].decode(errors="replace"))
        seen = len(output)
        if text.rstrip(" ").endswith("\n"):
            continue  # the echo of an accepted answer: no question is waiting
        answer = "\r"
        for key, queue in pending.items():
            if key in text and queue:
                answer = "\x7f" * 40 + queue.pop(0) + "\r"
                break
        if os.environ.get("CONVERSE_DEBUG"):
            print(repr(text[-120:]), "->", repr(answer[-20:]))
        os.write(fd, answer.encode())
        last = time.monotonic()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), ANSI.sub("", output.decode(errors="replace"))


def test_in_a_terminal_new_asks_and_validates(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("aitbc-plugin")
    code, text = converse(
        [str(script), "new", "prompted", "--kind", "ai", "--author", "Ada"], tmp_path,
        {"Plugin version": ["not-a-version", "2.5.0"]},
    )  # fmt: skip
    assert code == 0, text
    assert "version must look like 1.2.3" in text  # copier's validator spoke, then re-asked
    assert "Name of the plugin class" in text  # a question we did not answer was asked
    answers = (tmp_path / "prompted" / ".copier-answers.yml").read_text()
    assert "version: 2.5.0" in answers and "author: Ada" in answers and "kind: ai" in answers
    assert "Author name" not in text  # given on the command line: not asked again


@pytest.mark.integration
def test_installed_wheel_works_from_any_directory(tmp_path: Path, sdk_wheel: Path) -> None:
    """`pip install "aitbc-plugins[toolkit]"` then new, update --check and certify, run
    far from this checkout: the templates and checks travel in the wheel."""
    python = make_venv(tmp_path / "venv", f"{sdk_wheel}[toolkit]")
    tool = python.with_name("aitbc-plugin")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    made = subprocess.run([str(tool), "new", "far-away", "--kind", "blockchain", "--defaults"],
                          cwd=elsewhere, capture_output=True, text=True, env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    check = subprocess.run([str(tool), "update", "--check"], cwd=elsewhere / "far-away",
                           capture_output=True, text=True, env=env)  # fmt: skip
    newest = bundle_versions(BUNDLE)[-1]
    assert check.returncode == 0 and f"up to date (template {newest})" in check.stdout, check
    where = subprocess.run([str(python), "-c", "import aitbc.plugin_toolkit.data as r;"
                            "print(r.data_dir('templates'), r.data_dir('checks'))"],
                           capture_output=True, text=True, cwd=elsewhere)  # fmt: skip
    assert str(REPO) not in where.stdout and "site-packages" in where.stdout
    certified = subprocess.run(
        [str(tool), "certify", "far-away", "--vuln-db", str(VULN_DB), "--format", "json"],
        cwd=elsewhere, capture_output=True, text=True, env=env,
    )  # fmt: skip
    report = json.loads(certified.stdout)
    assert certified.returncode == 0 and report["certified"] is True, report["reasons"]
