"""The base an edited plugin's environment is copied from, and the one made while a
plugin builds, must be the same: both are keyed by what an install would act on, read
from the wheel's METADATA or from pyproject.toml (never by running setup.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.bases import (
    installed_requirements,
    modules_of,
    project_requirements,
    wheel_requirements,
)
from certify_support import make_project
from conftest import run_checked
from hypothesis import given
from hypothesis import strategies as st


def test_a_generated_plugin_declares_in_pyproject_what_its_wheel_requires(
    tmp_path: Path,
) -> None:
    project = make_project("base-match", "blockchain", tmp_path)
    dist = tmp_path / "dist"
    run_checked([sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(dist),
                 str(project)])  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    assert project_requirements(project) == wheel_requirements(wheel) == ["aitbc-plugins>=1.0.0"]
    assert "base_match/plugin.py" in (modules_of(wheel) or [])


NAMES = st.sampled_from(["idna", "Idna", "IDNA", "idna_", "py-yaml", "Py_YAML"])


@given(name=NAMES, spaces=st.sampled_from(["", " ", "  "]))
def test_spelling_does_not_change_the_key(name: str, spaces: str) -> None:
    name = name.rstrip("_")
    plain = installed_requirements([f"{name}>=1.0,<2"])
    assert installed_requirements([f"{name}{spaces}>={spaces}1.0 ,{spaces}<2"]) == plain
    assert plain == [f"{name.lower().replace('_', '-')}<2,>=1.0"]


@given(extra=st.text(alphabet="abcdefghij", min_size=1, max_size=8))
def test_only_what_an_install_acts_on_counts(extra: str) -> None:
    assert installed_requirements([f'pytest>=8; extra == "{extra}"']) == []
    assert installed_requirements(['tomli; python_version < "3.0"', "idna"]) == ["idna"]
    marked = installed_requirements(['idna; python_version >= "3.0"'])
    assert marked == installed_requirements(["idna"]) == ["idna"]


@pytest.mark.parametrize("line", ["not a requirement!", "idna >>> 1", ""])
def test_an_unreadable_requirement_gives_no_key(line: str) -> None:
    assert installed_requirements(["idna", line]) is None


@pytest.mark.parametrize(
    "text",
    [
        "",  # no pyproject.toml at all is the test below
        "[project\n",
        '[project]\nname = "x"\ndynamic = ["dependencies"]\n',
        '[project]\nname = "x"\ndependencies = "idna"\n',
        '[project]\nname = "x"\ndependencies = [1]\n',
    ],
)
def test_dependencies_not_declared_statically_give_none(tmp_path: Path, text: str) -> None:
    if text:
        (tmp_path / "pyproject.toml").write_text(text)
    assert project_requirements(tmp_path) is None
