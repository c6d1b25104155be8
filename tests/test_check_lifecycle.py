"""The `lifecycle` check on real wheels in a real environment: the generated plugins of
every kind pass, every lifecycle-* corpus case fails for its named reason."""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy
from aitbc.plugin_toolkit.certify.checks.lifecycle import LifecycleCheck
from aitbc.plugin_toolkit.certify.distributions import plugin_info
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.policy import Policy, load_policy
from aitbc.plugin_toolkit.certify.runner import run_check as run_one
from certify_support import load_cases, make_project, materialize
from conftest import REPO, make_venv, run_checked
from filelock import FileLock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CHECKS = REPO / "checks"
CORPUS = REPO / "tests" / "corpus"
CASES = sorted(p.name for p in CORPUS.glob("lifecycle-*"))
CORPUS_CASES = {case.name: case for case in load_cases()}
KINDS = ("base", "cli", "blockchain", "ai")
STEP_S = 2.0
_DEFAULT = load_policy(CHECKS)
POLICY = replace(
    _DEFAULT,
    lifecycle=replace(_DEFAULT.lifecycle, step_timeout_s=STEP_S, total_timeout_s=30.0, cpu_s=20),
)

# case -> (rule, text of the plugin.py line the finding points at, or None)
EXPECTED = {
    "lifecycle-raises": ("lifecycle.exception", 'raise RuntimeError("cannot reach'),
    "lifecycle-returns-false": ("lifecycle.returned-false", None),
    "lifecycle-hang": ("lifecycle.hang", "await asyncio.Event().wait()"),
    "lifecycle-blocks": ("lifecycle.hang", "time.sleep(3600)"),
    "lifecycle-os-exit": ("lifecycle.exit", None),
    "lifecycle-memory": ("lifecycle.memory", "self._cache.append"),
    "lifecycle-no-restart": ("lifecycle.exception", 'raise RuntimeError("started once'),
    "lifecycle-leak-thread": ("lifecycle.leak.thread", "time.sleep(0.05)"),
    "lifecycle-leak-task": ("lifecycle.leak.task", "await asyncio.sleep(0.05)"),
    "lifecycle-leak-file": ("lifecycle.leak.file", None),
    "lifecycle-leak-socket": ("lifecycle.leak.socket", None),
    "lifecycle-unhealthy": ("lifecycle.health", None),
    "lifecycle-leak-at-import": ("lifecycle.leak.thread", "time.sleep(0.05)"),
    "lifecycle-state-logging": ("lifecycle.state", None),
    "lifecycle-state-excepthook": ("lifecycle.state", "def _quiet_excepthook("),
    "lifecycle-state-sdk-patch": ("lifecycle.state", "async def _spy_publish("),
    "lifecycle-state-socket": ("lifecycle.state", "def _spy_connect("),
    "lifecycle-foreign-status": ("lifecycle.status", "self.status = PluginStatus.ACTIVE"),
}


@dataclass(frozen=True)
class Environment:
    python: Path
    site_packages: Path


@dataclass(frozen=True)
class Plugins:
    environment: Environment
    projects: dict[str, tuple[Path, Path]]  # case or kind -> (project, wheel)


def generate(name: str, kind: str, destination: Path) -> Path:
    """A project from the real template; a corpus case's changes applied to it."""
    case = CORPUS_CASES.get(name)
    return materialize(case, destination) if case else make_project(name, kind, destination)


def build_wheel(project: Path, out: Path) -> Path:
    target = out / project.name
    run_checked(
        [
            sys.executable,
            "-m",
            "uv",
            "build",
            "-q",
            "--wheel",
            "--out-dir",
            str(target),
            str(project),
        ]
    )
    return next(target.glob("*.whl"))


@pytest.fixture(scope="session")
def plugins(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Plugins:
    """Every good kind and every lifecycle corpus case, built and installed into ONE
    environment beside the SDK and pytest (shared by the xdist workers of a run)."""
    root = tmp_path_factory.getbasetemp()
    root = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "lifecycle-plugins"
    names = {f"good-{kind}": kind for kind in KINDS} | {
        case: tomllib.loads((CORPUS / case / "case.toml").read_text())["kind"] for case in CASES
    }
    with FileLock(str(root) + ".lock"):
        if not (root / "ready").exists():
            shutil.rmtree(root, ignore_errors=True)
            sources = [generate(name, kind, root / "src") for name, kind in names.items()]
            with ThreadPoolExecutor(2) as pool:
                wheels = list(pool.map(lambda p: build_wheel(p, root / "wheels"), sources))
            make_venv(root / "venv", str(sdk_wheel), "pytest", *map(str, wheels))
            (root / "ready").write_text("")
    python = root / "venv" / "bin" / "python"
    site = run_checked(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    )
    projects = {
        name: (root / "src" / name, next((root / "wheels" / name).glob("*.whl"))) for name in names
    }
    return Plugins(Environment(python, Path(site.stdout.strip())), projects)


def context_for(
    plugins: Plugins, name: str, scratch: Path, policy: Policy = POLICY, **changes: Any
) -> CheckContext:
    project, wheel = plugins.projects[name]
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    context = CheckContext(
        project=project,
        workdir=project,
        scratch=scratch,
        policy=policy,
        wheel=wheel,
        plugin=info,
        checks_dir=CHECKS,
        plugin_environment=Lazy(lambda: plugins.environment),
    )
    return replace(context, **changes)


def processes_under(folder: Path) -> list[int]:
    """Live processes whose working directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == str(folder) or cwd.startswith(f"{folder}/")):
            found.append(int(entry.name))
    return found


def run_check(context: CheckContext) -> CheckResult:
    outcome = run_one(LifecycleCheck(), context)
    assert processes_under(context.scratch) == []  # nothing outlives the check
    return outcome


@pytest.mark.parametrize("kind", KINDS)
def test_good_plugins_pass(plugins: Plugins, tmp_path: Path, kind: str) -> None:
    outcome = run_check(context_for(plugins, f"good-{kind}", tmp_path))
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.findings == ()
    assert outcome.summary.startswith("11 steps passed")
    assert [s["step"] for s in outcome.details["steps"]][-4:] == [
        "start again",
        "stop again",
        "cleanup",
        "after cleanup",
    ]


@pytest.mark.parametrize("case", CASES)
def test_corpus_cases_fail_for_their_reason(plugins: Plugins, tmp_path: Path, case: str) -> None:
    spec = tomllib.loads((CORPUS / case / "case.toml").read_text())
    assert spec["fails"] == "lifecycle"
    outcome = run_check(context_for(plugins, case, tmp_path))
    assert outcome.status.value == spec["status"], outcome
    assert any(
        spec["reason"] in text for text in [outcome.summary, *(f.message for f in outcome.findings)]
    ), outcome
    rule, marker = EXPECTED[case]
    first = outcome.findings[0]
    assert first.rule == rule, outcome
    assert first.message.startswith("step "), first
    if marker is not None:  # located in the project's own plugin.py
        assert first.file == "plugin.py", first
        assert first.line is not None
        project = plugins.projects[case][0]
        assert marker in (project / "plugin.py").read_text().splitlines()[first.line - 1], first
    assert outcome.duration_s < 2 * STEP_S + 5  # bounded, whatever the plugin does
    assert outcome.details["worker_log"]  # the worker's output, for the author


def test_each_leak_is_named(plugins: Plugins, tmp_path: Path) -> None:
    messages = {
        case: run_check(context_for(plugins, case, tmp_path / case)).findings[0].message
        for case in ("lifecycle-leak-file", "lifecycle-leak-socket", "lifecycle-leak-task")
    }
    assert messages["lifecycle-leak-file"].startswith("step after cleanup: leaked file /")
    assert "/data/lifecycle-leak-file/events.log (fd " in messages["lifecycle-leak-file"]
    assert messages["lifecycle-leak-socket"].startswith(
        "step after cleanup: leaked socket AF_INET/SOCK_DGRAM at ('127.0.0.1', "
    )
    assert messages["lifecycle-leak-task"].startswith(
        "step after cleanup: leaked asyncio task LifecycleLeakTaskPlugin._beat"
    )


def test_corpus_plugins_pass_their_own_tests(plugins: Plugins, tmp_path: Path) -> None:
    """Only the lifecycle check may fail them: their tests pass as the `tests` check runs
    them (tests/ alone against the installed wheel, nothing telling them it is a check)."""
    for case in CASES:
        shutil.copytree(plugins.projects[case][0] / "tests", tmp_path / case / "tests")
    env = dict(os.environ)
    result = run_checked(
        [str(plugins.environment.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--import-mode=importlib", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert f"{7 * len(CASES)} passed" in result.stdout


def test_could_not_check_is_an_error_never_a_pass(plugins: Plugins, tmp_path: Path) -> None:
    def broken() -> Environment:
        raise RuntimeError("uv is not installed")

    bare = Environment(make_venv(tmp_path / "bare"), tmp_path / "bare")  # no SDK in it
    no_steps = tmp_path / "checks"
    no_steps.mkdir()
    cases: dict[str, dict[str, Any]] = {
        "no environment": {"plugin_environment": None},
        "environment failed": {"plugin_environment": Lazy(broken)},
        "no SDK": {"plugin_environment": Lazy(lambda: bare)},
        "no wheel": {"wheel": None},
        "no conformance steps": {"checks_dir": no_steps},
    }
    summaries = {}
    for label, changes in cases.items():
        outcome = run_check(context_for(plugins, "good-base", tmp_path / label, **changes))
        assert outcome.status is CheckStatus.ERROR, (label, outcome)
        assert [f.rule for f in outcome.findings] == ["lifecycle.error"]
        summaries[label] = outcome.summary
    assert "RuntimeError: uv is not installed" in summaries["environment failed"]
    assert summaries["no SDK"].startswith("could not run the lifecycle: the worker could not start")


def test_a_tighter_policy_applies(plugins: Plugins, tmp_path: Path) -> None:
    policy = replace(POLICY, lifecycle=replace(POLICY.lifecycle, step_timeout_s=1.0))
    began = os.times().elapsed
    outcome = run_check(context_for(plugins, "lifecycle-hang", tmp_path, policy=policy))
    assert outcome.findings[0].message == "step start: hung (no answer within 1s)"
    assert os.times().elapsed - began < 5


def test_cache_inputs(plugins: Plugins, tmp_path: Path) -> None:
    context = context_for(plugins, "good-base", tmp_path)
    inputs = LifecycleCheck().cache_inputs(context)
    assert inputs is not None and inputs[0] == context.wheel
    assert CHECKS / "conformance" / "lifecycle.py" in inputs
    assert LifecycleCheck().cache_inputs(replace(context, wheel=None)) is None
