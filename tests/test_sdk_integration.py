"""The SDK from its built wheel, in real venvs, with real installed entry-point plugins."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, make_venv, run_checked
from uv import find_uv_bin

pytestmark = pytest.mark.integration

SECOND_PLUGIN_PYPROJECT = """
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "late-plugin"
version = "2.5.0"
dependencies = ["aitbc-plugins"]

[project.entry-points."aitbc.plugins"]
late-plugin = "late_plugin:LatePlugin"
"""

SECOND_PLUGIN_CODE = """
from aitbc.plugins import BasePlugin, PluginMetadata

class LatePlugin(BasePlugin):
    def get_metadata(self):
        return PluginMetadata(name="late-plugin", version="2.5.0", description="",
                              author="", license="MIT")
    async def initialize(self): return True
    async def start(self): return True
    async def stop(self): return True
    async def cleanup(self): return True
"""

HOST_SCRIPT = r"""
import asyncio, json, subprocess, sys
from importlib import metadata
from aitbc.plugins import PluginManager
from aitbc.plugins import discovery

calls = []
real_entry_points = metadata.entry_points
def counting_entry_points(**kw):
    calls.append(kw)
    return real_entry_points(**kw)
discovery.importlib_metadata.entry_points = counting_entry_points

config = {
    "plugins": {
        "bitcoin-integration": {"enabled": True, "priority": 10,
                                "config": {"genesis": {"alice": 50}}},
        "my-plugin": {"enabled": True, "priority": 20},
        "translation-ai": {"enabled": True, "dependencies": ["my-plugin"]},
    },
    "plugin_paths": [sys.argv[1]],
    "data_dir": sys.argv[2],
}
out = {}
manager = PluginManager(config)
out["discovered"] = manager.discover_plugins()
out["imported_after_discovery"] = "aitbc_bitcoin.plugin" in sys.modules
manager.discover_plugins()
out["entry_point_scans_warm"] = len(calls)

async def main():
    async with manager:
        out["status"] = {n: manager.get_plugin_status(n).value for n in config["plugins"]}
        btc = manager.plugins["bitcoin-integration"]
        out["tx"] = await btc.send_transaction({"from": "alice", "to": "bob", "amount": 20})
        out["bob"] = await btc.get_balance("bob")
        out["events_seen"] = manager.plugins["my-plugin"].events_seen
    out["after"] = {n: manager.get_plugin_status(n).value for n in config["plugins"]}

asyncio.run(main())
subprocess.run([sys.argv[3], "pip", "install", "--quiet", "--python", sys.executable,
                "--no-deps", sys.argv[4]], check=True)
names = [p["name"] for p in manager.discover_plugins()]
out["after_install"] = names
out["entry_point_scans_after_install"] = len(calls)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def host_venv(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Path:
    return make_venv(
        tmp_path_factory.mktemp("host-venv"),
        str(sdk_wheel),
        str(REPO / "examples" / "bitcoin-integration"),
    )


def test_directory_and_entry_point_plugins_in_a_real_venv(host_venv: Path, tmp_path: Path) -> None:
    late = tmp_path / "late"
    late.mkdir()
    (late / "pyproject.toml").write_text(SECOND_PLUGIN_PYPROJECT)
    (late / "late_plugin.py").write_text(textwrap.dedent(SECOND_PLUGIN_CODE))
    result = run_checked(
        [str(host_venv), "-c", HOST_SCRIPT, str(REPO / "examples" / "plugins"),
         str(tmp_path / "data"), find_uv_bin(), str(late)],
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    out = json.loads(result.stdout.strip().splitlines()[-1])
    found = {p["name"]: p for p in out["discovered"]}
    assert found["bitcoin-integration"]["source"] == "entry_point"
    assert found["bitcoin-integration"]["version"] == "1.0.0"
    assert found["bitcoin-integration"]["location"] == "aitbc_bitcoin.plugin:BitcoinPlugin"
    assert found["my-plugin"]["source"] == "directory"
    assert out["imported_after_discovery"] is False  # lazy: metadata only
    assert out["entry_point_scans_warm"] == 1  # the second listing came from the cache
    assert out["status"] == {"bitcoin-integration": "active", "my-plugin": "active",
                             "translation-ai": "active"}  # fmt: skip
    assert out["bob"] == {"address": "bob", "balance": 20}
    assert out["events_seen"] == 1  # the chain's event reached the directory plugin
    assert set(out["after"].values()) == {"unloaded"}
    assert "late-plugin" in out["after_install"]  # the cache noticed the new distribution
    assert out["entry_point_scans_after_install"] == 2


def test_sdk_wheel_ships_py_typed_schemas_and_no_toolkit_weight(sdk_wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(sdk_wheel).namelist()
    assert "aitbc/plugins/py.typed" in names
    assert "aitbc/plugins/schemas/manager_config.schema.json" in names
    assert "aitbc/__init__.py" not in names  # aitbc is a namespace package
    metadata = (
        zipfile.ZipFile(sdk_wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    runtime = [line for line in metadata.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line]  # fmt: skip
    assert sorted(line.split()[1].split(">")[0].split("=")[0].lower() for line in runtime) == [
        "click", "jsonschema", "packaging", "pyyaml"
    ]  # fmt: skip


def test_console_script_version_and_help(host_venv: Path) -> None:
    script = host_venv.with_name("aitbc-plugin")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == "aitbc-plugin, version 1.0.0"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "Usage: aitbc-plugin" in shown.stdout
