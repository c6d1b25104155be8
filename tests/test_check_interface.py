"""The `interface` check: the real mypy, resolving the SDK from a real venv, over the
wheels of real plugins (generated projects, the corpus, the spec's flat layout: each
also described at run time by the real metadata probe, in its own environment) and of
small hand-made ones for the corner cases (described by data given here).  What a user
sees: status, summary, findings with the project file and line."""

from __future__ import annotations

import shutil
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, CheckError, Lazy, PluginEnvironment
from aitbc.plugin_toolkit.certify.cache import cache_root
from aitbc.plugin_toolkit.certify.checks._signatures import interface_names
from aitbc.plugin_toolkit.certify.checks.interface import RUNTIME_RULE, InterfaceCheck
from aitbc.plugin_toolkit.certify.distributions import plugin_info
from aitbc.plugin_toolkit.certify.environment import environment_for
from aitbc.plugin_toolkit.certify.model import CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.policy import Policy, load_policy
from aitbc.plugin_toolkit.certify.probes import MetadataProbe, run_metadata_probe
from aitbc.plugin_toolkit.certify.runner import run_check as run_one
from aitbc.plugins import BasePlugin
from certify_support import Case, load_cases, make_project, materialize
from conftest import REPO, make_venv, run_checked

pytestmark = pytest.mark.integration
CHECKS_DIR = REPO / "checks"
CASES = [c for c in load_cases() if c.fails == "interface"]
KINDS = ("base", "cli", "blockchain", "ai")


@dataclass(frozen=True)
class Environment:
    python: Path

    @property
    def site_packages(self) -> Path:  # make_venv's layout: a venv of this Python
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        return self.python.parent.parent / "lib" / version / "site-packages"


def build_wheel(project: Path, out: Path) -> Path:
    run_checked([sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(out),
                 str(project)])  # fmt: skip
    return next(out.glob("*.whl"))


def run_check(
    project: Path, wheel: Path, scratch: Path, python: Path, policy: Policy | None = None,
    probe: Lazy[MetadataProbe] | None = None,
) -> CheckResult:  # fmt: skip
    """The check over ``wheel`` with ``python``'s site-packages, the run-time half
    answered by ``probe`` (none: not compared)."""
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    scratch.mkdir(parents=True, exist_ok=True)
    context = CheckContext(
        project=project, workdir=project, scratch=scratch,
        policy=policy or load_policy(CHECKS_DIR), wheel=wheel, plugin=info,
        checks_dir=CHECKS_DIR, plugin_environment=Lazy(lambda: Environment(python)),
        metadata_probe=probe,
    )  # fmt: skip
    return run_one(InterfaceCheck(), context)


def run_installed(project: Path, wheel: Path, scratch: Path) -> CheckResult:
    """The check as certify runs it: the plugin installed in its own environment, and
    the real metadata probe, in the jail, describing its class at run time."""
    info, problem = plugin_info(wheel)
    assert info is not None, problem
    installed = environment_for(wheel, cache_root())
    scratch.mkdir(parents=True, exist_ok=True)
    environment: Lazy[PluginEnvironment] = Lazy(lambda: installed)
    context = CheckContext(
        project=project, workdir=project, scratch=scratch, policy=load_policy(CHECKS_DIR),
        wheel=wheel, plugin=info, checks_dir=CHECKS_DIR, plugin_environment=environment,
    )  # fmt: skip
    probed = replace(context, metadata_probe=Lazy(lambda: run_metadata_probe(context)))
    return run_one(InterfaceCheck(), probed)


def handmade(tmp_path: Path, plugin: str, entry: str = "hand_made.plugin:HandMadePlugin",
             **more: str) -> tuple[Path, Path]:  # fmt: skip
    """A flat-layout project and the wheel it would build (its files under hand_made/)."""
    project = tmp_path / "project"
    wheel = tmp_path / "hand_made-1.0.0-py3-none-any.whl"
    files = {"__init__.py": "", "plugin.py": plugin, **more}
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_text(text)
            archive.writestr(f"hand_made/{name}", text)
        info = "hand_made-1.0.0.dist-info"
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: hand-made\nVersion: 1.0.0\n"
        )
        archive.writestr(f"{info}/entry_points.txt", f"[aitbc.plugins]\nhand-made = {entry}\n")
    return project, wheel


PLUGIN = """from typing import Any

from aitbc.plugins import BasePlugin, PluginMetadata


def helper(values):
    return sum(values)


class HandMadePlugin(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(name="hand-made", version="1.0.0", description="d",
                              author="a", license="MIT")

    async def initialize(self) -> bool:
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True
"""


def line_of(project: Path, text: str, file: str = "plugin.py") -> int:
    lines = (project / file).read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


@pytest.fixture(scope="module")
def python(sdk_venv: Path) -> Path:
    """The plugin environment's interpreter: the SDK wheel (and its dependencies)."""
    return sdk_venv


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Good generated plugins, the corpus cases and the spec's flat layout, with wheels."""
    where = tmp_path_factory.mktemp("interface-projects")
    projects = {kind: make_project(f"good-{kind}", kind, where) for kind in KINDS}
    projects.update({case.name: materialize(case, where) for case in CASES})
    projects["spec-flat"] = where / "my-plugin"
    shutil.copytree(REPO / "tests" / "data" / "spec-flat" / "my-plugin", projects["spec-flat"])
    with ThreadPoolExecutor(4) as pool:
        wheels = pool.map(lambda n: build_wheel(projects[n], where / "wheels" / n), projects)
        return {name: (projects[name], wheel) for name, wheel in zip(projects, wheels)}


@pytest.mark.parametrize("name", [*KINDS, "spec-flat"])
def test_good_plugins_pass(name: str, built: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    outcome = run_installed(*built[name], tmp_path)
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.summary.endswith(
        "implements its kind's interface (mypy found no interface error; its run-time "
        "signatures are the SDK's)"
    )
    assert outcome.details["other_type_errors"] == 0
    kind = "base" if name == "spec-flat" else name
    assert outcome.details["runtime_signatures"].startswith(f"the {kind} interface's ")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_fails_with_its_reason(
    case: Case, built: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    project, wheel = built[case.name]
    outcome = run_installed(project, wheel, tmp_path)
    assert outcome.status.value == case.status
    [finding] = [f for f in outcome.findings if case.reason in f.message]
    assert finding.file == "plugin.py"
    assert finding.severity.value == "high"
    # No echo from the mypy probe, nor from the run-time comparison of a method mypy named.
    assert len(outcome.findings) == 1, outcome.findings
    method = {
        "interface-signature": "def get_balance",
        "interface-sync-method": "def train(self",
        "interface-missing-method": "class InterfaceMissingMethodPlugin",
        "interface-runtime-split": "async def get_contract_events(self, contract_address, "
        "event_name, from_block):",
    }[case.name]
    assert finding.line == line_of(project, method)
    if case.name == "interface-runtime-split":
        assert finding.rule == RUNTIME_RULE
        assert finding.message == (
            "`async def get_contract_events(self, contract_address, event_name, from_block)` "
            "runs, but hosts call `async def get_contract_events(self, contract_address, "
            "event_name, from_block=...)`: it requires `from_block`, which hosts may leave out"
        )


def test_untyped_sync_override_of_an_async_method(python: Path, tmp_path: Path) -> None:
    plugin = PLUGIN.replace("    async def stop(self) -> bool:", "    def stop(self):")
    project, wheel = handmade(tmp_path, plugin)
    outcome = run_check(project, wheel, tmp_path / "scratch", python)
    assert outcome.status is CheckStatus.FAILED
    [finding] = outcome.findings
    assert finding.rule == "interface.no-any-return"
    assert "`await plugin.stop()`" in finding.message
    assert "where the SDK declares `async def`" in finding.message
    assert (finding.file, finding.line) == ("plugin.py", line_of(project, "class HandMadePlugin"))


def test_type_ignore_does_not_hide_an_interface_error(python: Path, tmp_path: Path) -> None:
    plugin = PLUGIN.replace(
        "    async def cleanup(self) -> bool:",
        "    async def cleanup(self, force: bool) -> bool:  # type: ignore[override]",
    )
    project, wheel = handmade(tmp_path, "# mypy: ignore-errors\n" + plugin)
    outcome = run_check(project, wheel, tmp_path / "scratch", python)
    assert outcome.status is CheckStatus.FAILED
    [finding] = outcome.findings
    assert finding.rule == "interface.override"
    assert 'Signature of "cleanup" incompatible with supertype' in finding.message
    assert finding.line == line_of(project, "async def cleanup")
    assert outcome.details["disregarded_suppressions"] == 2
    assert (project / "plugin.py").read_text().startswith("# mypy: ignore-errors")  # untouched


def test_type_errors_outside_the_interface_are_listed_not_failed(
    python: Path, tmp_path: Path
) -> None:
    plugin = PLUGIN + "\n    def total(self) -> int:\n        return 'not an int'\n"
    project, wheel = handmade(tmp_path, plugin)
    outcome = run_check(project, wheel, tmp_path / "scratch", python)
    assert outcome.status is CheckStatus.PASSED, outcome
    assert outcome.details["other_type_errors"] == 1
    [listed] = outcome.details["other_type_errors_sample"]
    line = line_of(project, "return 'not an int'")
    assert listed.startswith(f"plugin.py:{line}: Incompatible return value type")


def test_re_exported_class_is_located_at_its_definition(python: Path, tmp_path: Path) -> None:
    plugin = PLUGIN.replace("    async def start(self) -> bool:\n        return True\n", "")
    project, wheel = handmade(
        tmp_path,
        plugin,
        "hand_made:HandMadePlugin",
        **{"__init__.py": "from .plugin import HandMadePlugin\n"},
    )
    outcome = run_check(project, wheel, tmp_path / "scratch", python)
    [finding] = outcome.findings
    assert 'abstract attribute "start"' in finding.message
    assert (finding.file, finding.line) == ("plugin.py", line_of(project, "class HandMadePlugin"))


def test_entry_point_that_is_not_a_plugin_class(python: Path, tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, PLUGIN + "\n\nclass NotAPlugin:\n    pass\n",
                              "hand_made.plugin:NotAPlugin")  # fmt: skip
    outcome = run_check(project, wheel, tmp_path / "scratch", python)
    assert outcome.status is CheckStatus.FAILED
    assert any("NotAPlugin is a BasePlugin subclass" in f.message for f in outcome.findings)


def test_sdk_missing_from_the_environment_is_an_error(tmp_path: Path) -> None:
    bare = make_venv(tmp_path / "bare-venv")
    project, wheel = handmade(tmp_path, PLUGIN)
    outcome = run_check(project, wheel, tmp_path / "scratch", bare)
    assert outcome.status is CheckStatus.ERROR
    assert "mypy could not resolve the SDK" in outcome.summary


def test_mypy_failing_to_run_is_an_error(tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, PLUGIN)
    outcome = run_check(project, wheel, tmp_path / "scratch", tmp_path / "no" / "python")
    assert outcome.status is CheckStatus.ERROR
    assert outcome.summary.startswith("mypy failed")


def test_timeout_is_an_error(python: Path, tmp_path: Path) -> None:
    project, wheel = handmade(tmp_path, PLUGIN)
    policy = replace(load_policy(CHECKS_DIR), tool_timeout_s=0.01)
    outcome = run_check(project, wheel, tmp_path / "scratch", python, policy)
    assert outcome.status is CheckStatus.ERROR
    assert "mypy took longer than" in outcome.summary


# -- the run-time half, over descriptions given as data -----------------------------------
INSTALLED = "/venv/lib/python3.12/site-packages/hand_made/plugin.py"
SPLIT_STOP = """    if TYPE_CHECKING:

        async def stop(self) -> bool: ...

    else:
        stop = lambda self, now: True  # noqa: E731
"""


def described(source: str) -> dict[str, Any]:
    """The probe's runtime section for ``source``, as it would run installed: the real
    probe (loaded here) over the class the source makes."""
    from test_runtime_signatures import PROBE

    namespace: dict[str, Any] = {"__name__": "hand_made.plugin"}
    exec(compile(source, INSTALLED, "exec"), namespace)  # our own test code
    cls = namespace["HandMadePlugin"]
    section: dict[str, Any] = PROBE.runtime(cls, None, "base", interface_names(), BasePlugin)
    return section


def test_what_runs_is_compared_and_found_where_it_is(python: Path, tmp_path: Path) -> None:
    plugin = PLUGIN.replace("from typing import Any", "from typing import TYPE_CHECKING, Any")
    plugin = plugin.replace("    async def stop(self) -> bool:\n        return True\n", SPLIT_STOP)
    project, wheel = handmade(tmp_path, plugin)
    answer = MetadataProbe(runtime=described(plugin))
    outcome = run_check(project, wheel, tmp_path / "scratch", python, probe=Lazy(lambda: answer))
    assert outcome.status is CheckStatus.FAILED, outcome
    [finding] = outcome.findings
    assert finding.rule == RUNTIME_RULE
    assert finding.message == (
        "`def stop(self, now)` runs, but hosts call `async def stop(self)`: it is not a "
        "coroutine function, and hosts await what it returns; it requires `now`, which hosts "
        "do not pass"
    )
    assert (finding.file, finding.line) == ("plugin.py", line_of(project, "stop = lambda"))
    assert outcome.summary == "1 interface error(s) in hand_made.plugin:HandMadePlugin"


def broken_probe() -> MetadataProbe:
    raise CheckError("the metadata probe took longer than 300s")


@pytest.mark.parametrize(
    ("probe", "reason"),
    [
        (lambda: MetadataProbe(runtime={"kind": "base", "subclass": True}),
         "the probe's run-time signatures are malformed: 'methods' is not an object"),
        (lambda: MetadataProbe(error="importing hand_made.plugin:HandMadePlugin failed: boom"),
         "the plugin's run-time signatures are unknown: importing hand_made.plugin:"
         "HandMadePlugin failed: boom"),
        (broken_probe, "the metadata probe took longer than 300s"),
    ],
    ids=["malformed", "not-loaded", "probe-failed"],
)  # fmt: skip
def test_a_run_time_description_that_cannot_be_had_is_an_error(
    probe: Any, reason: str, python: Path, tmp_path: Path
) -> None:
    project, wheel = handmade(tmp_path, PLUGIN)
    outcome = run_check(project, wheel, tmp_path / "scratch", python, probe=Lazy(probe))
    assert outcome.status is CheckStatus.ERROR, outcome
    assert outcome.summary == reason
    [finding] = outcome.findings
    assert (finding.rule, finding.message) == ("interface.error", reason)
