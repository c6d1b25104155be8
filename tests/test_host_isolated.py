"""Isolated plugins (`isolation: process`): each hostile plugin below runs in its own
worker, in the real jail, beside 50 well-behaved isolated plugins, under one real
PluginManager.  Each hostile one ends in ERROR, or is refused, with the right reason;
the good ones stay ACTIVE and keep receiving events; nothing any of them started
outlives the manager, not even when the host is SIGKILLed.  And an isolated plugin
behaves, through the manager, exactly as the same plugin in-process does."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import PluginManager, PluginStatus
from aitbc.plugins.isolated.proxy import IsolatedPlugin
from aitbc.plugins.process import descendants
from aitbc.plugins.sandbox.jail import isolation

pytestmark = pytest.mark.integration
S = PluginStatus
GOOD = [f"good-{i}" for i in range(50)]
EVENTS = 3

SOURCE = """
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from aitbc.plugins import BasePlugin, PluginMetadata


class Plugin(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name={name!r}, version="1.0.0", description="isolated test plugin",
            author="tests", license="MIT", permissions={permissions!r},
        )

    async def initialize(self) -> bool:
        self.seen = 0
        return True

    async def start(self) -> bool:
{start}
        return True

    async def stop(self) -> bool:
{stop}
        return True

    async def cleanup(self) -> bool:
        return True

    async def handle_event(self, event_type: str, data: dict) -> None:
        self.seen += 1
{event}

    async def health_check(self) -> dict:
        health = await super().health_check()
        health["seen"] = self.seen
        health["pid"] = os.getpid()
        return health
"""


def write_plugin(root: Path, name: str, *, start: str = "pass", stop: str = "pass",
                 event: str = "pass", permissions: list[str] | None = None) -> None:  # fmt: skip
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")

    def indent(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), " " * 8)

    (folder / "plugin.py").write_text(SOURCE.format(
        name=name, permissions=permissions or [], start=indent(start), stop=indent(stop),
        event=indent(event),
    ))  # fmt: skip


@dataclass(frozen=True)
class Hostile:
    start: str = "pass"
    event: str = "pass"
    limits: dict[str, int] | None = None
    status: PluginStatus = S.ERROR
    reason: str = ""  # in the plugin's error
    refused: str | None = None  # in its record's refusals


def hostile_plugins(outside: Path, port: int) -> dict[str, Hostile]:
    return {
        "memory-hog": Hostile(
            start="hoard = bytearray(1 << 30)",
            limits={"memory_mb": 256},
            reason="memory-hog: start: its worker broke its memory limit (256 MiB)",
        ),
        "cpu-spinner": Hostile(
            start="while True:\n    pass",
            limits={"cpu_s": 1},
            reason="cpu-spinner: start: its worker broke its CPU time limit (1 s) and was killed",
        ),
        "loop-blocker": Hostile(
            event="while True:\n    pass",
            status=S.ERROR,
            reason="loop-blocker: its worker was stuck in handle_event and was killed",
        ),
        "os-exiter": Hostile(
            start="threading.Timer(0.2, os._exit, (3,)).start()",
            reason="os-exiter: its worker exited on its own (status 3)",
        ),
        "sys-exiter": Hostile(
            start="sys.exit(2)", reason="sys-exiter: start called sys.exit(2); the host goes on"
        ),
        "connector": Hostile(
            start=f"socket.create_connection(('127.0.0.1', {port}), timeout=2).close()",
            reason="connector: start raised ConnectionRefusedError: [Errno 111] Connection refused",
            refused=f"refused: connect to ('127.0.0.1', {port}) (no network permission)",
        ),
        "writer": Hostile(
            start=f"open({str(outside)!r}, 'w').write('escaped')",
            reason=f"writer: start raised OSError: [Errno 30] Read-only file system: '{outside}'",
            refused=f"refused: write {outside} (no filesystem permission)",
        ),
        "spawner": Hostile(
            start="subprocess.run(['true'], check=True)",
            reason="spawner: start raised PermissionError: [Errno 1] Operation not permitted",
            refused="refused: run true (no subprocess permission)",
        ),
        "forker": Hostile(  # allowed to fork; not to outlive its worker (asserted below)
            start="if os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\n    os._exit(0)",
            status=S.ACTIVE,
        ),
    }


@dataclass
class Outcome:
    statuses: dict[str, PluginStatus]
    errors: dict[str, str | None]
    report: dict[str, dict[str, Any]]  # before shutdown
    after: dict[str, dict[str, Any]]  # after it
    seen: dict[str, int]
    tree: dict[str, list[int]]  # each worker's processes, seen from outside before shutdown
    connections: int
    outside_exists: bool
    left_after_shutdown: list[int]
    expected: dict[str, Hostile]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    root = tmp_path_factory.mktemp("isolated")
    # Outside its data and temp folders: in its own code's folder, which it may only read
    # (a path under /tmp would land in the jail's own, throwaway /tmp).
    plugins = root / "plugins"
    outside = plugins / "writer" / "planted.txt"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    hostile = hostile_plugins(outside, port)
    for name in GOOD:
        write_plugin(plugins, name)
    for name, bad in hostile.items():
        write_plugin(plugins, name, start=bad.start, event=bad.event)
    entries: dict[str, Any] = {name: {"enabled": True} for name in GOOD}
    for name, bad in hostile.items():
        entries[name] = {"enabled": True, **({"limits": bad.limits} if bad.limits else {})}
    config = {"plugins": entries, "plugin_paths": [str(plugins)], "data_dir": str(root / "data"),
              "isolation": "process", "lifecycle_timeout": 20, "event_timeout": 1,
              "health_check_interval": 3600}  # fmt: skip

    async def run() -> Outcome:
        manager = PluginManager(config)
        await manager.startup()
        for i in range(EVENTS):
            await manager.broadcast_event("block.new", {"height": i})
        await asyncio.sleep(1.5)  # the os-exiter's timer; the loop-blocker's grace
        health = await manager.check_health()
        workers = {name: p.worker for name, p in manager.plugins.items()
                   if isinstance(p, IsolatedPlugin)}  # fmt: skip
        tree = {name: [w.tree.process.pid, *descendants(w.tree.process.pid)]
                for name, w in workers.items()}  # fmt: skip
        statuses = {n: manager.get_plugin_status(n) for n in entries}
        errors = {n: manager.get_plugin_error(n) for n in entries}
        seen = {n: (health[n]["health"] or {}).get("seen", -1) for n in GOOD}
        report = manager.health_report()
        await manager.shutdown()
        time.sleep(0.5)
        left = [pid for pids in tree.values() for pid in pids if _alive(pid)]
        return Outcome(statuses, errors, report, manager.health_report(), seen, tree, 0,
                       outside.exists(), left, hostile)  # fmt: skip

    result = asyncio.run(run())
    try:
        while True:
            listener.accept()[0].close()
            result.connections += 1
    except BlockingIOError:
        pass
    listener.close()
    return result


@pytest.mark.parametrize("name", list(hostile_plugins(Path("/unused"), 1)))
def test_each_hostile_isolated_plugin_fails_alone_with_its_reason(
    outcome: Outcome, name: str
) -> None:
    expected, report = outcome.expected[name], outcome.report[name]
    assert outcome.statuses[name] is expected.status, report
    assert (report["last_error"] or "").startswith(expected.reason), report
    if expected.reason:
        assert outcome.errors[name] == report["last_error"], report
    if expected.refused:
        assert expected.refused in report["refused"], report


def test_the_good_ones_stay_active_and_keep_receiving_events(outcome: Outcome) -> None:
    assert {n: outcome.statuses[n] for n in GOOD} == dict.fromkeys(GOOD, S.ACTIVE)
    assert outcome.seen == dict.fromkeys(GOOD, EVENTS)  # counted in each worker
    assert all(outcome.report[n]["isolated"] for n in GOOD)


def test_what_the_kernel_refused_did_not_happen(outcome: Outcome) -> None:
    assert outcome.connections == 0  # nothing reached the host's loopback listener
    assert not outcome.outside_exists  # nothing was written outside its folders


def test_no_worker_and_no_fork_outlives_the_manager(outcome: Outcome) -> None:
    assert len(outcome.tree["forker"]) >= 3  # bubblewrap, the worker and its fork
    assert outcome.left_after_shutdown == []
    assert {r["status"] for r in outcome.after.values()} == {"unloaded"}


HOST = """
import asyncio, json, sys
from aitbc.plugins import PluginManager
from aitbc.plugins.isolated.proxy import IsolatedPlugin
from aitbc.plugins.process import descendants

async def main():
    manager = PluginManager(json.loads(sys.argv[1]))
    await manager.startup()
    pids = [pid for p in manager.plugins.values()
            for pid in (p.worker.tree.process.pid, *descendants(p.worker.tree.process.pid))]
    print(json.dumps(pids), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def test_workers_exit_when_the_host_is_killed_with_sigkill(tmp_path: Path) -> None:
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    fork = "if os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\n    os._exit(0)"
    write_plugin(tmp_path / "plugins", "quiet")
    write_plugin(tmp_path / "plugins", "forker", start=fork)
    config = {"plugins": {"quiet": {"enabled": True}, "forker": {"enabled": True}},
              "plugin_paths": [str(tmp_path / "plugins")], "data_dir": str(tmp_path / "data"),
              "isolation": "process", "health_check_interval": 3600}  # fmt: skip
    host = subprocess.Popen([sys.executable, "-c", HOST, json.dumps(config)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert host.stdout is not None
        pids = json.loads(host.stdout.readline())
        assert len(pids) >= 5  # two jails, two workers, one fork
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)
        alive = [p for p in pids if _alive(p)]
        assert alive == []
    finally:
        host.kill()
        host.wait(10)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_dead_worker_is_restarted_with_backoff_when_asked(tmp_path: Path) -> None:
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    # Dies shortly after its first start only: a file in its data folder remembers.
    flaky = ("mark = os.path.join(self.context.data_dir, 'started')\n"
             "if not os.path.exists(mark):\n"
             "    open(mark, 'w').close()\n"
             "    threading.Timer(0.2, os._exit, (4,)).start()")  # fmt: skip
    write_plugin(tmp_path / "plugins", "flaky", start=flaky)
    config = {"plugins": {"flaky": {"enabled": True, "restart": "on-failure", "max_restarts": 2}},
              "plugin_paths": [str(tmp_path / "plugins")], "data_dir": str(tmp_path / "data"),
              "isolation": "process", "health_check_interval": 3600}  # fmt: skip

    async def run() -> dict[str, Any]:
        async with PluginManager(config) as manager:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                report = manager.health_report()["flaky"]
                if report["restarts"] == 1 and report["status"] == "active":
                    break
            return manager.health_report()["flaky"]

    report = asyncio.run(run())
    assert report["status"] == "active" and report["restarts"] == 1, report


# -- the same plugins, in-process and isolated: the same answers --------------------------
PARITY: dict[str, dict[str, str]] = {
    "fine": {},
    "raises": {"start": "raise ValueError('bad config')"},
    "refuses": {"start": "return False"},
    "says-none": {"start": "return None"},
    "exits-in-stop": {"stop": "sys.exit(5)"},
    "fails-events": {"event": "raise RuntimeError('cannot handle ' + event_type)"},
}


def _parity_run(root: Path, isolation_mode: str) -> dict[str, Any]:
    plugins = root / isolation_mode
    for name, code in PARITY.items():
        write_plugin(plugins, name, start=code.get("start", "pass"),
                     stop=code.get("stop", "pass"), event=code.get("event", "pass"))  # fmt: skip
    config = {"plugins": {n: {"enabled": True} for n in PARITY}, "plugin_paths": [str(plugins)],
              "data_dir": str(root / "data"), "isolation": isolation_mode,
              "health_check_interval": 3600, "auto_load": False}  # fmt: skip

    async def run() -> dict[str, Any]:
        manager = PluginManager(config)
        seen: dict[str, Any] = {}
        for name in PARITY:
            seen[f"start {name}"] = await manager.start_plugin(name)
        await manager.broadcast_event("tick", {})
        for name in PARITY:
            seen[f"stop {name}"] = await manager.stop_plugin(name)
        for name in PARITY:
            report = manager.health_report()[name]
            seen[name] = (manager.get_plugin_status(name), manager.get_plugin_error(name),
                          report["error_count"], report["last_error"])  # fmt: skip
        await manager.shutdown()
        seen["after shutdown"] = (manager.list_plugins(),
                                  {n: manager.get_plugin_status(n) for n in PARITY})  # fmt: skip
        return seen

    return asyncio.run(run())


def test_an_isolated_plugin_answers_exactly_as_in_process(tmp_path: Path) -> None:
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    in_process = _parity_run(tmp_path, "none")
    isolated = _parity_run(tmp_path, "process")
    assert isolated == in_process
    assert in_process["start raises"] is False and in_process["start refuses"] is False
    assert in_process["raises"][3] == "raises: start raised ValueError: bad config"
    stopped = in_process["exits-in-stop"][3]
    assert stopped == "exits-in-stop: stop called sys.exit(5); the host goes on"


def forget_modules_under(folder: Path) -> None:
    """In-process runs import the plugins' modules: forget them, so that the next
    test's plugins of the same names (good-0, ...) are imported afresh."""
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _no_stray_modules(tmp_path: Path) -> Iterator[None]:
    yield
    forget_modules_under(tmp_path)


STATUS_HOST = """
import asyncio, json, sys
from aitbc.plugins import PluginManager

async def main():
    async with PluginManager(json.loads(sys.argv[1])) as manager:
        print(json.dumps(manager.health_report()["quiet"]))

asyncio.run(main())
"""


def test_a_host_whose_python_lives_where_the_jail_hides_it(tmp_path: Path) -> None:
    """A host run from a venv under /tmp (or $HOME), as a clone in such a place has:
    the jail hides those folders, so the worker's Python must be let in."""
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    import sysconfig
    import venv

    hidden = tmp_path / "venv"  # tmp_path lies under /tmp
    venv.EnvBuilder(symlinks=True).create(hidden)
    site = subprocess.run([str(hidden / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    toolkit = Path(__file__).resolve().parents[1] / "toolkit"
    Path(site, "aitbc-under-test.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{toolkit}\n"
    )
    write_plugin(tmp_path / "plugins", "quiet")
    config = {"plugins": {"quiet": {"enabled": True}}, "isolation": "process",
              "plugin_paths": [str(tmp_path / "plugins")], "data_dir": str(tmp_path / "data"),
              "health_check_interval": 3600}  # fmt: skip
    done = subprocess.run([str(hidden / "bin" / "python"), "-c", STATUS_HOST, json.dumps(config)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["status"], report["isolated"]) == ("active", True), report["last_error"]


def test_an_isolated_plugin_publishes_to_others_and_receives_what_it_subscribed_to(
    tmp_path: Path,
) -> None:
    """Its context.event_bus works as in-process: what it publishes reaches the other
    plugins (an in-process one here), and a host-bus event it subscribed to in its
    worker is forwarded to it."""
    if not isolation().jailed:
        pytest.skip("bubblewrap cannot make a jail here")
    plugins = tmp_path / "plugins"
    subscribe = ("async def on_tick(kind, data):\n    self.seen += 100\n"
                 "self.context.event_bus.subscribe('host.tick', on_tick)")  # fmt: skip
    write_plugin(plugins, "talker", start=subscribe,
                 event="if event_type == 'ping':\n    await self.context.event_bus.publish("
                       "'pong', {'from': 'talker'})")  # fmt: skip
    write_plugin(plugins, "listener")
    config = {"plugins": {"talker": {"enabled": True, "isolation": "process"},
                          "listener": {"enabled": True}},
              "plugin_paths": [str(plugins)], "data_dir": str(tmp_path / "data"),
              "health_check_interval": 3600}  # fmt: skip

    async def run() -> tuple[int, int]:
        async with PluginManager(config) as manager:
            await manager.broadcast_event("ping", {})
            await manager.event_bus.publish("host.tick", {})
            await asyncio.sleep(0.5)  # the worker's publish is delivered by the host
            listener = getattr(manager.plugins["listener"], "seen", -1)
            talker = (await manager.check_health())["talker"]["health"]["seen"]
            return listener, talker

    listener, talker = asyncio.run(run())
    assert listener == 2  # the broadcast ping, then the isolated plugin's pong
    assert talker == 101  # the ping, and the forwarded host.tick
