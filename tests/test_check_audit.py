"""The `audit` check: real pip-audit, a real OSV server on loopback, the real advisory-db."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy, PluginInfo
from aitbc.plugin_toolkit.certify.cache import ResultCache
from aitbc.plugin_toolkit.certify.checks.audit import AuditCheck
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus, Severity
from aitbc.plugin_toolkit.certify.osv import (
    OsvRecordError,
    OsvServer,
    is_affected,
    load_index,
    load_record_file,
    parse_record,
)
from aitbc.plugin_toolkit.certify.policy import load_policy
from aitbc.plugin_toolkit.certify.runner import run_check as run_one
from certify_support import Case, load_cases, make_project, materialize
from conftest import REPO, make_venv, run_checked
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

ADVISORY_DB = REPO.parent / "shared" / "advisory-db"
CASES = [c for c in load_cases() if c.name == "audit-vulnerable-dependency"]
pytestmark = pytest.mark.integration


@dataclasses.dataclass(frozen=True)
class Env:
    python: Path
    site_packages: Path


@dataclasses.dataclass(frozen=True)
class Built:
    project: Path
    wheel: Path
    env: Env
    plugin: PluginInfo


def _build(project: Path, sdk_wheel: Path, where: Path) -> Built:
    dist = where / "dist"
    run_checked(
        [sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(dist), str(project)]
    )
    (wheel,) = dist.glob("*.whl")
    python = make_venv(where / "venv", str(sdk_wheel), str(wheel))
    (site,) = (where / "venv" / "lib").glob("python3*/site-packages")
    name = project.name
    module = name.replace("-", "_")
    cls = "".join(p.title() for p in name.split("-")) + "Plugin"
    info = PluginInfo(name, "0.1.0", name, module, f"{module}.plugin:{cls}", "base")
    return Built(project, wheel, Env(python, site), info)


def _context(
    built: Built, tmp_path: Path, tool_timeout_s: float | None = None, **options: Any
) -> CheckContext:
    policy = load_policy(REPO / "checks")
    if tool_timeout_s is not None:
        policy = dataclasses.replace(policy, tool_timeout_s=tool_timeout_s)
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return CheckContext(
        project=built.project, workdir=built.project, scratch=scratch, policy=policy,
        wheel=built.wheel, plugin=built.plugin, checks_dir=REPO / "checks",
        plugin_environment=Lazy(lambda: built.env), **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vulnerable(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Built:
    """The corpus case: a generated plugin depending on idna 3.6 (PYSEC-2024-60)."""
    where = tmp_path_factory.mktemp("vulnerable")
    (case,) = CASES
    return _build(materialize(case, where / "src"), sdk_wheel, where)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Built:
    """The same plugin pinned to idna 3.7, the fixed release."""
    where = tmp_path_factory.mktemp("fixed")
    project = materialize(CASES[0], where / "src")
    for name in ("requirements.txt", "pyproject.toml"):
        path = project / name
        path.write_text(path.read_text().replace("idna==3.6", "idna==3.7"))
    return _build(project, sdk_wheel, where)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Built:
    where = tmp_path_factory.mktemp("plain")
    return _build(make_project("audit-plain", "base", where / "src"), sdk_wheel, where)


@pytest.fixture
def record_db(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """A vuln db in tmp_path: {relative path: file text}."""

    def make(files: dict[str, str]) -> Path:
        db = tmp_path / "db"
        for relative, text in files.items():
            (db / relative).parent.mkdir(parents=True, exist_ok=True)
            (db / relative).write_text(text)
        return db

    return make


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/query"


def _json_record(rid: str, package: str, fixed: str, **extra: object) -> str:
    events = [{"introduced": "0"}, {"fixed": fixed}]
    affected = [{"package": {"name": package, "ecosystem": "PyPI"},
                 "ranges": [{"type": "ECOSYSTEM", "events": events}]}]  # fmt: skip
    return json.dumps({"id": rid, "summary": f"{package} is broken", "affected": affected, **extra})


# -- the corpus case and its fixed twin -----------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_fails_audit_with_its_reason(
    case: Case, vulnerable: Built, tmp_path: Path
) -> None:
    outcome = run_one(AuditCheck(), _context(vulnerable, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status.value == case.status, outcome.summary
    assert case.reason in outcome.summary
    assert any(case.reason in f.message for f in outcome.findings)


def test_vulnerable_dependency_is_named_with_aliases_fix_and_location(
    vulnerable: Built, tmp_path: Path
) -> None:
    outcome = run_one(AuditCheck(), _context(vulnerable, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.FAILED
    (finding,) = outcome.findings
    assert finding.rule == "audit.PYSEC-2024-60"
    assert finding.severity is Severity.HIGH  # CVSS:3.1 .../A:H = 7.5
    for part in ("idna 3.6", "PYSEC-2024-60", "CVE-2024-3651", "fixed in 3.7"):
        assert part in finding.message
    assert (finding.file, finding.line) == ("pyproject.toml", 21)  # what the wheel ships
    assert outcome.details["excluded"]["aitbc-plugins"].startswith("the AITBC SDK")
    assert "pyyaml" in {n.lower() for n in outcome.details["excluded"]}
    assert outcome.details["requirements"] == ["idna==3.6"]


def test_fixed_version_passes(fixed: Built, tmp_path: Path) -> None:
    outcome = run_one(AuditCheck(), _context(fixed, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.PASSED, outcome.summary
    assert outcome.summary.startswith("no known vulnerabilities in 1 dependency")
    assert outcome.details["audited"] == ["idna==3.7"]


def test_plugin_without_third_party_dependencies_passes(plain: Built, tmp_path: Path) -> None:
    outcome = run_one(AuditCheck(), _context(plain, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.PASSED
    assert outcome.summary == "no third-party runtime dependencies"
    assert "aitbc-plugins" in outcome.details["excluded"]


# -- never a pass when something could not be audited ------------------------------
def test_online_audit_here_is_incomplete_not_passed(vulnerable: Built, tmp_path: Path) -> None:
    outcome = run_one(AuditCheck(), _context(vulnerable, tmp_path))
    assert outcome.status is CheckStatus.INCOMPLETE, outcome.summary
    assert "could not audit 1 of 1 dependencies (idna 3.6)" in outcome.summary
    assert "--vuln-db" in outcome.summary
    assert outcome.allowed is False
    assert "idna" in outcome.details["unaudited"]
    assert outcome.findings[0].rule == "audit.incomplete"


def test_allowed_incomplete_audit_stays_incomplete_and_says_allowed(
    fixed: Built, tmp_path: Path
) -> None:
    outcome = run_one(AuditCheck(), _context(fixed, tmp_path, allow_incomplete_audit=True))
    assert outcome.status is CheckStatus.INCOMPLETE
    assert outcome.allowed is True
    assert "allowed by --allow-incomplete-audit" in outcome.summary


def test_unreachable_service_is_incomplete(fixed: Built, tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1/query"
    outcome = run_one(AuditCheck(), _context(fixed, tmp_path, osv_url=url))
    assert outcome.status is CheckStatus.INCOMPLETE, outcome.summary
    assert "vulnerability service unreachable" in outcome.summary
    assert "Connection refused" in outcome.findings[0].message


def test_service_that_never_answers_is_an_error_in_bounded_time(
    fixed: Built, tmp_path: Path, silent_server: str
) -> None:
    context = _context(fixed, tmp_path, osv_url=silent_server, tool_timeout_s=4.0)
    outcome = run_one(AuditCheck(), context)
    assert outcome.status is CheckStatus.ERROR
    assert outcome.summary == "pip-audit timed out after 4s"
    assert outcome.duration_s < 10


def test_service_errors_are_errors(fixed: Built, tmp_path: Path) -> None:
    with OsvServer(load_index(ADVISORY_DB)) as url:  # a path it answers 404 on
        context = _context(fixed, tmp_path, osv_url=url.replace("query", "nope"))
        outcome = run_one(AuditCheck(), context)
    assert outcome.status is CheckStatus.ERROR
    assert outcome.summary.startswith("pip-audit failed (exit 1)")


def test_unreadable_record_for_a_dependency_is_incomplete(
    fixed: Built, tmp_path: Path, record_db: Callable[[dict[str, str]], Path]
) -> None:
    broken = _json_record("TEST-1", "IDNA", "not a version")
    db = record_db(
        {"idna/TEST-1.json": broken, "other/TEST-2.json": _json_record("TEST-2", "x", "1")}
    )
    outcome = run_one(AuditCheck(), _context(fixed, tmp_path, vuln_db=db))
    assert outcome.status is CheckStatus.INCOMPLETE
    assert "TEST-1.json" in outcome.findings[0].message
    assert "'not a version' is not a PEP 440 version" in outcome.summary


def test_package_with_no_record_is_not_vulnerable(
    fixed: Built, tmp_path: Path, record_db: Callable[[dict[str, str]], Path]
) -> None:
    db = record_db(
        {"other/TEST-2.yaml": "id: TEST-2\naffected:\n- package: {name: x, ecosystem: PyPI}\n"}
    )
    outcome = run_one(AuditCheck(), _context(fixed, tmp_path, vuln_db=db))
    assert outcome.status is CheckStatus.PASSED, outcome.summary


def test_json_records_and_explicit_severity(
    fixed: Built, tmp_path: Path, record_db: Callable[[dict[str, str]], Path]
) -> None:
    record = _json_record("GHSA-xxxx", "idna", "3.8", aliases=["CVE-0000-1"],
                          database_specific={"severity": "MODERATE"})  # fmt: skip
    context = _context(fixed, tmp_path, vuln_db=record_db({"a.json": record}))
    outcome = run_one(AuditCheck(), context)
    assert outcome.status is CheckStatus.FAILED
    (finding,) = outcome.findings
    # pip-audit names a vulnerability by its PYSEC or CVE id first, the others are aliases
    assert finding.rule == "audit.CVE-0000-1" and finding.severity is Severity.MEDIUM
    assert "CVE-0000-1 (GHSA-xxxx); fixed in 3.8: idna is broken" in finding.message


@pytest.mark.parametrize(
    "files", [{}, {"README.md": "no records"}, {"a.yaml": "id: X-1\n", "b.json": "[1]"}]
)
def test_database_without_records_is_an_error(
    files: dict[str, str], fixed: Built, tmp_path: Path, record_db: Callable[[dict[str, str]], Path]
) -> None:
    db = record_db(files)
    db.mkdir(exist_ok=True)
    outcome: CheckResult = run_one(AuditCheck(), _context(fixed, tmp_path, vuln_db=db))
    assert outcome.status is CheckStatus.ERROR
    assert outcome.summary == f"no OSV records in {db}"


def test_without_an_environment_the_declared_pins_are_audited_never_passed(
    fixed: Built, vulnerable: Built, tmp_path: Path
) -> None:
    """What the pinned versions require is unknown: incomplete, not passed; a pinned
    version's own advisories are still reported."""
    context = _context(fixed, tmp_path / "fixed", vuln_db=ADVISORY_DB)
    outcome = run_one(AuditCheck(), dataclasses.replace(context, plugin_environment=None))
    assert outcome.status is CheckStatus.INCOMPLETE, outcome.summary
    assert outcome.details["audited"] == ["idna==3.7"]
    assert "what it requires is unknown: no plugin environment" in outcome.summary
    assert any("could not be made" in note for note in outcome.details["notes"])
    context = _context(vulnerable, tmp_path / "vulnerable", vuln_db=ADVISORY_DB)
    outcome = run_one(AuditCheck(), dataclasses.replace(context, plugin_environment=None))
    assert outcome.status is CheckStatus.FAILED
    assert [f.rule for f in outcome.findings] == ["audit.PYSEC-2024-60"]


# -- cache inputs, the server itself -------------------------------------------------
def test_cache_inputs_are_the_db_the_installed_metadata_and_declarations(
    vulnerable: Built, tmp_path: Path
) -> None:
    check = AuditCheck()
    assert check.cache_inputs(_context(vulnerable, tmp_path)) is None  # online: never cached
    inputs = check.cache_inputs(_context(vulnerable, tmp_path, vuln_db=ADVISORY_DB)) or []
    assert inputs[0] == ADVISORY_DB
    assert vulnerable.wheel not in inputs  # the code's bytes are not what the audit reads
    facts = json.loads(inputs[1].read_text())
    installed = {PurePosixPath(name).parent.name for name in facts["installed"]}
    assert installed == {"idna-3.6.dist-info", "audit_vulnerable_dependency-0.1.0.dist-info"}
    assert vulnerable.project / "requirements.txt" in inputs  # findings point into it


def _with_plugin_py(built: Built, where: Path, change: Callable[[str], str]) -> Built:
    """``built`` after an author's edit of plugin.py: in the project, and in a wheel
    built from it."""
    import shutil

    project = where / built.project.name
    shutil.copytree(built.project, project)
    for source in project.rglob("plugin.py"):
        source.write_text(change(source.read_text()))
    wheel = where / built.wheel.name
    with zipfile.ZipFile(built.wheel) as old, zipfile.ZipFile(wheel, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("/plugin.py"):
                data = change(data.decode()).encode()
            new.writestr(info, data)
    return dataclasses.replace(built, project=project, wheel=wheel)


def test_an_edit_that_imports_nothing_new_keeps_the_audit_key(
    vulnerable: Built, tmp_path: Path
) -> None:
    """The edit loop: a plugin.py edit is a new wheel, but not a new audit; a new import
    (which may be undeclared) is."""
    cache = ResultCache(tmp_path / "cache", "salt")

    def key(built: Built, run: str) -> str:
        context = _context(built, tmp_path / run, vuln_db=ADVISORY_DB)
        inputs = AuditCheck().cache_inputs(context)
        assert inputs is not None
        # As the runner names them: relative to the run's folder (scratch and project).
        return cache.key("audit", inputs, tmp_path / run)

    def edited(name: str, change: Callable[[str], str]) -> Built:
        return _with_plugin_py(vulnerable, tmp_path / name, change)

    same_place = edited("a", lambda s: s)
    before = key(same_place, "a")
    assert key(edited("b", lambda s: s), "b") == before  # another run's folder: same key
    assert key(edited("c", lambda s: s + "# a comment\n"), "c") == before
    assert key(edited("d", lambda s: s + "import yaml\n"), "d") != before


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_answers_the_osv_query_api() -> None:
    index = load_index(ADVISORY_DB)
    assert index.records == 2659 and len(index.invalid) == 2  # two upstream records are odd
    with OsvServer(index) as url:
        query = {"package": {"name": "IDNA", "ecosystem": "PyPI"}, "version": "3.6"}
        status, body = _post(url, json.dumps(query).encode())
        assert status == 200
        (vuln,) = body["vulns"]
        assert vuln["id"] == "PYSEC-2024-60" and vuln["published"] == "2024-07-07T18:15:00Z"
        assert _post(url, json.dumps({**query, "version": "3.7"}).encode()) == (200, {})
        assert _post(url, b"{not json")[0] == 400
        with urllib.request.urlopen(url.replace("query", "vulns/CVE-2024-3651")) as response:
            assert json.loads(response.read())["id"] == "PYSEC-2024-60"


# -- properties of the OSV record parser and matcher ----------------------------------
UNIVERSE = [Version(f"{major}.{minor}") for major in range(4) for minor in range(4)]
version_index = st.integers(0, len(UNIVERSE) - 1)


@st.composite
def ranges(
    draw: st.DrawFn,
) -> tuple[list[dict[str, str]], list[tuple[Version | None, Version | None, bool]]]:
    """Shuffled events of one ECOSYSTEM range and the intervals they mean:
    (start, end, end_included); None = open."""
    points = sorted(draw(st.lists(version_index, min_size=1, max_size=6, unique=True)))
    last_affected = draw(st.booleans())
    events: list[dict[str, str]] = []
    intervals = []
    for start, end in zip(points[::2], [*points[1::2], None]):
        zero = start == 0 and draw(st.booleans())
        events.append({"introduced": "0" if zero else str(UNIVERSE[start])})
        if end is not None:
            events.append({"last_affected" if last_affected else "fixed": str(UNIVERSE[end])})
        begin = None if zero else UNIVERSE[start]  # "0": before every release, pre-releases too
        intervals.append((begin, None if end is None else UNIVERSE[end], last_affected))
    return draw(st.permutations(events)), intervals


def _inside(version: Version, start: Version | None, end: Version | None, included: bool) -> bool:
    return (start is None or start <= version) and (
        end is None or version < end or (included and version == end)
    )


@given(
    st.lists(ranges(), max_size=3),
    st.lists(version_index, max_size=4),
    st.sampled_from([*UNIVERSE, Version("9.9"), Version("0.0a1")]),
)
def test_matcher_agrees_with_the_intervals(
    drawn: list[tuple[list[dict[str, str]], list[tuple[Version | None, Version | None, bool]]]],
    explicit: list[int],
    version: Version,
) -> None:
    affected = {
        "package": {"name": "Some_Package", "ecosystem": "PyPI"},
        "ranges": [{"type": "ECOSYSTEM", "events": events} for events, _ in drawn]
        + [{"type": "GIT", "repo": "r", "events": [{"introduced": "0"}, {"fixed": "abc"}]}],
        "versions": [str(UNIVERSE[i]) for i in explicit],
    }
    record = parse_record({"id": "X-1", "affected": [affected]})
    expected = any(_inside(version, *interval) for _, found in drawn for interval in found)
    expected = expected or version in {UNIVERSE[i] for i in explicit}
    assert is_affected(record, "some-package", str(version)) is expected
    assert is_affected(record, "other-package", str(version)) is False
    if version.pre is None:  # 1.2.0 is release 1.2
        assert is_affected(record, "some.package", f"{version}.0") is expected


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
EVENTS = [{"introduced": "0"}, {"fixed": "2"}]
GOOD = {
    "id": "PYSEC-1", "aliases": ["CVE-1"], "published": "2020-01-01T00:00:00Z",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
    "affected": [{"package": {"name": "pkg", "ecosystem": "PyPI"}, "versions": ["1.0"],
                  "ranges": [{"type": "ECOSYSTEM", "events": EVENTS}]}],
}  # fmt: skip


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found += _paths(child, (*path, key))
    return found


def _replace(value: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


@given(st.sampled_from(_paths(GOOD)), json_like, st.text(max_size=8))
def test_bad_records_raise_only_the_documented_error(
    path: tuple[object, ...], junk: object, version: str
) -> None:
    try:
        record = parse_record(_replace(GOOD, path, junk))
    except OsvRecordError:
        return
    is_affected(record, "pkg", version)  # a parsed record never makes the matcher raise
    json.dumps(record.served)


@given(json_like)
def test_arbitrary_data_is_a_record_or_the_documented_error(data: object) -> None:
    with contextlib.suppress(OsvRecordError):
        parse_record(data)


@given(st.text(max_size=60), st.sampled_from([".json", ".yaml"]))
def test_unreadable_files_raise_only_the_documented_error(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "record" + suffix)
        path.write_text(text, encoding="utf-8")
        with contextlib.suppress(OsvRecordError):
            parse_record(load_record_file(path))


# -- the declared set: both files, alike, from an index ------------------------------
def _edited(built: Built, tmp_path: Path, requirements: str) -> Built:
    """``built`` with another requirements.txt beside the same wheel."""
    import shutil

    project = tmp_path / built.project.name
    shutil.copytree(built.project, project)
    (project / "requirements.txt").write_text(requirements)
    return dataclasses.replace(built, project=project)


def test_requirements_txt_and_the_wheel_must_agree_and_name_both_lines(
    fixed: Built, tmp_path: Path
) -> None:
    edited = _edited(fixed, tmp_path, "aitbc-plugins>=1.0.0\nidna>=3.7\npsutil>=5\n")
    outcome = run_one(AuditCheck(), _context(edited, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.FAILED
    said = {(f.rule, f.file, f.line, f.message) for f in outcome.findings}
    assert ("audit.declared-mismatch", "requirements.txt", 2,
            "requirements.txt:2 says 'idna>=3.7' but pyproject.toml:21 (the wheel) says "
            "'idna==3.7'") in said  # fmt: skip
    listed = "lists 'psutil>=5', which the wheel does not require"
    assert any(rule == "audit.declared-mismatch" and line == 3 and listed in message
               for rule, _, line, message in said)  # fmt: skip


@pytest.mark.parametrize(
    "line",
    [
        "foo @ https://example.invalid/foo-1.0-py3-none-any.whl",
        "git+https://example.invalid/foo.git#egg=foo",
        "./vendored/foo",
        "-e ./vendored/foo",
    ],
)
def test_direct_urls_and_local_paths_are_refused(fixed: Built, tmp_path: Path, line: str) -> None:
    edited = _edited(fixed, tmp_path, f"aitbc-plugins>=1.0.0\nidna==3.7\n{line}\n")
    outcome = run_one(AuditCheck(), _context(edited, tmp_path, vuln_db=ADVISORY_DB))
    (finding,) = [f for f in outcome.findings if f.rule == "audit.direct-reference"]
    assert (finding.file, finding.line) == ("requirements.txt", 3)
    assert "is a direct URL or local path: PyPI refuses these" in finding.message
    assert outcome.status is CheckStatus.FAILED


def test_installer_options_and_unreadable_lines_are_findings(fixed: Built, tmp_path: Path) -> None:
    text = "aitbc-plugins>=1.0.0\nidna==3.7\n--index-url https://evil.example/simple\nidna ((\n"
    outcome = run_one(AuditCheck(), _context(_edited(fixed, tmp_path, text), tmp_path,
                                             vuln_db=ADVISORY_DB))  # fmt: skip
    rules = {(f.rule, f.line) for f in outcome.findings}
    assert {("audit.requirements-option", 3), ("audit.unreadable-requirement", 4)} <= rules


def test_included_requirement_files_are_read_inside_the_project_only(
    fixed: Built, tmp_path: Path
) -> None:
    edited = _edited(fixed, tmp_path, "-r base.txt\n-r /etc/hostname\n")
    (edited.project / "base.txt").write_text("aitbc-plugins>=1.0.0\nidna==3.7\n")
    outcome = run_one(AuditCheck(), _context(edited, tmp_path, vuln_db=ADVISORY_DB))
    assert [(f.rule, f.line) for f in outcome.findings] == [("audit.requirements-option", 2)]
    assert "-r /etc/hostname: not a file of the project" in outcome.findings[0].message


def _requiring(
    tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path, name: str, requirement: str
) -> Built:
    """A generated plugin that also requires ``requirement``, in both files, built."""
    where = tmp_path_factory.mktemp(name)
    project = make_project(name, "base", where / "src")
    sdk = "aitbc-plugins>=1.0.0"
    for file, old, new in (
        ("requirements.txt", sdk, f"{sdk}\n{requirement}"),
        ("pyproject.toml", f'"{sdk}",', f'"{sdk}",\n    "{requirement}",'),
    ):
        path = project / file
        path.write_text(path.read_text().replace(old, new))
    return _build(project, sdk_wheel, where)


@pytest.fixture(scope="module")
def ranged(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Built:
    """A plugin requiring urllib3>=1.0: the newest release installs, older ones are admitted."""
    return _requiring(tmp_path_factory, sdk_wheel, "audit-ranged", "urllib3>=1.0")


def test_a_range_that_admits_vulnerable_releases_names_the_fixing_lower_bound(
    ranged: Built, tmp_path: Path
) -> None:
    outcome = run_one(AuditCheck(), _context(ranged, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.FAILED, outcome.summary
    (finding,) = [f for f in outcome.findings if f.rule == "audit.range"]
    assert (finding.file, finding.line) == ("pyproject.toml", 21)
    assert finding.message.startswith("'urllib3>=1.0' admits releases with known vulnerabilities")
    assert "PYSEC-2018-32" in finding.message
    bound = finding.message.rsplit("raise the lower bound to >=", 1)[1]
    index = load_index(ADVISORY_DB)
    assert index.query("urllib3", bound) == []  # the advised bound is itself clean
    assert [f for f in outcome.findings if f.rule != "audit.range"] == []  # newest is clean


def test_the_policy_can_make_range_findings_warnings(ranged: Built, tmp_path: Path) -> None:
    from aitbc.plugin_toolkit.certify.writers._common import notes

    context = _context(ranged, tmp_path, vuln_db=ADVISORY_DB)
    context = dataclasses.replace(
        context, policy=dataclasses.replace(context.policy, audit_ranges="warn")
    )
    outcome = run_one(AuditCheck(), context)
    assert outcome.status is CheckStatus.PASSED, outcome.summary
    (warned,) = outcome.details["warnings"]
    assert warned["rule"] == "audit.range"
    assert any("'urllib3>=1.0' admits" in n and "a warning by the policy" in n
               for n in notes(outcome))  # fmt: skip


@pytest.fixture(scope="module")
def transitive(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Built:
    """requests 2.19.1 pulls in urllib3 1.23, which has advisories of its own."""
    return _requiring(tmp_path_factory, sdk_wheel, "audit-transitive", "requests==2.19.1")


def test_a_transitive_finding_is_located_at_the_requirement_that_pulls_it_in(
    transitive: Built, tmp_path: Path
) -> None:
    outcome = run_one(AuditCheck(), _context(transitive, tmp_path, vuln_db=ADVISORY_DB))
    assert outcome.status is CheckStatus.FAILED
    pulled = [f for f in outcome.findings if f.message.startswith("urllib3 1.23 ")]
    assert pulled, [f.message for f in outcome.findings]
    for finding in pulled:
        assert (finding.file, finding.line) == ("pyproject.toml", 21)
        assert "(required by requests), pulled in by 'requests==2.19.1' at pyproject.toml:21" in (
            finding.message
        )
    direct = [f for f in outcome.findings if f.message.startswith("requests 2.19.1 ")]
    assert direct and all(", pulled in by" not in f.message for f in direct)
