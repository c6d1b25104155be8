"""[build-system] requires is read, never executed, before the plugin's build runs:
any pyproject.toml either gives a list of valid requirements or one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.build_env import DEFAULT_REQUIRES, build_requirements
from aitbc.plugin_toolkit.errors import ToolkitError
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement


def project(tmp_path: Path, text: str | None) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    if text is not None:
        (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    return folder


def test_the_declared_requirements_sorted(tmp_path: Path) -> None:
    text = '[build-system]\nrequires = ["wheel", "setuptools>=77"]\n'
    assert build_requirements(project(tmp_path, text)) == ["setuptools>=77", "wheel"]


@pytest.mark.parametrize("text", [None, "[project]\nname = 'x'\n"])
def test_no_build_system_means_setuptools_legacy(tmp_path: Path, text: str | None) -> None:
    assert build_requirements(project(tmp_path, text)) == list(DEFAULT_REQUIRES)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[build-system\n", "pyproject.toml cannot be read"),
        ("[build-system]\nrequires = 'setuptools'\n", "must be a list of strings"),
        ("[build-system]\nrequires = [1]\n", "must be a list of strings"),
        ("[build-system]\nrequires = ['setup tools >']\n", "[build-system] requires"),
        ("build-system = 3\n", "must be a list of strings"),
    ],
)
def test_bad_build_systems_are_named(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ToolkitError, match=said.replace("[", r"\[").replace("]", r"\]")):
        build_requirements(project(tmp_path, text))


@settings(max_examples=80)
@given(st.text(max_size=80))
def test_any_pyproject_gives_requirements_or_one_error(tmp_path_factory: pytest.TempPathFactory,
                                                       text: str) -> None:  # fmt: skip
    folder = project(tmp_path_factory.mktemp("h"), f"[build-system]\n{text}")
    try:
        found = build_requirements(folder)
    except ToolkitError as exc:
        assert str(exc).startswith("pyproject.toml")
        return
    assert all(Requirement(r) for r in found)
