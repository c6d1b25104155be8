"""Dependencies, start-up order and concurrency, shutdown, events and health."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aitbc.plugins import PluginManager, PluginStatus
from aitbc.plugins._graph import find_cycle, priority_groups, topological_order
from hypothesis import given
from hypothesis import strategies as st

S = PluginStatus

RECORDING = """
import builtins
builtins.__dict__.setdefault("AITBC_TEST_ORDER", []).append(("{step}", "{name}"))
{extra}
return True
"""


def recorder(name: str, step: str, extra: str = "") -> str:
    return RECORDING.format(step=step, name=name, extra=extra)


@pytest.fixture
def order() -> Iterator[list[tuple[str, str]]]:
    import builtins

    builtins.__dict__["AITBC_TEST_ORDER"] = []
    yield builtins.__dict__["AITBC_TEST_ORDER"]
    del builtins.__dict__["AITBC_TEST_ORDER"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def recorded(make_plugin: Any, name: str, **kwargs: Any) -> None:
    make_plugin(
        name,
        start=recorder(name, "start", kwargs.pop("start_extra", "")),
        stop=recorder(name, "stop", kwargs.pop("stop_extra", "")),
        **kwargs,
    )


# -- dependencies through the spec's methods -------------------------------------------
def test_loading_loads_dependencies_first(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("app", dependencies=["db>=1.0"])
    make_plugin("db", version="1.2.0")
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin("app")) is True
    assert manager.list_plugins() == ["app", "db"] or set(manager.list_plugins()) == {"app", "db"}
    assert manager.get_plugin_status("db") is S.LOADED


def test_starting_starts_dependencies_and_stopping_stops_dependents(
    make_plugin: Any, manager_config: Any, order: list[tuple[str, str]]
) -> None:
    recorded(make_plugin, "app")
    recorded(make_plugin, "db")
    manager = PluginManager(manager_config({"app": {"enabled": True, "dependencies": ["db"]}}))

    async def go() -> None:
        assert await manager.start_plugin("app") is True
        assert await manager.stop_plugin("db") is True

    run(go())
    assert order == [("start", "db"), ("start", "app"), ("stop", "app"), ("stop", "db")]
    assert manager.get_plugin_status("app") is S.INACTIVE


def test_missing_dependency_names_the_chain(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("a", dependencies=["b"])
    make_plugin("b", dependencies=["c"])
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin("a")) is False
    assert "a -> b -> c" in (manager.get_plugin_error("a") or "")
    assert manager.get_plugin_status("a") is S.ERROR


def test_dependency_cycle_names_the_chain(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("a", dependencies=["b"])
    make_plugin("b", dependencies=["a"])
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin("a")) is False
    assert "a -> b -> a" in (manager.get_plugin_error("a") or "")


def test_dependency_version_mismatch(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("app", dependencies=["db>=2"])
    make_plugin("db", version="1.5.0")
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin("app")) is False
    assert "requires db>=2, found 1.5.0" in (manager.get_plugin_error("app") or "")


# -- start-up and shutdown ---------------------------------------------------------------
def test_startup_follows_priority_and_dependencies(
    make_plugin: Any, manager_config: Any, order: list[tuple[str, str]]
) -> None:
    for name in ("first", "second", "third", "dep-of-first", "off"):
        recorded(make_plugin, name)
    config = manager_config(
        {
            "third": {"enabled": True, "priority": 30},
            "first": {"enabled": True, "priority": 10, "dependencies": ["dep-of-first"]},
            "second": {"enabled": True, "priority": 20},
            "dep-of-first": {"enabled": True, "priority": 90},
            "off": {"enabled": False, "priority": 1},
        }
    )

    async def go() -> None:
        async with PluginManager(config) as manager:
            assert manager.get_plugin_status("off") is S.UNLOADED
            assert sorted(manager.list_plugins()) == ["dep-of-first", "first", "second", "third"]

    run(go())
    starts = [n for step, n in order if step == "start"]
    stops = [n for step, n in order if step == "stop"]
    assert starts == ["dep-of-first", "first", "second", "third"]
    assert stops == list(reversed(starts))


def test_startup_runs_independent_plugins_concurrently(
    make_plugin: Any, manager_config: Any
) -> None:
    names = [f"slow{i}" for i in range(5)]
    for name in names:
        make_plugin(name, start="await asyncio.sleep(0.4); return True",
                    stop="await asyncio.sleep(0.4); return True")  # fmt: skip
    manager = PluginManager(manager_config({n: {"enabled": True} for n in names}))

    async def go() -> tuple[float, float]:
        began = time.perf_counter()
        await manager.startup()
        started = time.perf_counter() - began
        assert all(manager.get_plugin_status(n) is S.ACTIVE for n in names)
        began = time.perf_counter()
        await manager.shutdown()
        return started, time.perf_counter() - began

    started, stopped = run(go())
    # Sequentially each would take 5 x 0.4 s = 2 s; concurrently about 0.4 s.
    assert started < 1.2 and stopped < 1.2
    assert all(manager.get_plugin_status(n) is S.UNLOADED for n in names)


def test_startup_failure_of_one_never_touches_others(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("bad", start="raise RuntimeError('boom')")
    make_plugin("needs-bad", dependencies=["bad"])
    make_plugin("fine")
    make_plugin("cyc-a", dependencies=["cyc-b"])
    make_plugin("cyc-b", dependencies=["cyc-a"])
    names = ["bad", "needs-bad", "fine", "cyc-a", "cyc-b", "absent"]
    manager = PluginManager(manager_config({n: {"enabled": True} for n in names}))

    async def go() -> None:
        async with manager:
            assert manager.get_plugin_status("fine") is S.ACTIVE
            assert manager.get_plugin_status("bad") is S.ERROR
            assert manager.get_plugin_status("needs-bad") is S.ERROR
            assert "needs-bad -> bad is not active" in (
                manager.health_report()["needs-bad"]["last_error"] or ""
            )
            for name in ("cyc-a", "cyc-b"):
                assert "cyc-a -> cyc-b -> cyc-a" in manager.health_report()[name]["last_error"]
            assert "no plugin named 'absent'" in (manager.get_plugin_error("absent") or "")
            assert "boom" in (manager.get_plugin_error("bad") or "")

    run(go())
    assert manager.list_plugins() == []


def test_auto_load_false_loads_nothing(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("alpha")
    manager = PluginManager(manager_config({"alpha": {"enabled": True}}, auto_load=False))

    async def go() -> None:
        async with manager:
            assert manager.list_plugins() == []

    run(go())


def test_slow_import_does_not_delay_events(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("listener", handle_event="self.got = getattr(self, 'got', 0) + 1")
    make_plugin("slow-import", source=(
        "import time\ntime.sleep(1.0)\n" + _plain_plugin("slow-import")
    ))  # fmt: skip
    manager = PluginManager(manager_config())

    async def go() -> float:
        await manager.start_plugin("listener")
        loading = asyncio.create_task(manager.load_plugin("slow-import"))
        await asyncio.sleep(0.05)
        began = time.perf_counter()
        for _ in range(10):
            await manager.broadcast_event("tick", {})
        delivered = time.perf_counter() - began
        assert await loading is True
        return delivered

    assert run(go()) < 0.5
    assert manager.plugins["listener"].got == 10  # type: ignore[attr-defined]


def _plain_plugin(name: str) -> str:
    return f"""
from aitbc.plugins import BasePlugin, PluginMetadata
class Plain(BasePlugin):
    def get_metadata(self):
        return PluginMetadata(name={name!r}, version="1.0.0", description="", author="", license="")
    async def initialize(self): return True
    async def start(self): return True
    async def stop(self): return True
    async def cleanup(self): return True
"""


# -- events -------------------------------------------------------------------------------
def test_broadcast_reaches_active_plugins_despite_a_failing_or_slow_one(
    make_plugin: Any, manager_config: Any
) -> None:
    make_plugin("ok-1", handle_event="self.got = data")
    make_plugin("ok-2", handle_event="self.got = data")
    make_plugin("raises", handle_event="raise RuntimeError('handler broke')")
    make_plugin("slow", handle_event="await asyncio.sleep(30)")
    make_plugin("loaded-only", handle_event="self.got = data")
    manager = PluginManager(manager_config(lifecycle_timeout=0.5))

    async def go() -> float:
        for name in ("ok-1", "ok-2", "raises", "slow"):
            await manager.start_plugin(name)
        await manager.load_plugin("loaded-only")
        began = time.perf_counter()
        await manager.broadcast_event("ping", {"n": 1})
        return time.perf_counter() - began

    took = run(go())
    assert took < 2.0  # bounded by the timeout, not by the slow handler
    for name in ("ok-1", "ok-2"):
        assert manager.plugins[name].got == {"n": 1}  # type: ignore[attr-defined]
    assert not hasattr(manager.plugins["loaded-only"], "got")  # only ACTIVE plugins
    report = manager.health_report()
    assert report["raises"]["error_count"] == 1 and report["slow"]["error_count"] == 1
    assert report["raises"]["status"] == "active"  # a failed event is not a failed plugin


def test_plugin_publishes_to_other_active_plugins(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("sender", start="""
        await self.context.event_bus.publish("hello", {"from": "sender"})
        return True
    """, handle_event="self.got = data")  # fmt: skip
    make_plugin("receiver", handle_event="self.got = (event_type, data)")
    manager = PluginManager(manager_config())
    host_seen: list[dict[str, Any]] = []
    manager.event_bus.subscribe("hello", lambda t, d: host_seen.append(d))

    async def go() -> None:
        await manager.start_plugin("receiver")
        await manager.start_plugin("sender")

    run(go())
    assert manager.plugins["receiver"].got == ("hello", {"from": "sender"})  # type: ignore[attr-defined]
    assert not hasattr(manager.plugins["sender"], "got")  # not echoed to the sender
    assert host_seen == [{"from": "sender"}]


# -- health -------------------------------------------------------------------------------
def test_health_loop_runs_periodically_and_report_is_plain_data(
    make_plugin: Any, manager_config: Any
) -> None:
    make_plugin("alpha")
    make_plugin("bad-health", source=_plain_plugin("bad-health") + (
        "    async def health_check(self):\n        raise RuntimeError('sensor down')\n"
    ))  # fmt: skip
    config = manager_config({"alpha": {"enabled": True}, "bad-health": {"enabled": True}},
                            health_check_interval=1)  # fmt: skip

    async def go() -> dict[str, dict[str, Any]]:
        async with PluginManager(config) as manager:
            await asyncio.sleep(1.3)
            return manager.health_report()

    report = run(go())
    json.dumps(report)  # plain data
    alpha = report["alpha"]
    assert alpha["health"]["status"] == "active" and alpha["health"]["uptime"] > 0.9
    assert set(alpha["timings"]) >= {"load", "initialize", "start"}
    assert report["bad-health"]["health"] == {
        "status": "error", "error": "health_check raised RuntimeError: sensor down"
    }  # fmt: skip
    assert report["bad-health"]["error_count"] == 1


# -- the ordering functions, property-based ----------------------------------------------
graphs = st.dictionaries(
    st.sampled_from("abcdefgh"), st.sets(st.sampled_from("abcdefgh"), max_size=3), max_size=8
)


@given(graphs)
def test_find_cycle_finds_real_cycles_only(graph: dict[str, set[str]]) -> None:
    cycle = find_cycle(graph)
    if cycle is None:
        order = topological_order(graph)
        position = {n: i for i, n in enumerate(order)}
        for node, deps in graph.items():
            for dep in deps:
                if dep in graph:
                    assert position[dep] < position[node]
    else:
        assert cycle[0] == cycle[-1]
        for node, dep in itertools.pairwise(cycle):
            assert dep in graph[node]


@given(graphs, st.data())
def test_priority_groups_put_dependencies_first(
    graph: dict[str, set[str]], data: st.DataObject
) -> None:
    if find_cycle(graph) is not None:
        return
    priority = {n: data.draw(st.integers(1, 5)) for n in graph}
    groups = priority_groups(graph, priority)
    assert sorted(n for g in groups for n in g) == sorted(graph)
    where = {n: (gi, i) for gi, g in enumerate(groups) for i, n in enumerate(g)}
    for node, deps in graph.items():
        for dep in deps:
            if dep in graph:
                assert where[dep] < where[node]
