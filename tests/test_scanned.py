"""What the security check scans (checks/scanned.py), unit by unit: which project files
run, what the wheel's bytecode stands in for.  Nothing is built or run here; the check
over whole projects, with bandit, is tested in test_check_security.py."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.checks import scanned


def pyc(flags: int = 0) -> bytes:
    """A .pyc header (PEP 552 flags) and a byte of code."""
    return importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + bytes(8) + b"\xe3"


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("pkg/__pycache__/gone.cpython-311.pyc", pyc(), "whose source the wheel does not ship"),
        ("pkg/mod.pyc", pyc(), "outside __pycache__"),
        (
            "pkg/__pycache__/mod.cpython-311.pyc",
            pyc(0b01),
            "without checking it against its source",
        ),
        ("x.data/purelib/__pycache__/gone.cpython-311.pyc", pyc(), "does not ship"),
    ],
)
def test_bytecode_findings(name: str, data: bytes, why: str, tmp_path: Path) -> None:
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_bytes(data)
    shipped = [name, "pkg/mod.py"]
    [finding] = scanned.bytecode_findings(tmp_path, shipped, tmp_path / "empty-project")
    assert (finding.rule, finding.file) == ("security.bytecode-only", name)
    assert why in finding.message


def test_bytecode_beside_its_source_passes(tmp_path: Path) -> None:
    name = "pkg/__pycache__/mod.cpython-311.pyc"
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_bytes(pyc(0b11))  # hash-based, checked against the source
    assert scanned.bytecode_findings(tmp_path, [name, "pkg/mod.py"], tmp_path / "none") == []


def test_bytecode_in_the_project_fails(tmp_path: Path) -> None:
    (tmp_path / "helper.pyc").write_bytes(pyc())
    [finding] = scanned.bytecode_findings(tmp_path / "wheel", [], tmp_path)
    assert (finding.rule, finding.file) == ("security.bytecode-only", "helper.pyc")
    assert "bytecode in the project" in finding.message


def test_links_out_of_the_project_and_odd_files_are_not_read(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (tmp_path / "outside.py").write_text("X = 1\n")
    (project / "tests" / "test_a.py").write_text("import helper\n")
    (project / "tests" / "helper.py").symlink_to(tmp_path / "outside.py")
    (project / "tests" / "inside.py").symlink_to(project / "tests" / "test_a.py")
    os.mkfifo(project / "tests" / "test_pipe.py")
    shown = {t.shown for t in scanned.project_targets(project)}
    assert shown == {"tests/test_a.py", "tests/inside.py"}


def test_relative_and_constant_imports_are_followed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for name, text in {
        "tests/__init__.py": "", "tests/test_a.py": "from . import util\nfrom .pkg import sub\n",
        "tests/util.py": "", "lib/pkg/__init__.py": "", "lib/pkg/sub.py": "",
        "conftest.py": "import importlib\nimportlib.import_module('lib.loaded')\n",
        "lib/loaded.py": "", "lib/unused.py": "",
    }.items():  # fmt: skip
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    why = {t.shown: t.why for t in scanned.project_targets(project)}
    assert why["lib/loaded.py"] == "imported by conftest.py"
    assert "lib/unused.py" not in why and "lib/pkg/sub.py" not in why  # .pkg is tests/pkg
