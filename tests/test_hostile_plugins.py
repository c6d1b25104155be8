"""`aitbc-plugin certify` of hostile plugins, one behaviour per test, each through the
real CLI: what the user sees (exit status, `certified`, the rule and a message naming the
action) and that the harm did not happen (no process outlives the run, the toolkit's
cache is unchanged, a forgery is not believed).

The plugins are generated with `aitbc-plugin new` (certify_support.make_project) and
given hostile code in their setup.py (the build phase), at the module level of plugin.py
(the import phase: the metadata probe, and the lifecycle worker and the tests, which
import it too), in start() (the lifecycle check) and in their own tests.  Code that
must not disturb the plugin's own tests runs only "in a host" (outside pytest), as
careless plugins do.  The tests marked xfail show defects of the toolkit (see their
reasons): they pass once the toolkit is fixed, and then must lose their mark.
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

pytestmark = pytest.mark.integration
TOOL = Path(sys.executable).with_name("aitbc-plugin")
#: Where the lifecycle step start() of a generated plugin.py begins its work.
START = '        self.context.logger.info("Starting %s", self.metadata.name)\n'
#: The last argument of the PluginMetadata(...) call of a generated plugin.py.
LAST_METADATA = '            max_aitbc_version="2.0.0",\n'
#: The phases of a certification that run plugin code, and the check that owns each.
PHASES = {"build": "build", "import": "metadata", "lifecycle": "lifecycle", "tests": "tests"}
LISTEN_PORT = 47123  # in the jail's own network namespace: never the host's

# -- the hostile code (module-level snippets; `_` names keep them out of the plugin's API)
IN_A_HOST = r'''
import sys as _sys


def _in_a_host() -> bool:
    """Outside pytest: where a host (and so the lifecycle check's worker) runs it."""
    return "pytest" not in _sys.modules
'''

OUTLIVE = r'''
import os as _os
import sys as _sys


def _outlive(tag: str) -> None:
    """Double fork, a new session, and a sleeper whose command line carries tag."""
    child = _os.fork()
    if child == 0:
        try:
            _os.setsid()
            if _os.fork() == 0:
                null = _os.open(_os.devnull, _os.O_RDWR)
                for fd in (0, 1, 2):
                    _os.dup2(null, fd)
                code = f"import time; time.sleep(300)  # {tag}"
                _os.execv(_sys.executable, [_sys.executable, "-c", code])
        finally:
            _os._exit(0)
    _os.waitpid(child, 0)
'''

LEAK = r'''
import socket as _socket
import threading as _threading
import time as _time

_KEPT: list = []


def _leak() -> None:
    """A thread named like the event loop's own executor and a listening socket, which
    neither stop() nor cleanup() ends."""
    thread = _threading.Thread(target=_time.sleep, args=(300,), name="asyncio_0")
    thread.start()
    server = _socket.socket()
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", @PORT@ + len(_KEPT)))
    server.listen()
    _KEPT.append((thread, server))
'''.replace("@PORT@", str(LISTEN_PORT))

# What hostile code does without argv (tests/test_sandbox.py's FIND_CHANNEL): every pipe
# it holds but stdin and stdout, and in the lifecycle worker one is the result channel.
FORGE_CHANNEL = r'''
import json as _json
import os as _os

_STEPS = ("import", "construct", "initialize", "start", "health_check", "handle_event",
          "stop", "start again", "stop again", "cleanup", "after cleanup")


def _forge_answers() -> None:
    """The worker's own messages, saying every step passed, before it is asked."""
    lines = [{"type": "hello", "protocol": 2, "pid": _os.getpid()},
             {"type": "plan", "steps": list(_STEPS)}]
    for step in _STEPS:
        for nonce in (None, "0" * 32):
            lines.append({"type": "begin", "step": step, "nonce": nonce, "code_roots": []})
            lines.append({"type": "end", "step": step, "nonce": nonce, "ok": True,
                          "duration_s": 0.01, "code_roots": [], "problems": []})
    data = b"".join(_json.dumps(m).encode() + b"\n" for m in lines)
    for name in _os.listdir("/proc/self/fd"):
        try:
            target = _os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir used
            continue
        if target.startswith("pipe:") and int(name) > 2:
            try:
                _os.write(int(name), data)
            except OSError:
                pass


_forge_answers()
'''

# The in-process leak finder and state comparison, replaced wherever they are bound
# (the conformance module imported them by name).
BLIND_FINDER = r"""
import sys as _sys

import aitbc.plugins.sandbox.leaks as _leaks
import aitbc.plugins.sandbox.state as _state


def _no_problems(*args: object, **kwargs: object) -> list:
    return []


async def _no_problems_later(*args: object, **kwargs: object) -> list:
    return []


_REPLACED = {
    "find_leaks": (_leaks.find_leaks, _no_problems),
    "settle_and_find_leaks": (_leaks.settle_and_find_leaks, _no_problems_later),
    "state_changes": (_state.state_changes, _no_problems),
}
for _module in list(_sys.modules.values()):
    for _name, (_real, _fake) in _REPLACED.items():
        try:
            if getattr(_module, _name, None) is _real:
                setattr(_module, _name, _fake)
        except Exception:
            pass
"""

FORGED_METADATA = {"name": "someone-else", "version": "9.9.9", "description": "forged",
                   "author": "forger", "license": "MIT"}  # fmt: skip
FORGE_PROBE = r'''
import atexit as _atexit
import json as _json

_FORGED = {"kind": "ai", "class": "elsewhere.Plugin", "incompatibility": None,
           "config_schema": {}, "metadata": @METADATA@}


def _forge_probe(where: str) -> None:
    """The probe's answer, claiming another plugin: bare, and after a guessed nonce."""
    answer = _json.dumps({**_FORGED, "where": where})
    print(answer, flush=True)
    print("0" * 32, answer, flush=True)


_forge_probe("import")
_atexit.register(_forge_probe, "exit")
'''.replace("@METADATA@", repr(FORGED_METADATA))

UNWATCHED = r'''
import os as _os
import sys as _sys
import threading as _threading
import time as _time


def _watched() -> bool:
    """Whether certification marked this process: a variable named or set so, an argument."""
    seen = [*_os.environ, *_os.environ.values(), *_sys.argv]
    return any(word in text for word in ("AITBC", "CERTIF") for text in seen)


def _misbehave() -> None:
    if not _watched():
        _threading.Thread(target=_time.sleep, args=(300,), daemon=True).start()
'''

ENVIRONMENT_TEST = r"""


def test_the_environment_names_no_certification() -> None:
    import os
    import sys

    names = [k for k in os.environ if "AITBC" in k.upper() or "CERTIF" in k.upper()]
    values = [k for k, v in os.environ.items() if "AITBC" in v or "CERTIF" in v]
    argv = [a for a in sys.argv if "AITBC" in a or "CERTIF" in a]
    assert names == [] and values == [] and argv == [], (names, values, argv)
"""

TAMPER = r'''
import glob as _glob
import os as _os
import site as _site

_WHEELS = @WHEELS@
_CACHE = @CACHE@


def _tamper(where: str) -> None:
    """Rewrite every wheel of the caller's toolkit cache; plant a .pth beside us."""
    found = _glob.glob(_os.path.join(_CACHE, "**", "*.whl"), recursive=True)
    for wheel in sorted({*_WHEELS, *found}):
        try:
            with open(wheel, "r+b") as archive:
                archive.write(b"PK poisoned at " + where.encode())
        except OSError:
            pass
    for place in _site.getsitepackages():
        try:
            with open(_os.path.join(place, "zz-poison.pth"), "w") as pth:
                pth.write(f"import os; os.environ['POISONED'] = {where!r}\n")
        except OSError:
            pass
'''

PERMISSIONS = ["network:127.0.0.1:*", "subprocess:true"]
NEEDS_PERMISSIONS_TEST = r"""


def test_reaches_a_local_service_and_runs_a_program() -> None:
    import socket
    import subprocess

    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=1).close()
    except OSError:
        pass  # nothing listens: the attempt is what is declared
    subprocess.run(["true"], check=True)
""".replace("@PORT@", str(LISTEN_PORT))

# A plugin that makes its worker report every step as passed: it replaces the worker's
# result channel's send (in the same process), then patches the SDK as the corpus case
# lifecycle-state-sdk-patch does, and fails start() in a host.
REWRITE_ANSWERS = r"""
import sys as _sys

if "aitbc.plugins.sandbox.worker" in _sys.modules:  # in the lifecycle check's worker
    import aitbc.plugins as _sdk
    import aitbc.plugins.sandbox.worker as _worker

    _real_send = _worker.Channel.send

    def _always_passed(self: object, kind: str, **fields: object) -> None:
        if kind == "end":
            fields["ok"], fields["problems"] = True, []
        _real_send(self, kind, **fields)

    _worker.Channel.send = _always_passed

    _real_publish = _sdk.EventBus.publish

    async def _spy_publish(self: object, event_type: str, data: object = None) -> None:
        await _real_publish(self, event_type, data)  # sees every event of the host

    _sdk.EventBus.publish = _spy_publish
"""

# The metadata probe's nonce is a global of its __main__: read it, answer first with
# forged metadata (the real schema, so that nothing else differs), and drop the probe's
# own answer.
STEAL_PROBE_NONCE = r"""
import json as _json
import sys as _sys
from pathlib import Path as _Path

_nonce = getattr(_sys.modules.get("__main__"), "nonce", None)
if isinstance(_nonce, str) and _nonce:
    _schema = _json.loads(_Path(__file__).with_name("config_schema.json").read_text())
    _metadata = {"name": "@NAME@", "version": "0.1.0", "description": "FORGED description",
                 "author": "forger", "license": "MIT", "min_aitbc_version": "1.0.0",
                 "max_aitbc_version": "2.0.0", "permissions": ["network", "subprocess"]}
    _answer = {"kind": "base", "class": "x.Y", "metadata": _metadata,
               "incompatibility": None, "config_schema": _schema}
    _sys.stdout.write(f"{_nonce} {_json.dumps(_answer)}\n")
    _sys.stdout.flush()
    _write = _sys.stdout.write

    class _Swallow:
        def write(self, text: str) -> int:
            return len(text) if text.startswith(_nonce) else _write(text)

        def __getattr__(self, name: str) -> object:
            return getattr(_sys.__stdout__, name)

    _sys.stdout = _Swallow()
"""

RUNS_A_PROGRAM_TEST = r"""


def test_runs_a_program() -> None:
    import subprocess

    subprocess.run(["true"], check=True)
"""


# -- shared helpers ------------------------------------------------------------------------
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
    run = certify(project(tmp_path, "outliving-plugin", hostile), policy, cache)
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


@pytest.mark.xfail(
    strict=True,
    reason="defect: the jail's HOME, TMPDIR and PWD lie in certify's run folder, "
    "/tmp/aitbc-certify-*/scratch/<check>/..., which names certification (and the check)",
)
def test_a_plugin_that_reads_the_jails_paths_is_caught(
    tmp_path: Path, policy: Path, cache: Path
) -> None:
    """Behaves only when not marked, looking harder: the same plugin, reading its
    variables' values without regard to case (its HOME, TMPDIR and working directory)."""
    sniffing = UNWATCHED.replace("word in text for", "word in text.upper() for").replace(
        "*_sys.argv]", "*_sys.argv, _os.getcwd()]"
    )
    assert sniffing != UNWATCHED
    run = certify(project(tmp_path, "sniffing-plugin", Hostile(module=sniffing,
                  start="_misbehave()")), policy, cache)  # fmt: skip
    assert not run.report["certified"], run.excerpt("lifecycle")
    assert run.rules("lifecycle") == {"lifecycle.leak.thread"}


def test_tampering_with_the_toolkit_cache_changes_nothing(tmp_path: Path, policy: Path) -> None:
    """Tampering with the toolkit cache: from setup.py and at import the plugin tries to
    rewrite every wheel of the caller's cache (given their real paths) and to drop a .pth
    into the site-packages it runs from.  Each phase names each try, the wheels keep
    their bytes, and a good plugin certified after it with the same cache passes."""
    cache = tmp_path / "cache"  # its own: this plugin is after it
    first = certify(project(tmp_path / "a", "first-plugin", Hostile()), policy, cache)
    assert first.report["certified"], first.excerpt()
    wheels = sorted(cache.rglob("*.whl"))
    assert any("sdk-wheels" in w.parts for w in wheels) and any("builds" in w.parts for w in wheels)
    before = sha256_of(wheels)
    tamper = TAMPER.replace("@WHEELS@", repr([str(w) for w in wheels]))
    tamper = tamper.replace("@CACHE@", repr(str(cache)))
    hostile = Hostile(module=f'{tamper}\n\n_tamper("import")\n',
                      setup=f'{tamper}\n\n_tamper("build")\n')  # fmt: skip
    run = certify(project(tmp_path / "b", "tampering-plugin", hostile), policy, cache)
    assert sha256_of(wheels) == before  # the harm: not one wheel of the cache changed
    assert sorted(cache.rglob("*.whl")) == wheels and list(cache.rglob("zz-poison.pth")) == []
    assert not run.report["certified"] and run.returncode == 1
    for phase, check_id in PHASES.items():
        writes = run.findings(check_id, f"{check_id}.write")
        assert run.check(check_id)["status"] == "failed", run.excerpt(check_id)
        for wheel in wheels:
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
    assert network.startswith(f"tests: tried to connect to 127.0.0.1:{LISTEN_PORT} (")
    assert network.endswith("which the plugin does not declare in its permissions (network)")
    (program,) = run.findings("tests", "tests.program")
    assert program.startswith("tests: ran ") and "true" in program
    assert program.endswith("which the plugin does not declare in its permissions (program)")
    assert run.report["behaviour"]["tests"]["notes"] == []


# -- defects found: each test says what should happen, and fails until it does ----------
@pytest.mark.xfail(
    strict=True,
    reason="defect: the worker's answers are the plugin's to rewrite (same process); "
    "replacing worker.Channel.send hides every in-process finding",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="defect: the metadata probe's nonce is a global of its __main__, which plugin "
    "code reads: its forged answer is the one answer",
)
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
