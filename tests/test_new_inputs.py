"""`aitbc-plugin new`: bad input is one line and exit 2, and nothing is ever left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.errors import ToolkitError
from aitbc.plugin_toolkit.scaffold.names import check_plugin_name
from hypothesis import given
from hypothesis import strategies as st

CLI = [sys.executable, "-m", "aitbc.plugin_toolkit"]


def aitbc_plugin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aitbc-plugin: ") and text in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1bad"], "must match"),
        (["my_plugin"], "must match"),
        (["-x"], "No such option"),
        (["a" * 65], "at most 64"),
        (["json"], "standard-library module"),
        (["import"], "a Python keyword"),
        (["class"], "a Python keyword"),
        (["asyncio"], "standard-library module"),
        (["tests"], "reserved"),
        (["good-name", "--kind", "wizard"], "Invalid value for '--kind'"),
        (["good-name", "--template", "/nonexistent/template"], "no such directory"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = aitbc_plugin("new", *args, "--defaults", cwd=tmp_path)
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_dir_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("the user's file")
    before = os.stat(target / "mine.txt")
    result = aitbc_plugin("new", "taken", "--defaults", cwd=tmp_path)
    assert_one_line_error(result, "exists and is not empty")
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert (target / "mine.txt").read_text() == "the user's file"
    assert os.stat(target / "mine.txt").st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging dir left


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = aitbc_plugin("new", "p", "-o", "file", "--defaults", cwd=tmp_path)
    assert_one_line_error(result, "is not a directory")


@given(st.text(max_size=80))
def test_name_check_raises_only_toolkit_error(name: str) -> None:
    try:
        module = check_plugin_name(name)
    except ToolkitError as exc:
        assert "\n" not in str(exc)
    else:
        assert module.isidentifier() and len(name) <= 64


# -- external templates ---------------------------------------------------------------
def write_copier_template(
    root: Path, extra_config: str = "", files: dict[str, str] | None = None
) -> Path:
    root.mkdir()
    (root / "copier.yml").write_text(
        "plugin_name:\n  type: str\nkind:\n  type: str\n  default: base\n" + extra_config
    )
    for name, text in (files or {"README.md.jinja": "# {{ plugin_name }} ({{ kind }})\n"}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def write_cookiecutter_template(root: Path, hook: str | None = None) -> Path:
    project = root / "{{cookiecutter.project_slug}}"
    project.mkdir(parents=True)
    (root / "cookiecutter.json").write_text(json.dumps(
        {"project_name": "x", "project_slug": "{{ cookiecutter.project_name }}", "author": "me"}
    ))  # fmt: skip
    (project / "README.md").write_text(
        "{{ cookiecutter.project_name }} by {{ cookiecutter.author }}\n"
    )
    if hook is not None:
        (root / "hooks").mkdir()
        (root / "hooks" / "post_gen_project.py").write_text(hook)
    return root


def test_copier_template_from_a_path(tmp_path: Path) -> None:
    template = write_copier_template(tmp_path / "tpl")
    result = aitbc_plugin("new", "shiny", "--kind", "cli", "--template", str(template),
                          "--defaults", "--no-git", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Its kinds, layout and tests are its own: no "(base)", no Next of ours.
    assert result.stdout == f"Created shiny from {template} in shiny: 1 files\n"
    assert (tmp_path / "shiny" / "README.md").read_text() == "# shiny (cli)\n"
    assert not (tmp_path / "shiny" / ".git").exists()


def test_cookiecutter_template_is_detected(tmp_path: Path) -> None:
    template = write_cookiecutter_template(tmp_path / "cc")
    result = aitbc_plugin("new", "cookie-plugin", "--template", str(template), "--defaults",
                          "--author", "Ada", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = tmp_path / "cookie-plugin"
    assert result.stdout == (f"Created cookie-plugin from {template} in cookie-plugin: 1 files, "
                             "git repository with an initial commit\n")  # fmt: skip
    assert (made / "README.md").read_text() == "cookie-plugin by Ada\n"
    assert (made / ".git").is_dir()  # an initial commit, like every new project
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc", "cookie-plugin"]


def test_copier_template_with_tasks_needs_trust(tmp_path: Path) -> None:
    template = write_copier_template(tmp_path / "tpl", "_tasks:\n  - touch task-ran\n")
    refused = aitbc_plugin("new", "p1", "--template", str(template), "--defaults", cwd=tmp_path)
    assert_one_line_error(refused, "--trust")
    assert not (tmp_path / "p1").exists()
    trusted = aitbc_plugin("new", "p1", "--template", str(template), "--defaults", "--trust",
                           cwd=tmp_path)  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "p1" / "task-ran").exists()


@pytest.mark.parametrize("config", ["_migrations:\n  - version: v2\n    command: echo\n",
                                    "_jinja_extensions:\n  - jinja2.ext.do\n"])  # fmt: skip
def test_copier_migrations_and_extensions_need_trust(tmp_path: Path, config: str) -> None:
    template = write_copier_template(tmp_path / "tpl", config)
    refused = aitbc_plugin("new", "p1", "--template", str(template), "--defaults", cwd=tmp_path)
    assert_one_line_error(refused, "--trust")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tpl"]


def test_cookiecutter_hooks_need_trust(tmp_path: Path) -> None:
    template = write_cookiecutter_template(
        tmp_path / "cc", hook="open('hook-ran', 'w').write('yes')\n"
    )
    refused = aitbc_plugin("new", "p2", "--template", str(template), "--defaults", cwd=tmp_path)
    assert_one_line_error(refused, "hooks (post_gen_project.py)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc"]
    trusted = aitbc_plugin("new", "p2", "--template", str(template), "--defaults", "--trust",
                           cwd=tmp_path)  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "p2" / "hook-ran").read_text() == "yes"


def test_trusted_hook_that_rejects_is_its_words_and_one_line(tmp_path: Path) -> None:
    """Cookiecutter logs a failed hook with a traceback; the user sees the hook's own
    output and our one line, nothing else."""
    template = write_cookiecutter_template(
        tmp_path / "cc", hook="import sys\nprint('ERROR: that name is taken')\nsys.exit(1)\n"
    )
    result = aitbc_plugin("new", "p5", "--template", str(template), "--defaults", "--trust",
                          cwd=tmp_path)  # fmt: skip
    assert_one_line_error(result, "Hook script failed (exit status: 1)")
    assert result.stdout == "ERROR: that name is taken\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc"]


def test_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    template = write_copier_template(tmp_path / "tpl", files={
        "a.txt.jinja": "fine\n", "b.txt.jinja": "{{ undefined_function() }}\n",
    })  # fmt: skip
    result = aitbc_plugin("new", "p3", "--template", str(template), "--defaults", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tpl"]


def test_ctrl_c_midway_leaves_nothing(tmp_path: Path) -> None:
    template = write_cookiecutter_template(
        tmp_path / "cc", hook="import time\nopen('started', 'w').close()\ntime.sleep(30)\n"
    )
    process = subprocess.Popen(
        [*CLI, "new", "p4", "--template", str(template), "--defaults", "--trust"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        # As in a terminal: a suite started as a background job (bash's `cmd &`) would
        # hand its children SIGINT ignored, and Ctrl-C would then mean nothing.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.rglob("started")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.rglob("started")), "the hook never ran"
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; nothing was changed" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc"]
