"""Shared fixtures: real plugin directories written into tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

# A loaded 2-core CI machine makes generation slow at times: that is not a failure.
settings.register_profile(
    "aitbc", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("aitbc")

REPO = Path(__file__).resolve().parents[1]
# The SDK keeps its entry-point listing on disk between processes: each test process
# (and what it starts) gets its own, never the user's nor another run's.
os.environ["AITBC_PLUGINS_CACHE_DIR"] = tempfile.mkdtemp(prefix="aitbc-ep-cache-")

PLUGIN_SOURCE = """
import asyncio
import time
from typing import Any

from aitbc.plugins import BasePlugin, PluginMetadata

EVENTS: list = []


class {cls}(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name={name!r}, version={version!r}, description="test plugin",
            author="tests", license="MIT", dependencies={dependencies!r},
            min_aitbc_version={min_v!r}, max_aitbc_version={max_v!r},
        )

    async def initialize(self) -> bool:
{initialize}

    async def start(self) -> bool:
{start}

    async def stop(self) -> bool:
{stop}

    async def cleanup(self) -> bool:
{cleanup}

    async def handle_event(self, event_type: str, data: dict) -> None:
{handle_event}
"""

DEFAULT_STEP = "return True"


def _indent(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip(), " " * 8)


@pytest.fixture
def plugin_root(tmp_path: Path) -> Path:
    root = tmp_path / "plugins"
    root.mkdir()
    return root


@pytest.fixture
def make_plugin(plugin_root: Path) -> Iterator[Callable[..., Path]]:
    """Write ``<plugin_root>/<name>/`` in the spec's layout; its modules are forgotten after."""
    made: list[str] = []

    def make(
        name: str,
        *,
        version: str = "1.0.0",
        dependencies: list[str] | None = None,
        initialize: str = DEFAULT_STEP,
        start: str = DEFAULT_STEP,
        stop: str = DEFAULT_STEP,
        cleanup: str = DEFAULT_STEP,
        handle_event: str = "EVENTS.append((event_type, data))",
        schema: str | None = None,
        min_v: str | None = None,
        max_v: str | None = None,
        source: str | None = None,
        directory: str | None = None,
    ) -> Path:
        folder = plugin_root / (directory or name)
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        code = source or PLUGIN_SOURCE.format(
            cls="P" + name.replace("-", "_").title().replace("_", ""),
            name=name,
            version=version,
            dependencies=dependencies or [],
            min_v=min_v,
            max_v=max_v,
            initialize=_indent(initialize),
            start=_indent(start),
            stop=_indent(stop),
            cleanup=_indent(cleanup),
            handle_event=_indent(handle_event),
        )
        (folder / "plugin.py").write_text(code)
        if schema is not None:
            (folder / "config_schema.json").write_text(schema)
        made.append(folder.name.replace("-", "_"))
        return folder

    yield make
    for module in made:  # forget the modules so later tests see fresh code
        for key in [k for k in sys.modules if k == module or k.startswith(module + ".")]:
            del sys.modules[key]


@pytest.fixture
def manager_config(plugin_root: Path, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def config(plugins: dict[str, Any] | None = None, **extra: object) -> dict[str, Any]:
        return {
            "plugins": plugins or {},
            "plugin_paths": [str(plugin_root)],
            "data_dir": str(tmp_path / "data"),
            "health_check_interval": 3600,
            **extra,
        }

    return config


# -- real wheels and venvs, built once per test run and shared by xdist workers ----------
def _uv() -> list[str]:
    return [sys.executable, "-m", "uv"]


def run_checked(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def _shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    # getbasetemp() is per worker under xdist; its parent is shared by the whole run.
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / name


@pytest.fixture(scope="session")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The aitbc-plugins wheel built from this checkout with uv (hatchling backend)."""
    out = _shared_dir(tmp_path_factory, "sdk-wheel")
    with FileLock(str(out) + ".lock"):
        wheels = sorted(out.glob("aitbc_plugins-*.whl"))
        if not wheels:
            run_checked([*_uv(), "build", "--wheel", "--out-dir", str(out), str(REPO)])
            wheels = sorted(out.glob("aitbc_plugins-*.whl"))
    return wheels[-1]


def make_venv(path: Path, *requirements: str) -> Path:
    """A real virtual environment with ``requirements`` installed; returns its python."""
    run_checked([*_uv(), "venv", "--quiet", "--python", sys.executable, str(path)])
    python = path / "bin" / "python"
    if requirements:
        run_checked([*_uv(), "pip", "install", "--quiet", "--python", str(python), *requirements])
    return python


@pytest.fixture(scope="session")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Path:
    """A venv (one per worker) holding the built SDK wheel and pytest."""
    return make_venv(tmp_path_factory.mktemp("sdk-venv"), str(sdk_wheel), "pytest")


@pytest.fixture(scope="session", autouse=True)
def isolated_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The toolkit's user cache (results, environments) lives in the test run, shared by
    the xdist workers, never in the developer's home."""
    cache = _shared_dir(tmp_path_factory, "xdg-cache")
    cache.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


VULN_DB = REPO.parent / "shared" / "advisory-db"
FAST_POLICY = """
[lifecycle]
step_timeout_s = 3
total_timeout_s = 30
"""
