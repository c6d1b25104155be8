"""`aitbc-plugin certify` of hostile plugins, one behaviour per test, each through the
real CLI: what the user sees (exit status, `certified`, the rule and a message naming the
action) and that the harm did not happen (no process outlives the run, the toolkit's
cache is unchanged, a forgery is not believed).

The plugins are generated with `aitbc-plugin new` (certify_support.make_project) and
given hostile code in their setup.py (the build phase), at the module level of plugin.py
(the import phase: the metadata probe, and the lifecycle worker and the tests, which
import it too), in start() (the lifecycle check) and in their own tests.  Code that
must not disturb the plugin's own tests runs only "in a host" (outside pytest), as
careless plugins do.  The last three are attacks this file's first run found to work
(a rewritten worker channel, the probe's nonce read from its globals, certification
named in the jail's paths), kept as tests now that they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from certify_support import make_project
from conftest import FAST_POLICY, VULN_DB
from hostile_code import (
    BLIND_FINDER,
    ENVIRONMENT_TEST,
    FORGE_CHANNEL,
    FORGE_PROBE,
    FORGED_METADATA,
    IN_A_HOST,
    LAST_METADATA,
    LEAK,
    LISTEN_PORT,
    NEEDS_PERMISSIONS_TEST,
    OUTLIVE,
    PERMISSIONS,
    PHASES,
    REWRITE_ANSWERS,
    RUNS_A_PROGRAM_TEST,
    START,
    STEAL_PROBE_NONCE,
    TAMPER,
    UNWATCHED,
)

pytestmark = pytest.mark.integration
TOOL = Path(sys.executable).with_name("aitbc-plugin")


@dataclass(frozen=True)
class Hostile:
    """What a generated project gets on top of `aitbc-plugin new`'s files."""

    module: str = ""  # appended to plugin.py: runs at import
    start: str = ""  # run first in start(), one statement per line
    metadata: str = ""  # more arguments of the PluginMetadata(...) call
    setup: str = ""  # appended to setup.py: runs at build
    tests: str = ""  # appended to tests/test_plugin.py


def project(where: Path, name: str, hostile: Hostile) -> Path:
    """A generated plugin with ``hostile``'s code; unique bytes, so nothing is reused."""
    folder = make_project(name, "base", where)
    plugin = folder / "plugin.py"
    text = plugin.read_text(encoding="utf-8")
    assert START in text and LAST_METADATA in text
    body = "".join(f"        {line}\n" for line in hostile.start.splitlines())
    text = text.replace(START, START + body, 1)
    text = text.replace(LAST_METADATA, LAST_METADATA + hostile.metadata, 1)
    plugin.write_text(f"{text}\n# run {uuid.uuid4().hex}\n{hostile.module}", encoding="utf-8")
    for relative, code in (("setup.py", hostile.setup), ("tests/test_plugin.py", hostile.tests)):
        target = folder / relative
        target.write_text(target.read_text(encoding="utf-8") + code, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Certified:
    """One `aitbc-plugin certify --format json` run, as its user sees it."""

    returncode: int
    report: dict[str, Any]
    stderr: str

    def check(self, check_id: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.report["checks"] if c["id"] == check_id)
        return found

    def findings(self, check_id: str, rule: str | None = None) -> list[str]:
        """The messages of ``check_id``'s findings (of ``rule`` only, when given)."""
        return [
            f["message"]
            for f in self.check(check_id)["findings"]
            if rule is None or f["rule"] == rule
        ]

    def rules(self, check_id: str) -> set[str]:
        return {f["rule"] for f in self.check(check_id)["findings"]}

    def excerpt(self, *check_ids: str) -> str:
        """The report's part a failing assertion shows."""
        shown = {"certified": self.report["certified"], "reasons": self.report["reasons"],
                 "checks": [self.check(c) for c in check_ids],
                 "behaviour": self.report.get("behaviour")}  # fmt: skip
        return json.dumps(shown, indent=1)[:6000]


def certify(project: Path, policy: Path, cache: Path) -> Certified:
    """The real CLI, its toolkit cache in ``cache``; the run must be fully isolated."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    run = subprocess.run([str(TOOL), "certify", str(project), "--format", "json",
                          "--vuln-db", str(VULN_DB), "--policy", str(policy)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    try:
        report = json.loads(run.stdout)
    except ValueError:
        pytest.fail(f"no report (exit {run.returncode}): {run.stdout[-3000:]}{run.stderr[-3000:]}")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == (0 if report["certified"] else 1), (run.returncode, run.stderr)
    assert report["isolation"]["level"] == "full", report["isolation"]
    return Certified(run.returncode, report, run.stderr)


def processes_with(marker: str) -> list[tuple[int, str]]:
    """Live processes whose command line holds ``marker`` (a zombie's is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def sha256_of(files: list[Path]) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(FAST_POLICY)
    return path


@pytest.fixture
def cache(isolated_user_cache: Path) -> Path:
    """The run's shared toolkit cache (conftest.py): for the tests that leave it alone."""
    return isolated_user_cache


# -- one test per hostile behaviour --------------------------------------------------------
def test_processes_started_in_every_phase_do_not_outlive_certify(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Processes outliving certify: a sleeper, double forked into its own session, from
    setup.py (build), at import (the probe, the lifecycle worker and the tests import
    it) and in a test.  None is alive when certify returns, and each phase names it."""
    tag = f"outlive-{uuid.uuid4().hex[:10]}"
    hostile = Hostile(
        module=f'{OUTLIVE}\n\n_outlive("{tag}-import")\n',
        setup=f'{OUTLIVE}\n\n_outlive("{tag}-build")\n',
        tests=f'\n{OUTLIVE}\n\ndef test_outlives() -> None:\n    _outlive("{tag}-tests")\n',
    )
    project_dir = project(tmp_path, "outliving-plugin", hostile)
    run = certify(project_dir, policy, cache)
    alive = processes_with(tag)
    try:
        assert alive == []  # the harm: nothing of the plugin's runs on after certify
    finally:
        for pid, _ in alive:  # what the assertion found, and only that
            os.kill(pid, signal.SIGKILL)
    assert not run.report["certified"] and run.returncode == 1
    started = {"build": ["build"], "import": ["import"], "lifecycle": ["import"],
               "tests": ["import", "tests"]}  # fmt: skip
    for phase, check_id in PHASES.items():
        left = run.report["behaviour"][phase]["processes_left"]
        messages = run.findings(check_id, f"{check_id}.process")
        assert run.check(check_id)["status"] == "failed", run.excerpt(check_id)
        for where in started[phase]:
            sleeper = f"time.sleep(300) # {tag}-{where})"
            assert any(entry.startswith("left running pid ") and entry.endswith(sleeper)
                       for entry in left), (phase, left)  # fmt: skip
            assert any(m.startswith(f"{phase}: left running pid ") and sleeper in m
                       and m.endswith("after the step ended; it was killed")
                       for m in messages), run.excerpt(check_id)  # fmt: skip
    # The worker's supervisor saw its orphan from outside, too.
    outside = run.findings("lifecycle", "lifecycle.leak.process")
    assert outside and outside[0].startswith("step after cleanup: left a process running: pid ")
    # The same plugin again, same cache: what its import did is seen again, not hidden
    # by a cached answer of the metadata probe (only quiet answers are kept).
    again = certify(project_dir, policy, cache)
    try:
        assert processes_with(tag) == []
    finally:
        for pid, _ in processes_with(tag):
            os.kill(pid, signal.SIGKILL)
    (seen_again,) = again.findings("metadata", "metadata.process")  # asked again: a new pid
    assert seen_again.startswith("import: left running pid ") and f"{tag}-import)" in seen_again


def test_answers_forged_on_the_result_channel_at_import_are_refused(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Forged result channel at import: plugin.py finds the worker's pipes through
    /proc/self/fd and writes its messages, every step passed, before it is asked; its
    start() would leak a thread and a listening socket.  Nothing forged is believed."""
    hostile = Hostile(
        module=IN_A_HOST + LEAK + FORGE_CHANNEL, start="if _in_a_host():\n    _leak()"
    )
    run = certify(project(tmp_path, "forging-plugin", hostile), policy, cache)
    assert not run.report["certified"] and run.returncode == 1
    lifecycle = run.check("lifecycle")
    assert lifecycle["status"] == "failed", run.excerpt("lifecycle")
    assert run.rules("lifecycle") == {"lifecycle.forged"}, run.excerpt("lifecycle")
    (message,) = run.findings("lifecycle")
    assert message.startswith("step import: the result channel carried a message no step sent (")
    assert message.endswith("): forged")
    # Not one step was taken to have passed on the forger's word.
    assert [s["step"] for s in lifecycle["details"]["steps"] if s["ok"]] == []
    assert [r for r in run.report["reasons"] if r.startswith("lifecycle ")] == [
        f"lifecycle failed: {message}"
    ]
    # Only the lifecycle worker has the channel: every other phase is untroubled.
    assert all(run.check(c)["status"] == "passed" for c in ("metadata", "tests", "build"))


def test_a_replaced_leak_finder_does_not_hide_leaks_from_the_supervisor(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Replaced leak finder: at import the plugin replaces the worker's leak finder and
    state comparison with ones that find nothing; its start() leaks a thread (named as
    the event loop's executor) and a listening socket.  The supervisor's own look at the
    worker, from /proc, names both."""
    hostile = Hostile(module=IN_A_HOST + LEAK + BLIND_FINDER, start="if _in_a_host():\n    _leak()")
    run = certify(project(tmp_path, "blinding-plugin", hostile), policy, cache)
    assert not run.report["certified"] and run.returncode == 1
    lifecycle = run.check("lifecycle")
    assert lifecycle["status"] == "failed", run.excerpt("lifecycle")
    assert run.rules("lifecycle") == {"lifecycle.leak.thread", "lifecycle.leak.socket"}
    threads = run.findings("lifecycle", "lifecycle.leak.thread")
    sockets = run.findings("lifecycle", "lifecycle.leak.socket")
    assert len(threads) == 2 and all(  # one per start(): started, then started again
        m.startswith("step after cleanup: a thread (tid ")
        and m.endswith("started after the plugin was imported is still running, seen from outside")
        for m in threads
    ), threads
    for port, message in zip((LISTEN_PORT, LISTEN_PORT + 1), sorted(sockets), strict=True):
        assert message.startswith(f"step after cleanup: leaked socket TCP 127.0.0.1:{port} LISTEN")
    # The blinded worker itself said every step passed; the last one failed from outside.
    steps = lifecycle["details"]["steps"]
    assert [s["step"] for s in steps if not s["ok"]] == ["after cleanup"], steps
    assert len(steps) == 11


def test_forged_metadata_probe_answers_are_ignored(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Forged probe output: plugin.py prints, at import and at exit, the probe's answer
    claiming another name, version and kind (bare, and after a guessed nonce).  The
    report holds the plugin's real metadata, and the run goes on as usual."""
    run = certify(project(tmp_path, "lying-plugin", Hostile(module=FORGE_PROBE)), policy, cache)
    assert run.report["certified"] and run.returncode == 0, run.excerpt("metadata")
    metadata = run.check("metadata")
    assert metadata["status"] == "passed"
    assert metadata["summary"] == "lying-plugin 0.1.0 (base): metadata valid"
    assert metadata["details"]["kind"] == "base"
    assert metadata["details"]["metadata"]["description"] == "An AITBC plugin"
    plugin, entry = run.report["plugin"], run.report["registry_entry"]
    assert (plugin["name"], plugin["version"], plugin["kind"]) == ("lying-plugin", "0.1.0", "base")
    assert (entry["name"], entry["version"], entry["author"]) == (
        "lying-plugin", "0.1.0", "lying-plugin authors"
    )  # fmt: skip
    assert FORGED_METADATA["description"] not in json.dumps(run.report)


def test_a_plugin_that_behaves_only_when_marked_is_caught(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Behaves only when not marked: start() leaks a thread unless a variable's name or
    value, or an argument, says AITBC or CERTIF.  Certification sets no such marker, so
    it misbehaves and is caught; its own test, run in the jail, finds none either."""
    hostile = Hostile(module=UNWATCHED, start="_misbehave()", tests=ENVIRONMENT_TEST)
    run = certify(project(tmp_path, "shy-plugin", hostile), policy, cache)
    assert not run.report["certified"] and run.returncode == 1
    assert run.rules("lifecycle") == {"lifecycle.leak.thread"}, run.excerpt("lifecycle")
    assert all(
        m.startswith("step after cleanup: leaked thread ") for m in run.findings("lifecycle")
    )
    tests = run.check("tests")
    assert tests["status"] == "passed", run.excerpt("tests")
    assert tests["details"]["tests"] == 8  # the generated seven and the environment's


def test_a_plugin_that_reads_the_jails_paths_is_caught(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Behaves only when not marked, looking harder: the same plugin, reading its
    variables' values without regard to case (its HOME, TMPDIR and working directory).
    The jail mounts its scratch folder at the same neutral path wherever it runs, so
    nothing says "certify", "lifecycle" or "check" (the SDK's own names, its sandbox
    worker's included, are in the process of any host that isolates plugins too)."""
    sniffing = (
        UNWATCHED.replace("word in text for", "word in text.upper() for")
        .replace("*_sys.argv]", "*_sys.argv, _os.getcwd()]")
        .replace('("AITBC", "CERTIF")', '("CERTIF", "LIFECYCLE", "CHECK")')
    )
    assert sniffing != UNWATCHED
    run = certify(project(tmp_path, "sniffing-plugin", Hostile(module=sniffing,
                  start="_misbehave()")), policy, cache)  # fmt: skip
    assert not run.report["certified"], run.excerpt("lifecycle")
    assert run.rules("lifecycle") == {"lifecycle.leak.thread"}


def test_tampering_with_the_toolkit_cache_changes_nothing(tmp_path: Path, policy: Path) -> None:
    """Tampering with the toolkit cache: from setup.py and at import the plugin tries to
    rewrite every wheel of the caller's cache and the metadata probe's cached answer
    (given their real paths) and to drop a .pth
    into the site-packages it runs from.  Each phase names each try, the wheels keep
    their bytes, and a good plugin certified after it with the same cache passes."""
    cache = tmp_path / "cache"  # its own: this plugin is after it
    first = certify(project(tmp_path / "a", "first-plugin", Hostile()), policy, cache)
    assert first.report["certified"], first.excerpt()
    wheels = sorted(cache.rglob("*.whl"))
    assert any("sdk-wheels" in w.parts for w in wheels) and any("builds" in w.parts for w in wheels)
    answers = sorted(cache.glob("aitbc-plugin/answers/*.json"))  # the probe's, reused
    assert len(answers) == 1
    before = sha256_of(wheels + answers)
    tamper = TAMPER.replace("@WHEELS@", repr([str(w) for w in wheels + answers]))
    tamper = tamper.replace("@CACHE@", repr(str(cache)))
    hostile = Hostile(module=f'{tamper}\n\n_tamper("import")\n',
                      setup=f'{tamper}\n\n_tamper("build")\n')  # fmt: skip
    run = certify(project(tmp_path / "b", "tampering-plugin", hostile), policy, cache)
    assert sha256_of(wheels + answers) == before  # the harm: not one file of it changed
    assert sorted(cache.rglob("*.whl")) == wheels and list(cache.rglob("zz-poison.pth")) == []
    assert not run.report["certified"] and run.returncode == 1
    for phase, check_id in PHASES.items():
        writes = run.findings(check_id, f"{check_id}.write")
        assert run.check(check_id)["status"] == "failed", run.excerpt(check_id)
        for wheel in wheels + answers:
            assert any(m.startswith(f"{phase}: tried to write {wheel} (") for m in writes), (
                wheel, run.excerpt(check_id),
            )  # fmt: skip
        envs = cache / "aitbc-plugin" / ("build-envs" if phase == "build" else "envs")
        assert any(m.startswith(f"{phase}: tried to write {envs}/") and "/site-packages/"
                   "zz-poison.pth (EROFS)" in m for m in writes), run.excerpt(check_id)  # fmt: skip
        assert all(m.endswith("which the plugin does not declare in its permissions (write)")
                   for m in writes)  # fmt: skip
    after = certify(project(tmp_path / "c", "after-plugin", Hostile()), policy, cache)
    assert after.report["certified"] and after.returncode == 0, after.excerpt()


def test_declared_permissions_turn_actions_into_notes(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """A good plugin that declares permissions: its tests try 127.0.0.1 (nothing listens)
    and run `true`; declared, both are notes and it is certified; undeclared, the same
    actions are findings of the tests check."""
    declared = Hostile(metadata=f"            permissions={PERMISSIONS!r},\n",
                       tests=NEEDS_PERMISSIONS_TEST)  # fmt: skip
    run = certify(project(tmp_path / "a", "declaring-plugin", declared), policy, cache)
    assert run.report["certified"] and run.returncode == 0, run.excerpt("tests")
    assert run.report["registry_entry"]["permissions"] == PERMISSIONS
    notes = run.report["behaviour"]["tests"]["notes"]
    assert any(f"127.0.0.1:{LISTEN_PORT}" in n and n.endswith("(declared)") for n in notes), notes
    assert any(n.startswith("ran ") and "true" in n and n.endswith("(declared)") for n in notes)
    assert len(notes) == 2, notes

    undeclared = Hostile(tests=NEEDS_PERMISSIONS_TEST)
    run = certify(project(tmp_path / "b", "silent-plugin", undeclared), policy, cache)
    assert not run.report["certified"] and run.returncode == 1
    assert run.rules("tests") == {"tests.network", "tests.program"}, run.excerpt("tests")
    (network,) = run.findings("tests", "tests.network")
    assert network.startswith(f"tests: tried to connect to 127.0.0.1:{LISTEN_PORT}")
    assert network.endswith("which the plugin does not declare in its permissions (network)")
    (program,) = run.findings("tests", "tests.program")
    assert program.startswith("tests: ran ") and "true" in program
    assert program.endswith("which the plugin does not declare in its permissions (program)")
    assert run.report["behaviour"]["tests"]["notes"] == []


# -- found by this file's first run, fixed since: each stays a test ---------------------
def test_a_plugin_that_rewrites_the_workers_answers_is_not_certified(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Replaced result reporting: in the worker, plugin.py replaces the result
    channel's send so that every step's answer says it passed, and patches the SDK's
    EventBus.publish (which lifecycle.state exists to catch)."""
    run = certify(project(tmp_path, "rewriting-plugin", Hostile(module=REWRITE_ANSWERS)), policy,
                  cache)  # fmt: skip
    assert not run.report["certified"], run.excerpt("lifecycle")
    assert run.check("lifecycle")["status"] == "failed"


def test_a_plugin_that_answers_for_the_metadata_probe_is_not_believed(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Forged probe output, with the nonce: plugin.py reads the probe's nonce, answers
    with forged metadata (a description, and permissions its get_metadata() does not
    declare) and swallows the probe's own answer; its tests then run a program."""
    code = STEAL_PROBE_NONCE.replace("@NAME@", "thieving-plugin")
    hostile = Hostile(module=code, tests=RUNS_A_PROGRAM_TEST)
    run = certify(project(tmp_path, "thieving-plugin", hostile), policy, cache)
    assert "FORGED" not in json.dumps(run.report["registry_entry"]), run.excerpt("metadata")
    assert not run.report["certified"]
    assert "tests.program" in run.rules("tests")
