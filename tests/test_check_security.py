"""The `security` check: the real bandit and the dynamic-code rule over the wheels and
projects of real plugins (built from generated projects and from the corpus), and over
small hand-made wheels for the corner cases; what is scanned (scanned.py) unit by unit.
What a user sees: status, summary, findings with rule, file and line."""

from __future__ import annotations

import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext
from aitbc.plugin_toolkit.certify.checks.security import SecurityCheck, parse_nosec
from aitbc.plugin_toolkit.certify.distributions import plugin_info
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.policy import Policy, load_policy
from aitbc.plugin_toolkit.certify.runner import run_check as run_one
from certify_support import Case, load_cases, make_project, materialize
from conftest import REPO, run_checked
from test_scanned import pyc

pytestmark = pytest.mark.integration
CHECKS_DIR = REPO / "checks"
CASES = [c for c in load_cases() if c.fails == "security"]
#: The cases whose one finding is the shell=True call they add to plugin.py.
SHELL_IN_PLUGIN = [c for c in CASES if c.name != "security-hidden-in-build-and-tests"]
KINDS = ("base", "cli", "blockchain", "ai")


def default_policy() -> Policy:
    return load_policy(CHECKS_DIR)


def build_wheel(project: Path, out: Path) -> Path:
    run_checked([sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(out),
                 str(project)])  # fmt: skip
    return next(out.glob("*.whl"))


def run_check(
    project: Path, wheel: Path, scratch: Path, policy: Policy | None = None
) -> CheckResult:
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    scratch.mkdir(parents=True, exist_ok=True)
    context = CheckContext(
        project=project, workdir=project, scratch=scratch, policy=policy or default_policy(),
        wheel=wheel, plugin=info, checks_dir=CHECKS_DIR,
    )  # fmt: skip
    return run_one(SecurityCheck(), context)


def handmade(
    tmp_path: Path,
    files: dict[str, str],
    module: str = "hand_made",
    project_only: dict[str, str] | None = None,
    wheel_only: dict[str, bytes] | None = None,
) -> tuple[Path, Path]:
    """A flat-layout project and the wheel it would build (its files under ``module/``),
    with files only the project holds and members only the wheel holds (at their path)."""
    project = tmp_path / "project"
    wheel = tmp_path / f"{module}-1.0.0-py3-none-any.whl"
    info = f"{module}-1.0.0.dist-info"
    for name, text in (project_only or {}).items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    project.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_text(text)
            archive.writestr(f"{module}/{name}", text)
        for name, data in (wheel_only or {}).items():
            archive.writestr(name, data)
        archive.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0.0\n"
        )
        archive.writestr(
            f"{info}/entry_points.txt",
            f"[aitbc.plugins]\nhand-made = {module}.plugin:HandMadePlugin\n",
        )
    return project, wheel


SHELL_HOOK = """import subprocess


def run_hook(command: str) -> int:
    return subprocess.call(command, shell=True){comment}
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """The good generated plugins and the corpus cases: project and built wheel."""
    where = tmp_path_factory.mktemp("security-projects")
    made = {}
    for kind in KINDS:
        project = make_project(f"good-{kind}", kind, where)
        made[kind] = (project, build_wheel(project, where / "wheels" / kind))
    for case in CASES:
        project = materialize(case, where)
        made[case.name] = (project, build_wheel(project, where / "wheels" / case.name))
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_good_generated_plugins_pass(
    kind: str, generated: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    outcome = run_check(*generated[kind], tmp_path)
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.findings == ()
    assert "no issue at or above medium severity and medium confidence" in outcome.summary
    why = {f["file"]: f["why"] for f in outcome.details["scanned_files"]}
    assert why == {
        "__init__.py": "ships in the wheel",
        "plugin.py": "ships in the wheel",
        "setup.py": "setup.py runs during the build",
        "conftest.py": "pytest runs every conftest.py it finds",
        "tests/__init__.py": "test code runs with the tests",
        "tests/test_plugin.py": "test code runs with the tests",
    }
    assert outcome.details["scanned"] == 6
    # The tests' asserts are how they check (B101 is for code that ships).
    assert outcome.details["below_threshold"] == []


@pytest.mark.parametrize("case", SHELL_IN_PLUGIN, ids=[c.name for c in SHELL_IN_PLUGIN])
def test_corpus_case_fails_with_its_reason(
    case: Case, generated: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    project, wheel = generated[case.name]
    outcome = run_check(project, wheel, tmp_path)
    assert outcome.status.value == case.status
    [finding] = outcome.findings
    assert case.reason in finding.message
    assert finding.rule == "security.B602"
    assert finding.severity.value == "high"
    assert finding.file == "plugin.py"  # the project file, not the wheel's path
    lines = (project / "plugin.py").read_text().splitlines()
    assert finding.line is not None
    assert "shell=True" in lines[finding.line - 1]
    # `import subprocess` (B404) is low severity: listed, not failed.
    assert [b["rule"] for b in outcome.details["below_threshold"]] == ["security.B404"]


def test_nosec_with_a_reason_suppresses(tmp_path: Path) -> None:
    comment = "  # nosec B602 - the command comes from the operator's own config file"
    project, wheel = handmade(tmp_path, {"plugin.py": SHELL_HOOK.format(comment=comment)})
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.PASSED, outcome
    [suppressed] = outcome.details["suppressed"]
    assert suppressed["rule"] == "security.B602"
    assert suppressed["reason"] == "the command comes from the operator's own config file"
    assert (suppressed["file"], suppressed["line"]) == ("plugin.py", 5)
    assert "1 suppressed with a reason" in outcome.summary


@pytest.mark.parametrize(
    "comment",
    ["  # nosec", "  # nosec B602", "  # nosec: B602", "  # nosec B607 - names another test"],
)
def test_nosec_that_does_not_count(comment: str, tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, {"plugin.py": SHELL_HOOK.format(comment=comment)})
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.FAILED
    [finding] = outcome.findings
    assert (finding.rule, finding.file, finding.line) == ("security.B602", "plugin.py", 5)
    if "B607" not in comment:
        assert "nosec without a reason does not count" in finding.message


def test_bare_nosec_counts_when_the_policy_says_so(tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, {"plugin.py": SHELL_HOOK.format(comment="  # nosec")})
    policy = replace(default_policy(), nosec_needs_reason=False)
    outcome = run_check(project, wheel, tmp_path / "scratch", policy)
    assert outcome.status is CheckStatus.PASSED
    assert outcome.details["suppressed"][0]["reason"] == ""


def test_threshold_follows_the_policy(tmp_path: Path) -> None:
    # B301 (pickle): medium severity, high confidence.
    source = "import pickle\n\n\ndef load(data: bytes) -> object:\n    return pickle.loads(data)\n"
    project, wheel = handmade(tmp_path, {"plugin.py": source})
    failed = run_check(project, wheel, tmp_path / "a")
    assert [(f.rule, f.severity.value, f.line) for f in failed.findings] == [
        ("security.B301", "medium", 5)
    ]
    assert "confidence high" in failed.findings[0].message
    relaxed = run_check(project, wheel, tmp_path / "b",
                        replace(default_policy(), security_severity="high"))  # fmt: skip
    assert relaxed.status is CheckStatus.PASSED
    assert {b["rule"] for b in relaxed.details["below_threshold"]} == {
        "security.B301", "security.B403"
    }  # fmt: skip


def test_hidden_in_build_and_tests_corpus_case(
    generated: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """setup.py exec()s base64-hidden code and conftest.py, which never ships, runs a
    shell: both are found, at their project file and line."""
    project, wheel = generated["security-hidden-in-build-and-tests"]
    outcome = run_check(project, wheel, tmp_path)
    assert outcome.status is CheckStatus.FAILED
    seen = {(f.rule, f.file): f for f in outcome.findings}
    assert set(seen) == {
        ("security.B602", "conftest.py"),
        ("security.B102", "setup.py"),
        ("security.encoded-exec", "setup.py"),
    }
    for finding in outcome.findings:
        file = str(finding.file)
        assert finding.line is not None
        line = (project / file).read_text().splitlines()[finding.line - 1]
        assert ("shell=True" if file == "conftest.py" else "exec(base64.b64decode(") in line
    encoded = seen[("security.encoded-exec", "setup.py")]
    assert "exec() runs data decoded by base64.b64decode" in encoded.message
    assert "[rule encoded-exec: severity high, confidence high]" in encoded.message


def test_shipped_tests_and_scaffolding_are_scanned(tmp_path: Path) -> None:
    """A test_*.py, *_test.py, tests/ or conftest.py in the wheel is installed code."""
    bad = SHELL_HOOK.format(comment="")
    project, wheel = handmade(tmp_path, {
        "__init__.py": "", "plugin.py": "X = 1\n", "tests/test_plugin.py": bad,
        "test_more.py": bad, "more_test.py": bad, "conftest.py": bad, "setup.py": bad,
    })  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.FAILED
    assert {(f.rule, f.file, f.line) for f in outcome.findings} == {
        ("security.B602", name, 5)
        for name in ("tests/test_plugin.py", "test_more.py", "more_test.py", "conftest.py",
                     "setup.py")
    }  # fmt: skip
    assert {f["why"] for f in outcome.details["scanned_files"]} == {"ships in the wheel"}


def test_what_runs_in_the_project_is_scanned(tmp_path: Path) -> None:
    """Files that never ship but run: conftest.py anywhere, tests' helpers, the modules
    setup.py imports, the in-tree build backend.  docs/conf.py runs in neither."""
    bad = SHELL_HOOK.format(comment="")
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": "X = 1\n"},
                              project_only={
        "setup.py": "import _stamp\n", "_stamp.py": bad, "sub/conftest.py": bad,
        "tests/helpers/shell.py": bad, "backend/hooks.py": bad, "docs/conf.py": bad,
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "hooks"\n'
                          'backend-path = ["backend"]\n',
    })  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert {(f.rule, f.file, f.line) for f in outcome.findings} == {
        ("security.B602", name, 5)
        for name in ("_stamp.py", "sub/conftest.py", "tests/helpers/shell.py", "backend/hooks.py")
    }
    why = {f["file"]: f["why"] for f in outcome.details["scanned_files"]}
    assert why["_stamp.py"] == "imported by setup.py"
    assert why["backend/hooks.py"] == "the in-tree build backend (backend-path) runs the build"
    assert "docs/conf.py" not in why


def test_no_file_escapes_bandit_for_its_name(tmp_path: Path) -> None:
    """bandit's default excludes match anywhere in a path: "CVS", ".git", ".tox"."""
    bad = SHELL_HOOK.format(comment="")
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": "X = 1\n",
                                         "CVS_tools.py": bad, "my.tox.py": bad})  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert {(f.rule, f.file) for f in outcome.findings} == {
        ("security.B602", "CVS_tools.py"), ("security.B602", "my.tox.py")
    }  # fmt: skip


def test_what_the_wheel_data_installs_is_scanned(tmp_path: Path) -> None:
    bad = SHELL_HOOK.format(comment="").encode()
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": "X = 1\n"},
                              wheel_only={"hand_made-1.0.0.data/purelib/sneaky.py": bad,
                                          "hand_made-1.0.0.data/scripts/hook": b"#!python\n" + bad,
                                          "hand_made-1.0.0.data/data/notes.txt": b"x"})  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert {(f.rule, f.file, f.line) for f in outcome.findings} == {
        ("security.B602", "hand_made-1.0.0.data/purelib/sneaky.py", 5),
        ("security.B602", "hand_made-1.0.0.data/scripts/hook", 6),
    }


def test_dynamic_code_is_a_finding_with_its_construct_and_line(tmp_path: Path) -> None:
    source = (
        "import builtins\n\n\ndef run(code: str) -> None:\n"
        "    getattr(builtins, 'ex' + 'ec')(code)\n"
    )
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": source})
    outcome = run_check(project, wheel, tmp_path / "scratch")
    [finding] = outcome.findings
    assert (finding.rule, finding.severity.value, finding.file, finding.line) == (
        "security.dynamic-exec", "high", "plugin.py", 5
    )  # fmt: skip
    assert finding.message == (
        "`getattr(builtins, 'ex' + 'ec')` reaches exec() through the builtins, where bandit "
        "does not look [rule dynamic-exec: severity high, confidence high]"
    )


def test_nosec_names_the_rule_of_the_toolkit_too(tmp_path: Path) -> None:
    source = (
        "import importlib\n\n\ndef load(name: str) -> object:\n"
        "    return importlib.import_module(name)  # nosec dynamic-import - names from config\n"
    )
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": source})
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.PASSED, outcome
    [suppressed] = outcome.details["suppressed"]
    assert (suppressed["rule"], suppressed["line"]) == ("security.dynamic-import", 5)
    assert suppressed["reason"] == "names from config"


def test_bytecode_without_its_source_fails(tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, {"__init__.py": "", "plugin.py": "X = 1\n"}, wheel_only={
        "hand_made/__pycache__/payload.cpython-311.pyc": pyc(),
        "hand_made/__pycache__/plugin.cpython-311.pyc": pyc(),  # beside its source: fine
    })  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.FAILED
    [finding] = outcome.findings
    assert (finding.rule, finding.file, finding.line) == (
        "security.bytecode-only", "hand_made/__pycache__/payload.cpython-311.pyc", None
    )  # fmt: skip
    assert finding.message == "bytecode whose source the wheel does not ship: it cannot be reviewed"
    assert "bytecode without its source" in outcome.summary


def test_a_string_that_looks_like_nosec_is_not_one(tmp_path: Path) -> None:
    source = SHELL_HOOK.format(comment="") + 'NOTE = "# nosec B602 - in a string, not a comment"\n'
    project, wheel = handmade(tmp_path, {"plugin.py": source})
    assert run_check(project, wheel, tmp_path / "scratch").status is CheckStatus.FAILED


def test_unscannable_module_is_an_error(tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, {"plugin.py": "def broken(:\n"})
    outcome = run_check(project, wheel, tmp_path / "scratch")
    assert outcome.status is CheckStatus.ERROR
    assert "bandit could not scan plugin.py" in outcome.summary


def test_timeout_is_an_error(tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, {"plugin.py": "X = 1\n"})
    outcome = run_check(project, wheel, tmp_path / "scratch",
                        replace(default_policy(), tool_timeout_s=0.01))  # fmt: skip
    assert outcome.status is CheckStatus.ERROR
    assert "bandit took longer than" in outcome.summary


@pytest.mark.parametrize(
    ("comment", "tests", "reason"),
    [
        ("# nosec", set(), ""),
        ("# nosec B602", {"B602"}, ""),
        ("#nosec: B602,B607", {"B602", "B607"}, ""),
        ("# nosec B602 - input is a constant", {"B602"}, "input is a constant"),
        ("# nosec B602, B604: cmd is fixed", {"B602", "B604"}, "cmd is fixed"),
        ("# nosec: reviewed by security", set(), "reviewed by security"),
        ("# nosec - user_input is validated", set(), "user_input is validated"),
        ("# noqa: S602  # nosec B602 -- fixed argv", {"B602"}, "fixed argv"),
        ("# nosec subprocess_popen_with_shell_equals_true",
         {"subprocess_popen_with_shell_equals_true"}, ""),
        ("# nosec B602 ---", {"B602"}, ""),
        ("# nosec dynamic-exec - the name is fixed", {"dynamic-exec"}, "the name is fixed"),
        ("# nosec encoded-exec, B102: a reviewed stamp", {"encoded-exec", "B102"},
         "a reviewed stamp"),
    ],
)  # fmt: skip
def test_nosec_syntax(comment: str, tests: set[str], reason: str) -> None:
    nosec = parse_nosec(comment)
    assert nosec is not None
    assert (set(nosec.tests), nosec.reason) == (tests, reason)
    assert parse_nosec("# an ordinary comment") is None
