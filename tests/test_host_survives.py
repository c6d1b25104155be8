"""An in-process PluginManager survives what its plugins do: each hostile plugin below
runs beside 20 well-behaved ones, which stay ACTIVE and keep receiving events.  Real
plugins loaded from real folders, a real event loop; the cases in-process cannot
survive (os._exit, a hang in native code) are the isolated workers' (see the README)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from aitbc.plugins import PluginManager, PluginStatus

S = PluginStatus
GOOD = [f"good-{i}" for i in range(20)]
EVENT_TIMEOUT = 0.5


@pytest.fixture
def host(make_plugin: Any, manager_config: Any) -> Any:
    """A manager with the 20 good plugins and one more, made by the test."""

    def make(name: str, **code: str) -> PluginManager:
        for good in GOOD:
            make_plugin(good, handle_event="self.seen = getattr(self, 'seen', 0) + 1")
        make_plugin(name, **code)
        plugins = {p: {"enabled": True} for p in [*GOOD, name]}
        return PluginManager(manager_config(plugins, lifecycle_timeout=1.0,
                                            event_timeout=EVENT_TIMEOUT))  # fmt: skip

    return make


def good_ones_carry_on(manager: PluginManager, events: int) -> None:
    for name in GOOD:
        assert manager.get_plugin_status(name) is S.ACTIVE, name
        assert getattr(manager.plugins[name], "seen", 0) == events, name


def no_task_but_this_one(manager: PluginManager | None = None) -> None:
    """Nothing runs but the test (and the manager's own health loop while it is up)."""
    ours = {asyncio.current_task(), getattr(manager, "_health_task", None)} - {None}
    assert asyncio.all_tasks() == ours, asyncio.all_tasks()


@pytest.mark.parametrize(
    ("step", "body", "reason"),
    [
        ("start", "import sys; sys.exit(3)", "start called sys.exit(3); the host goes on"),
        ("start", "raise KeyboardInterrupt", "start raised KeyboardInterrupt"),
        ("start", "while True:\n    pass", "start blocked the event loop for more than 1s"),
        ("initialize", "import sys; sys.exit()", "initialize called sys.exit(None)"),
    ],
)
def test_a_step_that_exits_or_never_yields_fails_only_its_plugin(
    host: Any, step: str, body: str, reason: str
) -> None:
    manager = host("bad", **{step: body})
    threads = set(threading.enumerate())  # what earlier tests left may end meanwhile

    async def go() -> None:
        await manager.startup()
        assert manager.get_plugin_status("bad") is S.ERROR
        assert reason in (manager.get_plugin_error("bad") or "")
        await manager.broadcast_event("block.new", {"height": 1})
        good_ones_carry_on(manager, 1)
        await manager.shutdown()
        no_task_but_this_one()

    asyncio.run(go())
    assert set(threading.enumerate()) - threads == set()  # the watchdog ends with the work


def test_sys_exit_and_keyboard_interrupt_in_stop_fail_the_call_not_the_host(host: Any) -> None:
    manager = host("bad", stop="raise KeyboardInterrupt")

    async def go() -> None:
        await manager.startup()
        assert await manager.stop_plugin("bad") is False
        assert "stop raised KeyboardInterrupt" in (manager.get_plugin_error("bad") or "")
        await manager.broadcast_event("x", {})
        good_ones_carry_on(manager, 1)
        await manager.shutdown()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("import sys; sys.exit(1)", "SystemExit: 1"),
        ("while True:\n    pass", "blocked the event loop for more than 0.5s"),
        (
            "while True:\n    try:\n        pass\n    except Exception:\n        pass",
            "blocked the event loop",
        ),
        ("while True:\n    await asyncio.sleep(0.01)", "timed out after 0.5s"),
        (
            "while True:\n    try:\n        await asyncio.sleep(0.01)\n"
            "    except asyncio.CancelledError:\n        pass",
            "timed out after 0.5s",
        ),
    ],
    ids=[
        "sys.exit",
        "busy loop",
        "busy loop catching Exception",
        "awaiting loop",
        "loop swallowing cancellation",
    ],
)
def test_an_event_handler_cannot_hold_the_host_or_outlive_its_delivery(
    host: Any, body: str, reason: str
) -> None:
    manager = host("bad", handle_event=body)

    async def go() -> None:
        await manager.startup()
        for round_ in (1, 2):
            began = time.monotonic()
            await manager.broadcast_event("block.new", {"height": round_})
            assert time.monotonic() - began < EVENT_TIMEOUT + 2.0
            no_task_but_this_one(manager)  # nothing of the delivery is left running
        good_ones_carry_on(manager, 2)
        assert sum(range(200_000)) > 0  # nothing raised into the plugin surfaces here
        report = manager.health_report()["bad"]
        assert report["status"] == "active"  # a failing handler fails events, not the plugin
        assert reason in (report["last_error"] or ""), report
        assert report["errors_in_window"] == 2
        await manager.shutdown()
        no_task_but_this_one()

    asyncio.run(go())


def test_two_plugins_that_republish_to_each_other_are_bounded(
    make_plugin: Any, manager_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    echo = "await self.context.event_bus.publish('ping', {'n': data.get('n', 0) + 1})"
    make_plugin("ping-a", handle_event=echo)
    make_plugin("ping-b", handle_event=echo)
    manager = PluginManager(manager_config(
        {"ping-a": {"enabled": True}, "ping-b": {"enabled": True}}, max_event_depth=6,
        event_timeout=5.0,
    ))  # fmt: skip

    async def go() -> None:
        await manager.startup()
        began = time.monotonic()
        await manager.broadcast_event("ping", {"n": 0})
        assert time.monotonic() - began < 2.0  # not the full event_timeout
        no_task_but_this_one(manager)
        # Both plugins receive the host's ping, so two chains each reach the depth once.
        assert manager._host.dropped_events == {"ping": 2}
        await manager.shutdown()
        no_task_but_this_one()

    with caplog.at_level(logging.WARNING, "aitbc.plugins.manager"):
        asyncio.run(go())
    assert any("dropped: published 6 levels deep (max_event_depth)" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_health_report_lists_every_configured_plugin_and_marks_the_degraded(
    make_plugin: Any, manager_config: Any
) -> None:
    make_plugin("flaky", handle_event="raise RuntimeError('no')")
    make_plugin("off")
    manager = PluginManager(manager_config(
        {"flaky": {"enabled": True}, "off": {"enabled": False}, "gone": {"enabled": True}},
        degraded_after_errors=3,
    ))  # fmt: skip

    async def go() -> dict[str, Any]:
        await manager.startup()
        for _ in range(3):
            await manager.broadcast_event("x", {})
        report = manager.health_report()
        await manager.shutdown()
        return report

    report = asyncio.run(go())
    assert set(report) == {"flaky", "off", "gone"}
    assert report["flaky"]["status"] == "active" and report["flaky"]["degraded"] is True
    assert report["flaky"]["last_error"] == "handling x failed: RuntimeError: no"
    assert report["off"]["status"] == "unloaded"
    assert report["off"]["last_error"] == "off is disabled in the configuration (enabled: false)"
    assert report["gone"]["status"] == "error"
    assert report["gone"]["last_error"] == "no plugin named 'gone' in plugin_paths or entry points"


def test_a_duplicate_name_is_a_warning_naming_both(
    make_plugin: Any, manager_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_plugin("twin", directory="a_twin")
    second = make_plugin("twin", directory="b_twin")
    manager = PluginManager(manager_config({"twin": {"enabled": True}}))
    with caplog.at_level(logging.WARNING, "aitbc.plugins.manager"):
        manager.discover_plugins()
    (said,) = [r.getMessage() for r in caplog.records if "two plugins are named" in r.getMessage()]
    assert str(first) in said and str(second) in said


FACTORY = """
from typing import Any
from aitbc.plugins import BasePlugin, PluginMetadata


class Base(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(name="kit", version="1.0.0", description="d", author="a",
                              license="MIT", max_aitbc_version="0.9")

    async def initialize(self) -> bool:
        return True

    async def start(self) -> bool:
        import time
        self._start_time = time.time()  # its own clock, as the upstream starter kit's
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True

    async def health_check(self) -> dict[str, Any]:
        import time
        return {"status": "ok", "uptime": time.time() - self._start_time}


class Other(Base):
    made_by = "class"


def create_plugin(context: Any) -> Base:
    plugin = Base(context)
    plugin.made_by = "factory"
    return plugin
"""


@pytest.mark.parametrize(("entry", "made_by"), [({}, "factory"), ({"class": "Other"}, "class")])
def test_a_factory_module_with_several_classes_and_the_platform_version(
    make_plugin: Any, manager_config: Any, entry: dict[str, str], made_by: str
) -> None:
    make_plugin("kit", source=FACTORY)
    plugins = {"kit": {"enabled": True, **entry}}
    refused = PluginManager(manager_config(plugins))  # the SDK's 1.0.0 is past 0.9
    assert asyncio.run(refused.start_plugin("kit")) is False
    assert "requires AITBC <= 0.9, running 1.0.0" in (refused.get_plugin_error("kit") or "")
    manager = PluginManager(manager_config(plugins, aitbc_version="0.5.2"))

    async def go() -> dict[str, Any]:
        assert await manager.start_plugin("kit") is True, manager.get_plugin_error("kit")
        assert getattr(manager.plugins["kit"], "made_by", None) == made_by
        await asyncio.sleep(0.05)
        health = await manager.plugins["kit"].health_check()
        await manager.shutdown()
        return health

    health = asyncio.run(go())
    assert 0.04 < health["uptime"] < 5  # the SDK left its _start_time alone
