"""BasePlugin's lifecycle state machine, driven by the plugin's own methods."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import (
    TRANSITIONS,
    BasePlugin,
    IllegalTransitionError,
    PluginMetadata,
    PluginStatus,
)
from aitbc.plugins.testing import make_context

S = PluginStatus


class Good(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(name="good", version="1.0.0", description="", author="", license="")

    async def initialize(self) -> bool:
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True


class FailsStart(Good):
    async def start(self) -> bool:
        return False


class RaisesStop(Good):
    async def stop(self) -> bool:
        raise RuntimeError("disk on fire")


class CallsSuper(Good):
    async def start(self) -> bool:
        self.calls = getattr(self, "calls", 0) + 1
        return await super().start()


@pytest.fixture
def ctx(tmp_path: Path) -> Any:
    return make_context(tmp_path)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def status_now(plugin: BasePlugin) -> PluginStatus:
    """``plugin.status`` read afresh: a type checker keeps an earlier ``is`` narrowing of
    the attribute across the calls that change it."""
    return plugin.status


def test_transition_table_matches_the_spec() -> None:
    main_line = [S.UNLOADED, S.LOADING, S.LOADED, S.ACTIVE, S.INACTIVE, S.UNLOADING, S.UNLOADED]
    for current, new in itertools.pairwise(main_line):
        assert new in TRANSITIONS[current]
    assert S.ACTIVE in TRANSITIONS[S.INACTIVE]  # restart
    assert TRANSITIONS[S.ERROR] == {S.UNLOADING}
    for state in (S.LOADING, S.LOADED, S.ACTIVE, S.INACTIVE, S.UNLOADING):
        assert S.ERROR in TRANSITIONS[state]


def test_full_lifecycle_moves_status_truthfully(ctx: Any) -> None:
    plugin = Good(ctx)
    seen = [plugin.status]

    async def go() -> None:
        for step in ("initialize", "start", "stop", "start", "stop", "cleanup"):
            assert await getattr(plugin, step)() is True
            seen.append(plugin.status)

    run(go())
    assert seen == [S.UNLOADED, S.LOADED, S.ACTIVE, S.INACTIVE, S.ACTIVE, S.INACTIVE, S.UNLOADED]


def test_false_from_a_step_means_error(ctx: Any) -> None:
    plugin = FailsStart(ctx)

    async def go() -> None:
        await plugin.initialize()
        assert await plugin.start() is False

    run(go())
    assert plugin.status is S.ERROR
    assert "start returned False" in (plugin.last_error or "")
    assert plugin.error_count == 1


def test_exception_from_a_step_means_error_and_propagates(ctx: Any) -> None:
    plugin = RaisesStop(ctx)

    async def go() -> None:
        await plugin.initialize()
        await plugin.start()
        with pytest.raises(RuntimeError, match="disk on fire"):
            await plugin.stop()

    run(go())
    assert plugin.status is S.ERROR
    # ERROR leaves only through UNLOADING: cleanup is allowed, start is not.
    with pytest.raises(IllegalTransitionError):
        run(plugin.start())
    assert run(plugin.cleanup()) is True
    assert status_now(plugin) is S.UNLOADED


@pytest.mark.parametrize(
    ("steps", "illegal"),
    [
        ((), "start"),
        ((), "stop"),
        (("initialize",), "stop"),
        (("initialize",), "initialize"),
        (("initialize", "start"), "start"),
        (("initialize", "start"), "cleanup"),
    ],
)
def test_illegal_calls_are_refused_without_running_plugin_code(
    ctx: Any, steps: tuple[str, ...], illegal: str
) -> None:
    plugin = Good(ctx)

    async def go() -> None:
        for step in steps:
            await getattr(plugin, step)()
        before = plugin.status
        with pytest.raises(IllegalTransitionError, match=illegal):
            await getattr(plugin, illegal)()
        assert plugin.status is before

    run(go())


def test_direct_status_assignment_follows_the_state_machine(ctx: Any) -> None:
    plugin = Good(ctx)
    with pytest.raises(IllegalTransitionError, match="unloaded -> active"):
        plugin.status = S.ACTIVE
    plugin.status = S.LOADING
    plugin.status = S.LOADING  # staying put is not a transition
    with pytest.raises(TypeError):
        plugin.status = "active"  # type: ignore[assignment]


def test_super_call_is_one_step_not_two(ctx: Any) -> None:
    plugin = CallsSuper(ctx)

    async def go() -> None:
        await plugin.initialize()
        assert await plugin.start() is True

    run(go())
    assert plugin.status is S.ACTIVE and plugin.calls == 1


def test_cancelled_step_leaves_error(ctx: Any) -> None:
    class Hangs(Good):
        async def initialize(self) -> bool:
            await asyncio.Event().wait()
            return True

    plugin = Hangs(ctx)

    async def go() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(plugin.initialize(), 0.05)

    run(go())
    assert plugin.status is S.ERROR


def test_health_check_reports_real_values(ctx: Any) -> None:
    plugin = Good(ctx)

    async def go() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        before = await plugin.health_check()
        await plugin.initialize()
        await plugin.start()
        await asyncio.sleep(0.02)
        during = await plugin.health_check()
        await plugin.stop()
        after = await plugin.health_check()
        return before, during, after

    before, during, after = run(go())
    assert before["status"] == "unloaded" and before["uptime"] is None
    assert during["status"] == "active" and during["uptime"] >= 0.02
    assert during["memory_usage"] > 1_000_000  # a Python process holds megabytes
    assert during["error_count"] == 0
    assert after["status"] == "inactive" and after["uptime"] is None


def test_config_schema_defaults_to_the_json_beside_the_module(tmp_path: Path) -> None:
    import importlib.util
    import sys

    module_dir = tmp_path / "schema_plugin_mod"
    module_dir.mkdir()
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    (module_dir / "config_schema.json").write_text(json.dumps(schema))
    (module_dir / "plugin.py").write_text(
        "from aitbc.plugins import BasePlugin, PluginMetadata\n"
        "class SP(BasePlugin):\n"
        "    def get_metadata(self):\n"
        "        return PluginMetadata(name='sp', version='1', description='', author='',"
        " license='')\n"
        "    async def initialize(self): return True\n"
        "    async def start(self): return True\n"
        "    async def stop(self): return True\n"
        "    async def cleanup(self): return True\n"
    )
    spec = importlib.util.spec_from_file_location(
        "schema_plugin_mod_plugin", module_dir / "plugin.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    try:
        assert module.SP(make_context(tmp_path)).get_config_schema() == schema
    finally:
        del sys.modules[spec.name]
    assert Good(make_context(tmp_path)).get_config_schema() == {}


def test_abstract_methods_must_be_implemented(ctx: Any) -> None:
    class Incomplete(BasePlugin):
        def get_metadata(self) -> PluginMetadata:
            raise NotImplementedError

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(ctx)  # type: ignore[abstract]


def test_a_look_alike_status_enum_is_named_for_what_it_is(ctx: Any) -> None:
    """The upstream starter kit's own PluginStatus enum: the error says so, and it is
    kept on the plugin (where certification finds it) even when the plugin swallows it."""
    import enum

    class PluginStatus(enum.Enum):
        ACTIVE = "active"

    class SwallowsIt(Good):
        async def start(self) -> bool:
            try:
                self.status = PluginStatus.ACTIVE  # type: ignore[assignment]
            except TypeError:
                return False
            return True

    plugin = SwallowsIt(ctx)
    run(plugin.initialize())
    assert run(plugin.start()) is False
    reason, file, line = plugin.__dict__["_status_misuse"]
    assert reason == (
        f"{__name__}.PluginStatus is not aitbc.plugins.PluginStatus: import it from aitbc.plugins"
    )
    assert file == __file__ and line > 0
    with pytest.raises(TypeError, match="status must be a PluginStatus, not str"):
        plugin.status = "active"  # type: ignore[assignment]
