"""PluginManager: the spec's methods, and that they fail softly with a readable reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import PluginManager, PluginNotFoundError, PluginStatus

S = PluginStatus


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_load_start_stop_unload(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("alpha")
    manager = PluginManager(manager_config())

    async def go() -> list[PluginStatus]:
        seen = [manager.get_plugin_status("alpha")]
        assert await manager.load_plugin("alpha") is True
        seen.append(manager.get_plugin_status("alpha"))
        assert manager.list_plugins() == ["alpha"]
        assert await manager.start_plugin("alpha") is True
        seen.append(manager.get_plugin_status("alpha"))
        assert await manager.stop_plugin("alpha") is True
        seen.append(manager.get_plugin_status("alpha"))
        assert await manager.start_plugin("alpha") is True  # restart
        seen.append(manager.get_plugin_status("alpha"))
        assert await manager.unload_plugin("alpha") is True
        seen.append(manager.get_plugin_status("alpha"))
        return seen

    assert run(go()) == [S.UNLOADED, S.LOADED, S.ACTIVE, S.INACTIVE, S.ACTIVE, S.UNLOADED]
    assert manager.list_plugins() == []
    assert manager.get_plugin_error("alpha") is None


def test_context_dirs_are_per_plugin_and_temp_is_removed(
    make_plugin: Any, manager_config: Any, tmp_path: Path
) -> None:
    make_plugin("alpha")
    make_plugin("beta")
    manager = PluginManager(manager_config())

    async def go() -> tuple[str, str, str]:
        await manager.load_plugin("alpha")
        await manager.load_plugin("beta")
        a, b = manager.plugins["alpha"].context, manager.plugins["beta"].context
        assert Path(a.data_dir).is_dir() and Path(a.temp_dir).is_dir()
        assert a.data_dir != b.data_dir and a.temp_dir != b.temp_dir
        assert a.api_client is None
        await manager.unload_plugin("alpha")
        return a.data_dir, a.temp_dir, b.temp_dir

    data_dir, temp_dir, other_temp = run(go())
    assert Path(data_dir) == tmp_path / "data" / "alpha" and Path(data_dir).is_dir()
    assert not Path(temp_dir).exists()  # removed with the plugin
    assert Path(other_temp).is_dir()  # the other plugin's is untouched
    run(manager.shutdown())
    assert not Path(other_temp).exists()


def test_api_client_is_what_the_host_passes(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("alpha")
    client = object()
    manager = PluginManager(manager_config(), api_client=client)
    run(manager.load_plugin("alpha"))
    assert manager.plugins["alpha"].context.api_client is client
    run(manager.shutdown())


def test_unknown_plugin(manager_config: Any) -> None:
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin("ghost")) is False
    assert "no plugin named 'ghost'" in (manager.get_plugin_error("ghost") or "")
    with pytest.raises(PluginNotFoundError):
        manager.get_plugin_status("ghost")
    for call in (manager.start_plugin, manager.stop_plugin):
        assert run(call("ghost")) is False


def test_configured_but_unloaded_plugin_is_unloaded(manager_config: Any) -> None:
    manager = PluginManager(manager_config({"later": {"enabled": True}}))
    assert manager.get_plugin_status("later") is S.UNLOADED


FAILURES = {
    "import error": ({"source": "import nonexistent_module_xyz\n"}, "ModuleNotFoundError"),
    "no plugin class": ({"source": "X = 1\n"}, "exactly one concrete BasePlugin subclass"),
    "initialize False": ({"initialize": "return False"}, "initialize returned False"),
    "initialize raises": ({"initialize": "raise ValueError('bad input')"}, "ValueError: bad input"),
    "initialize hangs": ({"initialize": "await asyncio.Event().wait()"}, "timed out after 0.3s"),
    "initialize blocks": ({"initialize": "time.sleep(0.5); return True"}, "blocked the event loop"),
    "initialize returns None": ({"initialize": "return None"}, "returned None"),
    "too new": ({"min_v": "99.0"}, "requires AITBC >= 99.0"),
    "too old": ({"max_v": "0.1"}, "requires AITBC <= 0.1"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_load_failure_returns_false_with_reason(
    case: str, make_plugin: Any, manager_config: Any
) -> None:
    kwargs, reason = FAILURES[case]
    make_plugin("broken", **kwargs)
    make_plugin("healthy")
    manager = PluginManager(manager_config(lifecycle_timeout=0.3))

    async def go() -> None:
        assert await manager.load_plugin("healthy") is True
        assert await manager.start_plugin("healthy") is True
        assert await manager.load_plugin("broken") is False

    run(go())
    assert reason in (manager.get_plugin_error("broken") or "")
    assert manager.get_plugin_status("broken") is S.ERROR
    assert reason in manager.health_report()["broken"]["last_error"]
    assert manager.get_plugin_status("healthy") is S.ACTIVE  # never touched
    run(manager.shutdown())


@pytest.mark.parametrize(
    ("step", "code", "reason"),
    [
        ("start", "return False", "start returned False"),
        ("start", "raise RuntimeError('port taken')", "RuntimeError: port taken"),
        ("start", "await asyncio.sleep(60)", "start timed out"),
        ("stop", "raise RuntimeError('stuck')", "stop raised RuntimeError: stuck"),
        ("stop", "await asyncio.sleep(60)", "stop timed out"),
    ],
)
def test_step_failures_leave_error_and_unload_still_works(
    step: str, code: str, reason: str, make_plugin: Any, manager_config: Any
) -> None:
    make_plugin("flaky", **{step: code})
    manager = PluginManager(manager_config(lifecycle_timeout=0.3))

    async def go() -> None:
        assert await manager.load_plugin("flaky") is True
        started = await manager.start_plugin("flaky")
        if step == "stop":
            assert started is True
            assert await manager.stop_plugin("flaky") is False
        else:
            assert started is False
        assert manager.get_plugin_status("flaky") is S.ERROR
        assert reason in (manager.get_plugin_error("flaky") or "")
        assert await manager.start_plugin("flaky") is False  # ERROR must be unloaded first
        assert await manager.unload_plugin("flaky") is True  # ERROR -> UNLOADING -> UNLOADED
        assert manager.get_plugin_status("flaky") is S.UNLOADED
        assert await manager.load_plugin("flaky") is True  # and it can come back

    run(go())
    run(manager.shutdown())


def test_a_failed_cleanup_still_unloads_and_keeps_the_reason(
    make_plugin: Any, manager_config: Any
) -> None:
    make_plugin("sticky", cleanup="return False")
    manager = PluginManager(manager_config())

    async def go() -> None:
        await manager.load_plugin("sticky")
        assert await manager.unload_plugin("sticky") is False  # the cleanup failed...
        assert manager.get_plugin_status("sticky") is S.UNLOADED  # ...and it is unloaded
        assert "sticky" not in manager.list_plugins()
        assert "cleanup returned False" in (manager.get_plugin_error("sticky") or "")
        assert "cleanup returned False" in manager.health_report()["sticky"]["last_error"]
        assert await manager.load_plugin("sticky") is True  # and it can come back
        await manager.shutdown()
        assert manager.list_plugins() == []
        assert manager.get_plugin_status("sticky") is S.UNLOADED

    run(go())


def test_disabled_plugin_is_never_loaded(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("off")
    manager = PluginManager(manager_config({"off": {"enabled": False}}))
    assert run(manager.load_plugin("off")) is False
    assert "disabled" in (manager.get_plugin_error("off") or "")
    assert manager.get_plugin_status("off") is S.UNLOADED  # refused, not failed
    assert manager.health_report()["off"]["status"] == "unloaded"


def test_plugin_config_is_validated_against_its_schema(
    make_plugin: Any, manager_config: Any
) -> None:
    schema = json.dumps({"type": "object", "properties": {"port": {"type": "integer"}},
                         "required": ["port"]})  # fmt: skip
    make_plugin("strict", schema=schema)
    bad = PluginManager(manager_config({"strict": {"enabled": True, "config": {"port": "x"}}}))
    assert run(bad.load_plugin("strict")) is False
    assert "plugins.strict.config.port" in (bad.get_plugin_error("strict") or "")
    good = PluginManager(manager_config({"strict": {"enabled": True, "config": {"port": 80}}}))
    assert run(good.load_plugin("strict")) is True
    assert good.plugins["strict"].context.config == {"port": 80}
    run(good.shutdown())


def test_metadata_name_must_match_the_discovered_name(
    make_plugin: Any, manager_config: Any, plugin_root: Path
) -> None:
    folder = make_plugin("real-name", directory="folder-name")
    # A computed name is not literal, so discovery falls back to the folder name.
    code = (folder / "plugin.py").read_text().replace("name='real-name'", "name='real-' + 'name'")
    (folder / "plugin.py").write_text(code)
    manager = PluginManager(manager_config())
    assert run(manager.load_plugin(folder.name)) is False
    assert "calls itself 'real-name'" in (manager.get_plugin_error(folder.name) or "")


def test_a_secret_from_the_environment_never_shows(
    make_plugin: Any, manager_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-Value-42"
    make_plugin(
        "leaky",
        initialize="""
        self.context.logger.warning("connecting with %s", self.context.config["token"])
        self.context.logger.warning(f"token={self.context.config['token']}")
        return True
        """,
        start="raise RuntimeError('auth failed for ' + self.context.config['token'])",
    )
    config = manager_config({"leaky": {"enabled": True, "config": {"token": "${LEAKY_TOKEN}"}}})
    manager = PluginManager(config, environ={"LEAKY_TOKEN": secret})

    async def go() -> None:
        assert await manager.load_plugin("leaky") is True
        assert await manager.start_plugin("leaky") is False

    with caplog.at_level("DEBUG"):
        run(go())
    plugin = manager.plugins["leaky"]
    assert plugin.context.config["token"] == secret  # the plugin can use it
    shown = [caplog.text, repr(plugin.context), json.dumps(manager.health_report()),
             manager.get_plugin_error("leaky") or ""]  # fmt: skip
    for text in shown:
        assert secret not in text
    assert "***" in caplog.text and "***" in (manager.get_plugin_error("leaky") or "")


def test_missing_environment_variable_fails_the_load(make_plugin: Any, manager_config: Any) -> None:
    make_plugin("needs-env")
    config = manager_config({"needs-env": {"enabled": True, "config": {"k": "${NOT_SET_X1}"}}})
    manager = PluginManager(config, environ={})
    assert run(manager.load_plugin("needs-env")) is False
    assert "environment variable NOT_SET_X1 is not set" in (
        manager.get_plugin_error("needs-env") or ""
    )
