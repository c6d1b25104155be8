"""The parsers and judges behind the audit's declared set, with real files and the real
advisory-db: whether two specifiers can both hold, what a range admits, which imports no
requirement declares."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.checks._imports import imports_of, judge_imports, providers
from aitbc.plugin_toolkit.certify.checks._ranges import admitted
from aitbc.plugin_toolkit.certify.checks._shipped import ShippedCode
from aitbc.plugin_toolkit.certify.osv import is_affected, load_index
from aitbc.plugin_toolkit.certify.specifiers import can_both_hold
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ADVISORY_DB = REPO.parent / "shared" / "advisory-db"
VERSIONS = ["0.9", "1.0", "1.0.1", "1.1", "1.2", "1.2.3", "2.0", "2.0.1", "2.1", "3.0"]
OPERATORS = ["==", "!=", ">=", "<=", ">", "<", "~="]
clauses = st.builds(
    lambda op, v, star: f"{op}{v}.*" if star and op in ("==", "!=") else f"{op}{v}",
    st.sampled_from(OPERATORS), st.sampled_from(VERSIONS), st.booleans(),
)  # fmt: skip
specifier_sets = st.lists(clauses, min_size=1, max_size=3).map(lambda c: SpecifierSet(",".join(c)))
probes = st.sampled_from([*VERSIONS, "1.0.5", "1.5", "2.0.0.1", "2.5", "4"]).map(Version)


@settings(max_examples=400, deadline=None)
@given(specifier_sets, specifier_sets, st.lists(probes, min_size=1, max_size=8))
def test_a_conflict_is_never_invented(
    a: SpecifierSet, b: SpecifierSet, seen: list[Version]
) -> None:
    """Whenever some version satisfies both, they are never called a conflict."""
    if any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in seen):
        assert can_both_hold(a, b)


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ("==5.1", ">=6.0", False),
        ("<6", ">=6.0", False),
        ("~=5.3", ">=6", False),
        ("==5.*", ">=6", False),
        (">=5,!=6.0", "==6.0", False),
        (">=5.1", ">=6.0", True),
        ("<7", ">=6.0", True),
        ("!=6.0", ">=6.0", True),
        ("===weird", ">=6.0", True),  # unreadable: admits everything, no conflict invented
    ],
)
def test_known_conflicts(a: str, b: str, both: bool) -> None:
    assert can_both_hold(SpecifierSet(a), SpecifierSet(b)) is both


@pytest.fixture(scope="module")
def index():  # type: ignore[no-untyped-def]
    return load_index(ADVISORY_DB)


@settings(max_examples=150, deadline=None)
@given(
    specifier=specifier_sets.map(lambda s: str(s)).filter(bool),
    sdk=st.sampled_from(["", ">=1.25", "<2"]),
)
def test_what_a_range_admits_is_what_the_records_say(index, specifier: str, sdk: str) -> None:  # type: ignore[no-untyped-def]
    """Every affected release a record names that the range (and the SDK's) admits is
    reported; the advised bound is admitted and affected by no record."""
    requirement = Requirement(f"urllib3{specifier}")
    theirs = Requirement(f"urllib3{sdk}") if sdk else None
    found = admitted(requirement, "urllib3", index, theirs)
    allowed = SpecifierSet(specifier) & SpecifierSet(sdk)
    records = index.query("urllib3", None)
    named = {Version(v) for r in records for a in r.affected for v in a.versions}
    hit = {v for v in named if not v.is_prerelease and allowed.contains(v, prereleases=True)}
    if hit:
        assert found is not None and found.lowest <= min(hit) and found.highest >= max(hit)
    if found is not None and found.fix is not None:
        assert allowed.contains(found.fix, prereleases=True)
        assert not any(is_affected(r, "urllib3", str(found.fix)) for r in records)


def _shipped(tmp_path: Path, files: dict[str, str]) -> ShippedCode:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    return ShippedCode(tmp_path, tuple(sorted(files)), {n: n.split("/", 1)[1] for n in files})


def test_imports_no_requirement_provides_are_named_at_their_line(tmp_path: Path) -> None:
    import site

    shipped = _shipped(tmp_path, {
        "my_plugin/__init__.py": "",
        "my_plugin/plugin.py": """\
            from __future__ import annotations
            import json, yaml
            from typing import TYPE_CHECKING
            from . import helpers
            from my_plugin import helpers as again
            if TYPE_CHECKING:
                import mypy
            try:
                import ujson
            except ImportError:
                ujson = None

            def memory():
                import psutil
                return psutil

            def testing():
                import pytest
            """,
        "my_plugin/helpers.py": "",
        "my_plugin/tests/test_plugin.py": "import pytest\nimport hypothesis\n",
    })  # fmt: skip
    provided = providers(site.getsitepackages())
    judged = judge_imports(shipped, declared={"pyyaml"}, brought={}, sdk_side=set(),
                           provided=provided)  # fmt: skip
    said = [(f.rule, f.file, f.line, f.message.split(",")[0]) for f in judged.findings]
    assert said == [
        ("audit.undeclared-import", "plugin.py", 14, "imports psutil"),
        ("audit.undeclared-import", "plugin.py", 18, "imports pytest"),
    ], said
    assert "installed for certification" in judged.findings[1].message
    assert "which no requirement declares" in judged.findings[0].message


def test_imports_that_come_with_a_dependency_or_the_sdk_are_notes(tmp_path: Path) -> None:
    import site

    shipped = _shipped(tmp_path, {"p/__init__.py": "import yaml\nimport idna\n"})
    provided = {**providers(site.getsitepackages()), "idna": {"idna"}}
    judged = judge_imports(shipped, declared={"requests"}, brought={"idna": "requests"},
                           sdk_side={"pyyaml"}, provided=provided)  # fmt: skip
    assert judged.findings == []
    assert judged.notes == [
        "__init__.py:1: yaml comes with the SDK (aitbc-plugins): declare it, as you import it",
        "__init__.py:2: idna comes only with requests: declare it, as you import it",
    ]


@given(st.text(max_size=200))
def test_any_file_is_read_without_raising(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.py"
        path.write_text(text, encoding="utf-8", errors="replace")
        for item in imports_of(path, "m.py"):
            assert item.module and item.line >= 1
