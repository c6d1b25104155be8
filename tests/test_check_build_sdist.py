"""The `build` check on the sdist (hand-written tars, one bad member each), the check
as a whole on a bad sdist (a finding, no rebuild, never a crash), the `[build]`
policy keys, and one real build: the spec's layout with its tests shipped."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext
from aitbc.plugin_toolkit.certify.cache import cache_root
from aitbc.plugin_toolkit.certify.checks import _sdist_contents
from aitbc.plugin_toolkit.certify.checks._archive import MIB, SizeLimits
from aitbc.plugin_toolkit.certify.checks._sdist_contents import (
    SdistContents,
    inspect_sdist,
    is_setuptools_setup_cfg,
)
from aitbc.plugin_toolkit.certify.checks.build import BuildCheck
from aitbc.plugin_toolkit.certify.distributions import build_distributions, plugin_info
from aitbc.plugin_toolkit.certify.model import CheckStatus, Finding
from aitbc.plugin_toolkit.certify.policy import BuildLimits, load_policy
from aitbc.plugin_toolkit.certify.runner import run_check
from aitbc.plugin_toolkit.errors import ToolkitError
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st
from test_check_build import wheel_of

CHECKS_DIR = REPO / "checks"
ROOT = "hand_made-1.0.0"
PROJECT = {
    "__init__.py": b"",
    "plugin.py": b"class HandMadePlugin:\n    pass\n",
    "setup.py": b"from setuptools import setup\n\nsetup()\n",
    "docs/README.md": b"# hand-made\n",
}
GENERATED = {
    "PKG-INFO": b"Metadata-Version: 2.1\nName: hand-made\nVersion: 1.0.0\n",
    "hand_made.egg-info/PKG-INFO": b"Metadata-Version: 2.1\nName: hand-made\n",
    "hand_made.egg-info/SOURCES.txt": b"plugin.py\n",
    "setup.cfg": b"[egg_info]\ntag_build = \ntag_date = 0\n\n",
}
LIMITS = SizeLimits.from_policy(BuildLimits())


def project_in(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for name, data in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(data)
    return project


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def sdist_of(
    tmp_path: Path,
    *extra: tuple[tarfile.TarInfo, bytes | None],
    files: bool = True,
    fmt: int = tarfile.PAX_FORMAT,
) -> Path:
    """The project's files and the generated ones under ROOT/, then ``extra``."""
    sdist = tmp_path / f"{ROOT}.tar.gz"
    members = (
        [regular(f"{ROOT}/{n}", d) for n, d in {**PROJECT, **GENERATED}.items()] if files else []
    )
    with tarfile.open(sdist, "w:gz", format=fmt) as archive:
        for info, data in [*members, *extra]:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return sdist


def inspect(tmp_path: Path, sdist: Path, limits: SizeLimits = LIMITS) -> SdistContents:
    return inspect_sdist(sdist, project_in(tmp_path), "hand-made", limits)


def only(found: SdistContents, rule: str) -> Finding:
    assert [f.rule for f in found.findings] == [rule], found.findings
    return found.findings[0]


def test_the_projects_files_and_what_setuptools_writes_pass(tmp_path: Path) -> None:
    found = inspect(tmp_path, sdist_of(tmp_path))
    assert (found.findings, found.root) == ([], ROOT)


def test_a_project_file_at_another_path_passes(tmp_path: Path) -> None:
    moved = regular(f"{ROOT}/src/hand_made/plugin.py", PROJECT["plugin.py"])
    assert inspect(tmp_path, sdist_of(tmp_path, moved)).findings == []


@pytest.mark.parametrize(
    ("member", "kind", "said"),
    [
        (f"{ROOT}/hostname", tarfile.SYMTYPE, "a symbolic link to '/etc/hostname'"),
        (f"{ROOT}/copy.py", tarfile.LNKTYPE, "a hard link to '/etc/hostname'"),
    ],
)
def test_a_link_is_a_finding(tmp_path: Path, member: str, kind: bytes, said: str) -> None:
    finding = only(
        inspect(tmp_path, sdist_of(tmp_path, special(member, kind, "/etc/hostname"))),
        "build.sdist-link",
    )
    assert finding.file == member and f"{member} is {said}" in finding.message


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_a_device_or_fifo_is_a_finding(tmp_path: Path, kind: bytes) -> None:
    member = f"{ROOT}/dev"
    finding = only(
        inspect(tmp_path, sdist_of(tmp_path, special(member, kind))), "build.sdist-special"
    )
    assert finding.file == member and "is not a file or folder" in finding.message


@pytest.mark.parametrize(
    ("member", "why"),
    [("/etc/cron.d/evil", "an absolute path"), (f"{ROOT}/../../evil.py", "a '..' component")],
)
def test_an_unsafe_path_is_a_finding(tmp_path: Path, member: str, why: str) -> None:
    finding = only(
        inspect(tmp_path, sdist_of(tmp_path, regular(member, b"x"))), "build.unsafe-path"
    )
    assert finding.file == member and f"{member!r} is an unsafe path ({why})" in finding.message


@pytest.mark.parametrize(
    "member",
    [
        f"{ROOT}/host-os-release",
        f"{ROOT}/hand_made.egg-info/stolen.txt",
        f"{ROOT}/other.egg-info/PKG-INFO",
        f"{ROOT}/docs/PKG-INFO",
    ],
)
def test_a_file_from_outside_the_project_is_a_finding(tmp_path: Path, member: str) -> None:
    stolen = regular(member, b'NAME="Ubuntu"\nVERSION_ID="24.04"\n')
    finding = only(inspect(tmp_path, sdist_of(tmp_path, stolen)), "build.outside-project")
    assert finding.file == member
    assert f"{member} has bytes that no file of the project has" in finding.message


def test_a_rewritten_project_file_is_a_finding(tmp_path: Path) -> None:
    # A later member of the same name replaces the project's plugin.py when unpacked.
    rewritten = regular(f"{ROOT}/plugin.py", b"import os\nos.system('id')\n")
    finding = only(inspect(tmp_path, sdist_of(tmp_path, rewritten)), "build.outside-project")
    assert finding.file == f"{ROOT}/plugin.py"


def test_a_linked_project_file_does_not_vouch_for_its_target(tmp_path: Path) -> None:
    project = project_in(tmp_path)
    (project / "hostname").symlink_to("/etc/hostname")
    host = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").is_file() else b"host\n"
    sdist = sdist_of(tmp_path, regular(f"{ROOT}/hostname", host))
    found = inspect_sdist(sdist, project, "hand-made", LIMITS)
    assert [f.rule for f in found.findings] == ["build.outside-project"]


def test_two_source_folders_are_a_finding(tmp_path: Path) -> None:
    finding = only(
        inspect(tmp_path, sdist_of(tmp_path, regular("other-1.0/plugin.py", PROJECT["plugin.py"]))),
        "build.sdist-layout",
    )
    assert finding.message == f"the sdist must hold one source folder, not 2: {ROOT}, other-1.0"


def test_a_gzip_bomb_is_refused_from_the_stream(tmp_path: Path) -> None:
    zeros = bytes(4 * MIB)
    (project_in(tmp_path) / "zeros.bin").write_bytes(zeros)  # in the project: not stolen
    sdist = sdist_of(tmp_path, regular(f"{ROOT}/zeros.bin", zeros))
    found = inspect_sdist(sdist, tmp_path / "project", "hand-made", LIMITS)
    finding = only(found, "build.compression-ratio")
    assert "over the limit of 100:1 (a gzip bomb)" in finding.message
    small = SizeLimits(max_file=MIB, max_artifact=2 * MIB, max_ratio=10_000)
    found = inspect_sdist(sdist, tmp_path / "project", "hand-made", small)
    assert [(f.rule, f.file) for f in found.findings] == [("build.too-large", f"{ROOT}/zeros.bin")]
    assert found.findings[0].message == f"{ROOT}/zeros.bin unpacks to 4.0 MiB, over 1.0 MiB"


def test_a_huge_header_is_stopped_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pax header is read whole by tarfile, and no member's size counts it.
    monkeypatch.setattr(_sdist_contents, "MAX_MEMBERS", 1)  # the stream limit: ~1.1 MiB
    info, data = regular(f"{ROOT}/plugin.py", PROJECT["plugin.py"])
    info.pax_headers = {"comment": "x" * (3 * MIB)}
    limits = SizeLimits(max_file=MIB, max_artifact=64 * 1024, max_ratio=10_000)
    found = inspect(tmp_path, sdist_of(tmp_path, (info, data), files=False), limits)
    assert found.findings[0].rule == "build.too-large", found.findings
    assert found.findings[0].message == "the sdist unpacks to more than 1.1 MiB"


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdist_contents, "MAX_MEMBERS", 5)
    found = inspect(tmp_path, sdist_of(tmp_path))
    assert ("build.too-large", "the sdist has more than 5 members") in [
        (f.rule, f.message) for f in found.findings
    ]


@pytest.mark.parametrize("content", [b"not a tar", b""])
def test_an_unreadable_sdist_is_a_finding(tmp_path: Path, content: bytes) -> None:
    sdist = tmp_path / "x.tar.gz"
    sdist.write_bytes(content)
    found = inspect(tmp_path, sdist)
    assert found.root is None
    assert found.findings[0].rule in ("build.unreadable", "build.sdist-layout"), found.findings
    if content:
        assert found.findings[0].message.startswith("the sdist is not a readable .tar.gz")


def test_a_large_sdist_is_refused_before_it_is_read(tmp_path: Path) -> None:
    limits = SizeLimits(max_file=MIB, max_artifact=100, max_ratio=100)
    finding = only(inspect(tmp_path, sdist_of(tmp_path), limits), "build.too-large")
    assert finding.message.startswith("the sdist is ") and "over 0.0 MiB" in finding.message


# --- setup.cfg as setuptools rewrites it ---------------------------------------------


@pytest.mark.parametrize(
    ("shipped", "project", "ok"),
    [
        ("[egg_info]\ntag_build = \ntag_date = 0\n\n", None, True),
        (
            "[metadata]\nname = x\n\n[egg_info]\ntag_build = \ntag_date = 0\n",
            "[metadata]\n# hi\nname=x\n",
            True,
        ),
        (
            "[egg_info]\ntag_build = .dev20240101\ntag_date = 0\n",
            "[egg_info]\ntag_build = .dev\ntag_date = 1\n",
            True,
        ),
        ("[egg_info]\ntag_build = \ntag_date = 0\nsecret = hunter2\n", None, False),
        ("[egg_info]\ntag_build = root:x:0:0\ntag_date = 0\n", None, False),
        ("[metadata]\nname = y\n[egg_info]\ntag_build = \n", "[metadata]\nname = x\n", False),
        ("[stolen]\nkey = value\n[egg_info]\ntag_build = \n", None, False),
        ("not an ini file", None, False),
    ],
)
def test_setup_cfg_is_the_projects_plus_the_egg_info_tags(
    shipped: str, project: str | None, ok: bool
) -> None:
    assert is_setuptools_setup_cfg(shipped, project) is ok


@given(shipped=st.text(max_size=80), project=st.none() | st.text(max_size=80))
def test_setup_cfg_comparison_never_crashes(shipped: str, project: str | None) -> None:
    assert is_setuptools_setup_cfg(shipped, project) in (True, False)


@given(
    names=st.lists(st.text(st.sampled_from("ab/.-\\:é\x00"), min_size=1, max_size=10), max_size=5),
    kinds=st.lists(
        st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.FIFOTYPE]),
        min_size=5,
        max_size=5,
    ),
)
def test_any_sdist_gives_findings_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], kinds: list[bytes]
) -> None:
    where = tmp_path_factory.mktemp("s")
    extra = []
    for name, kind in zip(names, kinds, strict=False):
        info = tarfile.TarInfo(name)
        info.type = kind
        extra.append((info, b"" if kind == tarfile.REGTYPE else None))
    found = inspect(where, sdist_of(where, *extra))
    assert all(f.rule.startswith("build.") and f.message for f in found.findings)


# --- the check as a whole -----------------------------------------------------------


def build_context(tmp_path: Path, wheel: Path, sdist: Path, project: Path) -> CheckContext:
    (tmp_path / "scratch").mkdir(exist_ok=True)
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    return CheckContext(
        project=project,
        workdir=project,
        scratch=tmp_path / "scratch",
        policy=load_policy(CHECKS_DIR),
        checks_dir=CHECKS_DIR,
        wheel=wheel,
        sdist=sdist,
        plugin=info,
    )


def test_a_bad_sdist_fails_the_check_without_a_rebuild(tmp_path: Path) -> None:
    link = special(f"{ROOT}/hostname", tarfile.SYMTYPE, "/etc/hostname")
    sdist = sdist_of(tmp_path, link)
    context = build_context(tmp_path, wheel_of(tmp_path), sdist, project_in(tmp_path))
    outcome = run_check(BuildCheck(), context)
    assert outcome.status is CheckStatus.FAILED, outcome
    assert [(f.rule, f.file) for f in outcome.findings] == [
        ("build.sdist-link", f"{ROOT}/hostname")
    ]
    assert outcome.summary == "1 build problem(s)"
    assert outcome.details["rebuilt"] == "no: the sdist is not safe to unpack and build"
    assert not (tmp_path / "scratch" / "rebuild").exists()


def test_the_build_policy_keys(tmp_path: Path) -> None:
    assert load_policy(CHECKS_DIR).build == BuildLimits()
    override = tmp_path / "policy.toml"
    override.write_text(
        '[build]\nallowed_entry_point_groups = ["console_scripts"]\nmax_file_mb = 5\n'
    )
    build = load_policy(CHECKS_DIR, override).build
    assert build.allowed_entry_point_groups == ("console_scripts",) and build.max_file_mb == 5
    for bad, said in [
        ("max_file_mb = 0", "build.max_file_mb must be positive"),
        ("max_artifact_mb = 2048", "build.max_artifact_mb must be at most 1024"),
        ('allowed_entry_point_groups = ["[x]"]', "must be entry point group names"),
        ('max_compression_ratio = "high"', "has the wrong type"),
    ]:
        override.write_text(f"[build]\n{bad}\n")
        with pytest.raises(ToolkitError, match=said.replace("[", r"\[")):
            load_policy(CHECKS_DIR, override)


@pytest.mark.integration
def test_spec_layout_with_its_tests_in_the_package_passes_with_a_note(tmp_path: Path) -> None:
    """The spec's Plugin Structure, its setup.py shipping tests/ as my_plugin.tests."""
    project = tmp_path / "my-plugin"
    shutil.copytree(REPO / "tests" / "data" / "spec-flat" / "my-plugin", project)
    setup = project / "setup.py"
    setup.write_text(
        setup.read_text().replace(
            'packages=["my_plugin"]', 'packages=["my_plugin", "my_plugin.tests"]'
        )
    )
    built = build_distributions(project, tmp_path / "build", 300, cache_root())
    assert built.wheel is not None and built.sdist is not None, built.error
    context = build_context(tmp_path, built.wheel, built.sdist, project)
    outcome = run_check(BuildCheck(), context)
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.findings == ()
    note = "is a test file shipped in the wheel (a note, not a failure)"
    assert outcome.details["notes"] == [
        f"my_plugin/tests/__init__.py {note}",
        f"my_plugin/tests/test_plugin.py {note}",
    ]
    assert outcome.summary.endswith("; note: the wheel ships 2 test file(s)")
