"""The `build` check on what a wheel installs: hand-written wheels (zipfile), one bad
member each, and what a user sees (rule id, the member named in the message and as
the finding's file).  No build runs here: tests/test_check_build_sdist.py has the
sdist, the check as a whole and the real builds."""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy, PluginInfo
from aitbc.plugin_toolkit.certify.checks import _shipped
from aitbc.plugin_toolkit.certify.checks._archive import capped, unsafe_reason
from aitbc.plugin_toolkit.certify.checks._entry_points import read_entry_points
from aitbc.plugin_toolkit.certify.checks._wheel_contents import WheelContents, inspect_wheel
from aitbc.plugin_toolkit.certify.checks.interface import InterfaceCheck
from aitbc.plugin_toolkit.certify.checks.security import SecurityCheck
from aitbc.plugin_toolkit.certify.model import CheckStatus, Finding, Severity
from aitbc.plugin_toolkit.certify.policy import BuildLimits, load_policy
from aitbc.plugin_toolkit.certify.runner import run_check
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

CHECKS_DIR = REPO / "checks"
MODULE = "hand_made"
INFO = f"{MODULE}-1.0.0.dist-info"
PLUGIN = PluginInfo("hand-made", "1.0.0", "hand-made", MODULE, f"{MODULE}.plugin:HandMadePlugin")
ENTRY_POINTS = f"[aitbc.plugins]\nhand-made = {PLUGIN.entry_point}\n"
GOOD = {
    f"{MODULE}/__init__.py": "",
    f"{MODULE}/plugin.py": "class HandMadePlugin:\n    pass\n",
    f"{INFO}/METADATA": "Metadata-Version: 2.1\nName: hand-made\nVersion: 1.0.0\n",
    f"{INFO}/entry_points.txt": ENTRY_POINTS,
    f"{INFO}/WHEEL": "Wheel-Version: 1.0\n",
    f"{INFO}/RECORD": "",
}


def wheel_of(
    tmp_path: Path,
    extra: dict[str, Any] | None = None,
    *,
    drop: tuple[str, ...] = (),
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """GOOD with ``extra`` members added (or replacing), ``drop`` left out."""
    wheel = tmp_path / f"{MODULE}-1.0.0-py3-none-any.whl"
    members = {**GOOD, **(extra or {})}
    with zipfile.ZipFile(wheel, "w", compression) as archive:
        for name, data in members.items():
            if name not in drop:
                archive.writestr(name, data)
    return wheel


def inspect(
    wheel: Path, build: BuildLimits | None = None, plugin: PluginInfo = PLUGIN
) -> WheelContents:
    return inspect_wheel(wheel, plugin, build or BuildLimits())


def only(found: WheelContents, rule: str) -> Finding:
    """The one finding, of ``rule``."""
    assert [f.rule for f in found.findings] == [rule], found.findings
    return found.findings[0]


def test_a_good_wheel_has_no_finding(tmp_path: Path) -> None:
    found = inspect(wheel_of(tmp_path))
    assert found.findings == [] and found.notes == []
    assert found.metadata is not None and "Name: hand-made" in found.metadata


@pytest.mark.parametrize("member", ["evil.pth", f"{MODULE}/hook.pth", f"{INFO}/x.PTH"])
def test_a_pth_file_anywhere_is_refused(tmp_path: Path, member: str) -> None:
    finding = only(inspect(wheel_of(tmp_path, {member: "import os\n"})), "build.pth-file")
    assert finding.file == member and member in finding.message
    assert "runs the import lines" in finding.message


@pytest.mark.parametrize(
    ("scheme", "where"),
    [
        ("scripts", "bin/"),
        ("data", "prefix"),
        ("headers", "include/"),
        ("purelib", "site-packages"),
        ("platlib", "site-packages"),
    ],
)
def test_anything_under_dot_data_is_refused(tmp_path: Path, scheme: str, where: str) -> None:
    member = f"{MODULE}-1.0.0.data/{scheme}/pip"
    finding = only(inspect(wheel_of(tmp_path, {member: "#!/bin/sh\n"})), "build.data-dir")
    assert finding.file == member and member in finding.message and where in finding.message


@pytest.mark.parametrize(
    ("member", "what"),
    [
        ("requests/__init__.py", "the import package 'requests'"),
        ("aitbc/plugins/__init__.py", "the import package 'aitbc'"),
        ("six.py", "the top-level module 'six'"),
        ("_speedups.cpython-311-x86_64-linux-gnu.so", "the top-level module '_speedups'"),
        ("requests-2.0.dist-info/METADATA", "the metadata of another distribution"),
    ],
)
def test_another_import_name_is_refused(tmp_path: Path, member: str, what: str) -> None:
    finding = only(inspect(wheel_of(tmp_path, {member: "x = 1\n"})), "build.foreign-module")
    assert finding.file == member and member in finding.message and what in finding.message


def test_a_foreign_package_is_one_finding_naming_its_files(tmp_path: Path) -> None:
    files = {f"yaml/m{i}.py": "" for i in range(5)}
    finding = only(inspect(wheel_of(tmp_path, files)), "build.foreign-module")
    assert "yaml/m0.py, yaml/m1.py, yaml/m2.py and 2 more" in finding.message


def test_a_plugin_package_named_like_the_sdk_is_refused(tmp_path: Path) -> None:
    plugin = replace(PLUGIN, module="aitbc", entry_point="aitbc.plugins.evil:Evil")
    entry_points = f"[aitbc.plugins]\nhand-made = {plugin.entry_point}\n"
    sdk_files = {"aitbc/__init__.py": "", "aitbc/plugins/__init__.py": ""}
    wheel = wheel_of(
        tmp_path,
        {**sdk_files, f"{INFO}/entry_points.txt": entry_points},
        drop=(f"{MODULE}/__init__.py", f"{MODULE}/plugin.py"),
    )
    finding = only(inspect(wheel, plugin=plugin), "build.foreign-module")
    assert finding.message == (
        "the plugin's package aitbc/ is the import name of aitbc-plugins, which every plugin "
        "environment has: installing the wheel would overwrite it"
    )


def test_a_file_beside_the_package_is_stray(tmp_path: Path) -> None:
    finding = only(inspect(wheel_of(tmp_path, {"README.md": "hi"})), "build.stray-file")
    assert (finding.file, finding.message) == (
        "README.md",
        "README.md is outside the package hand_made/",
    )


@pytest.mark.parametrize("leaf", ["setup.py", "pyproject.toml", "setup.cfg", "requirements.txt"])
def test_a_build_file_in_the_package_is_refused(tmp_path: Path, leaf: str) -> None:
    member = f"{MODULE}/{leaf}"
    finding = only(inspect(wheel_of(tmp_path, {member: ""})), "build.scaffolding-in-wheel")
    assert (
        finding.file == member
        and f"{member} is a build file shipped in the wheel" in finding.message
    )


def test_tests_in_the_package_are_a_note_not_a_finding(tmp_path: Path) -> None:
    tests = {
        f"{MODULE}/tests/__init__.py": "",
        f"{MODULE}/tests/test_plugin.py": "",
        f"{MODULE}/tests/conftest.py": "",
        f"{MODULE}/test_more.py": "",
    }
    found = inspect(wheel_of(tmp_path, tests))
    assert found.findings == []
    assert len(found.notes) == 4
    assert f"{MODULE}/tests/test_plugin.py is a test file shipped in the wheel" in found.notes[1]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "[console_scripts]\npip = hand_made.plugin:main\n",
            "it installs a command 'pip' on PATH and would shadow",
        ),
        ("[gui_scripts]\nhello = hand_made.plugin:main\n", "it installs a command 'hello' on PATH"),
        ("[pytest11]\nhand = hand_made.plugin\n", "pytest would load it into every test run"),
    ],
)
def test_an_entry_point_outside_aitbc_plugins_is_refused(
    tmp_path: Path, text: str, said: str
) -> None:
    members = {f"{INFO}/entry_points.txt": ENTRY_POINTS + text}
    finding = only(inspect(wheel_of(tmp_path, members)), "build.entry-point")
    assert finding.file == f"{INFO}/entry_points.txt"
    group, name_value = text.splitlines()[0], text.splitlines()[1]
    assert f"the entry point {group} {name_value} is refused: {said}" in finding.message


def test_the_policy_may_allow_an_entry_point_group(tmp_path: Path) -> None:
    members = {f"{INFO}/entry_points.txt": ENTRY_POINTS + "[console_scripts]\nhello = x:y\n"}
    build = BuildLimits(allowed_entry_point_groups=("console_scripts",))
    assert inspect(wheel_of(tmp_path, members), build).findings == []


@pytest.mark.parametrize(
    "text",
    [
        ENTRY_POINTS + "; other = evil.plugin:Evil\n",  # configparser: a comment; hosts: a plugin
        "[aitbc.plugins]\nhand-made = hand_made.plugin:HandMadePlugin\n    evil = evil:Evil\n",
        "[aitbc.plugins]\nhand-made = hand_made.plugin:HandMadePlugin\n[aitbc.plugins]\nx = y:Z\n",
    ],
)
def test_entry_points_read_differently_by_hosts_are_refused(tmp_path: Path, text: str) -> None:
    finding = only(
        inspect(wheel_of(tmp_path, {f"{INFO}/entry_points.txt": text})), "build.entry-point"
    )
    assert (
        "a host would load something else" in finding.message or "cannot be read" in finding.message
    )


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.py", "a '..' component"),
        ("/etc/evil.py", "an absolute path"),
        (f"{MODULE}\\..\\evil.py", "a backslash"),
        ("C:/evil.py", "a colon"),
        (f"{MODULE}/a\x01.py", "a control character"),
    ],
)
def test_an_unsafe_path_is_a_finding(tmp_path: Path, member: str, why: str) -> None:
    finding = only(inspect(wheel_of(tmp_path, {member: "x = 1\n"})), "build.unsafe-path")
    assert finding.file == member and repr(member) in finding.message and why in finding.message


def test_a_duplicate_member_is_a_finding(tmp_path: Path) -> None:
    wheel = wheel_of(tmp_path)
    with pytest.warns(UserWarning), zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr(f"{MODULE}/plugin.py", "import os\n")
    finding = only(inspect(wheel), "build.duplicate-member")
    assert f"{MODULE}/plugin.py is in the wheel twice" in finding.message


def test_size_limits_come_from_the_headers(tmp_path: Path) -> None:
    wheel = wheel_of(tmp_path, {f"{MODULE}/data.bin": b"x" * 3000})
    found = inspect(wheel, BuildLimits(max_file_mb=0.002, max_artifact_mb=0.0025))
    messages = [(f.rule, f.message) for f in found.findings]
    assert ("build.too-large", f"{MODULE}/data.bin unpacks to 0.0 MiB, over 0.0 MiB") in messages
    assert any(m.startswith("the wheel unpacks to") for _, m in messages), messages


def test_a_zip_bomb_member_is_refused(tmp_path: Path) -> None:
    wheel = wheel_of(tmp_path, {f"{MODULE}/zeros.bin": bytes(4 * 1024 * 1024)})
    finding = only(inspect(wheel), "build.compression-ratio")
    assert finding.file == f"{MODULE}/zeros.bin" and "over the limit of 100:1" in finding.message
    stored = wheel_of(
        tmp_path, {f"{MODULE}/zeros.bin": bytes(4 * 1024 * 1024)}, compression=zipfile.ZIP_STORED
    )
    assert inspect(stored).findings == []


def test_an_unreadable_wheel_or_member_is_a_finding(tmp_path: Path) -> None:
    garbage = tmp_path / "x-1.0-py3-none-any.whl"
    garbage.write_bytes(b"not a zip")
    assert only(inspect(garbage), "build.unreadable").message.startswith("the wheel is unreadable")
    wheel = wheel_of(tmp_path, {f"{MODULE}/big.py": "x = 1\n" * 1000})
    data = bytearray(wheel.read_bytes())
    at = data.index(b"x = 1") if b"x = 1" in data else len(data) // 3
    data[at + 40] ^= 0xFF  # a flipped byte: the CRC no longer matches
    wheel.write_bytes(bytes(data))
    found = inspect(wheel)
    assert any(f.rule == "build.unreadable" for f in found.findings), found.findings


def test_a_missing_package_is_a_finding(tmp_path: Path) -> None:
    finding = only(
        inspect(wheel_of(tmp_path, drop=(f"{MODULE}/__init__.py",))), "build.package-missing"
    )
    assert finding.message == "the wheel does not contain the package hand_made/"


def test_many_findings_of_one_rule_are_capped(tmp_path: Path) -> None:
    found = inspect(wheel_of(tmp_path, {f"x{i}.pth": "" for i in range(30)}))
    assert len(found.findings) == 21
    assert found.findings[-1].message == "... and 10 more like the above"


def test_capped_keeps_other_rules() -> None:
    many = [Finding("a", Severity.HIGH, str(i)) for i in range(25)] + [
        Finding("b", Severity.LOW, "b")
    ]
    assert [f.rule for f in capped(many)] == ["a"] * 20 + ["b", "a"]


# --- the checks that extract the wheel: an error naming the build finding -------------


def security_context(tmp_path: Path, wheel: Path) -> CheckContext:
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return CheckContext(
        project=tmp_path,
        workdir=tmp_path,
        scratch=tmp_path / "scratch",
        policy=load_policy(CHECKS_DIR),
        checks_dir=CHECKS_DIR,
        wheel=wheel,
        plugin=PLUGIN,
    )


class _NoEnvironment:
    python = Path("/nonexistent/python")
    site_packages = Path("/nonexistent/site-packages")


@pytest.mark.parametrize(
    "check", [SecurityCheck(), InterfaceCheck()], ids=["security", "interface"]
)
def test_checks_that_extract_report_an_unsafe_wheel_as_an_error(tmp_path: Path, check: Any) -> None:
    wheel = wheel_of(tmp_path, {"../evil.py": "import os\n"})
    context = replace(
        security_context(tmp_path, wheel), plugin_environment=Lazy(lambda: _NoEnvironment())
    )
    outcome = run_check(check, context)
    assert outcome.status is CheckStatus.ERROR
    assert outcome.summary == (
        "the wheel holds an unsafe path '../evil.py' (a '..' component), so it is not "
        "extracted: see the build check's finding build.unsafe-path"
    )
    assert not (tmp_path / "evil.py").exists()


def test_extract_refuses_a_member_that_does_not_unpack(tmp_path: Path) -> None:
    wheel = wheel_of(tmp_path, {f"{MODULE}/a": "x", f"{MODULE}/a/b.py": "y"})
    with pytest.raises(_shipped.UnsafeWheel, match=r"build\.duplicate-member"):
        _shipped.extract(wheel, tmp_path / "out", tmp_path)
    assert "is a file and a folder" in only(inspect(wheel), "build.duplicate-member").message


# --- properties ----------------------------------------------------------------------

NAMES = st.text(
    st.sampled_from(["a", "/", ".", "\\", ":", "C", "\x00", "é", "-", "_"]), max_size=12
)


@given(name=NAMES)
def test_a_name_called_safe_stays_inside_the_folder(name: str) -> None:
    if unsafe_reason(name) is None:
        joined = posixpath.normpath(posixpath.join("/dest", name))
        assert joined == "/dest" or joined.startswith("/dest/"), name
        assert "\\" not in name and ":" not in name


@pytest.mark.filterwarnings("ignore:Duplicate name")
@given(names=st.lists(NAMES, max_size=6), text=st.text(max_size=80))
def test_any_wheel_gives_findings_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], text: str
) -> None:
    where = tmp_path_factory.mktemp("w")
    wheel = where / f"{MODULE}-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in GOOD.items():
            archive.writestr(name, text if name.endswith("entry_points.txt") else data)
        for name in names:
            if name:
                archive.writestr(zipfile.ZipInfo(name), text)
    found = inspect(wheel)
    assert all(f.rule.startswith("build.") and f.message for f in found.findings)


@given(
    groups=st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_.]{0,10}", fullmatch=True),
            st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
            st.from_regex(r"[a-z][a-z0-9_.]{0,10}:[A-Za-z]\w{0,6}", fullmatch=True),
        ),
        max_size=5,
    )
)
def test_entry_points_read_back_what_was_written(groups: list[tuple[str, str, str]]) -> None:
    text = "".join(f"[{group}]\n{name} = {value}\n" for group, name, value in groups)
    assert read_entry_points(text) == groups


@given(text=st.text(max_size=120))
def test_reading_any_entry_points_text_gives_points_or_value_error(text: str) -> None:
    try:
        points = read_entry_points(text)
    except ValueError:
        return
    assert all(isinstance(part, str) for point in points for part in point)
