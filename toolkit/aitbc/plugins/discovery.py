"""Finding plugins without importing them, and importing them when asked.

Two sources, as the spec's Local Discovery and the packaging ecosystem give them:
directories under ``plugin_paths`` in the spec's layout, and installed
distributions exposing entry points in the group ``aitbc.plugins``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from . import _ep_cache as _ep_cache_file
from .base import BasePlugin
from .errors import PluginLoadError

ENTRY_POINT_GROUP = "aitbc.plugins"
Source = Literal["directory", "entry_point"]


@dataclass(frozen=True)
class DiscoveredPlugin:
    """A plugin that can be loaded: plain data, found without running its code."""

    name: str
    version: str | None
    source: Source
    location: str  # the plugin's directory, or the entry point's "module:Class"
    distribution: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- directory plugins --------------------------------------------------------------------
def _literal_metadata(plugin_py: Path) -> dict[str, str]:
    """``name=`` and ``version=`` of the first literal ``PluginMetadata(...)`` call."""
    try:
        tree = ast.parse(plugin_py.read_bytes(), filename=str(plugin_py))
    except (SyntaxError, ValueError, OSError):
        return {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called != "PluginMetadata":
            continue
        found = {
            kw.arg: kw.value.value
            for kw in node.keywords
            if kw.arg in ("name", "version")
            and isinstance(kw.value, ast.Constant)
            and isinstance(kw.value.value, str)
        }
        if found:
            return found
    return {}


def discover_directory(path: Path) -> list[DiscoveredPlugin]:
    """Every ``<path>/<dir>/plugin.py`` as a plugin, named by its literal metadata."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        plugin_py = child / "plugin.py"
        if child.name.startswith((".", "_")) or not plugin_py.is_file():
            continue
        literal = _literal_metadata(plugin_py)
        found.append(
            DiscoveredPlugin(
                name=literal.get("name", child.name),
                version=literal.get("version"),
                source="directory",
                location=str(child.resolve()),
            )
        )
    return found


# -- entry points -------------------------------------------------------------------------
_ep_cache_lock = threading.Lock()
_ep_cache: tuple[tuple[Any, ...], tuple[DiscoveredPlugin, ...]] | None = None


def _installation_fingerprint() -> tuple[Any, ...]:
    """Changes whenever a distribution is installed or removed on ``sys.path``.

    Installing or removing one adds or deletes a ``*.dist-info`` (or ``.pth``)
    entry in a path directory, which changes that directory's mtime.
    """
    stamps: list[Any] = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))  # noqa: PTH116 - hot path
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def _distribution_name_version(
    dist: importlib_metadata.Distribution | None,
) -> tuple[str | None, str | None]:
    """Name and version of an installed distribution, from its ``name-version.dist-info``
    folder when it has one (reading every METADATA file would triple the listing time)."""
    if dist is None:
        return None, None
    folder = getattr(dist, "_path", None)  # PathDistribution's folder, stable since 3.8
    if folder is not None and folder.name.endswith(".dist-info") and "-" in folder.name:
        name, _, version = folder.name[: -len(".dist-info")].partition("-")
        return name, version
    return dist.metadata["Name"], dist.version


def discover_entry_points(*, use_cache: bool = True) -> list[DiscoveredPlugin]:
    """Installed plugins, from distribution metadata only (no plugin code is imported)."""
    global _ep_cache
    fingerprint = _installation_fingerprint()
    with _ep_cache_lock:
        if use_cache and _ep_cache is not None and _ep_cache[0] == fingerprint:
            return list(_ep_cache[1])
    if use_cache:  # a fresh process: the listing the previous one left on disk
        kept = _from_disk(fingerprint)
        if kept is not None:
            with _ep_cache_lock:
                _ep_cache = (fingerprint, tuple(kept))
            return kept
    plugins = []
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution, version = _distribution_name_version(getattr(ep, "dist", None))
        plugins.append(
            DiscoveredPlugin(
                name=ep.name,
                version=version,
                source="entry_point",
                location=ep.value,
                distribution=distribution,
            )
        )
    with _ep_cache_lock:
        _ep_cache = (fingerprint, tuple(plugins))
    # Rows, not dicts: dataclasses.asdict would cost more than the scan saves.
    _ep_cache_file.store(_jsonable(fingerprint), [
        [p.name, p.version, p.source, p.location, p.distribution] for p in plugins
    ])  # fmt: skip
    return plugins


def _jsonable(fingerprint: tuple[Any, ...]) -> list[Any]:
    return [list(stamp) for stamp in fingerprint]


def _from_disk(fingerprint: tuple[Any, ...]) -> list[DiscoveredPlugin] | None:
    kept = _ep_cache_file.load(_jsonable(fingerprint))
    if kept is None:
        return None
    try:
        return [DiscoveredPlugin(*row) for row in kept]
    except TypeError:  # written by another version of this module
        return None


def discover(plugin_paths: tuple[Path, ...] | list[Path]) -> list[DiscoveredPlugin]:
    """Directory plugins (in ``plugin_paths`` order), then entry-point plugins."""
    found: list[DiscoveredPlugin] = []
    for path in plugin_paths:
        found.extend(discover_directory(path))
    found.extend(discover_entry_points())
    return found


# -- importing ----------------------------------------------------------------------------
_import_lock = threading.Lock()


def module_name_for(directory: Path) -> str:
    """The import name of a plugin directory: its name with '-' as '_', made an identifier."""
    name = re.sub(r"\W", "_", directory.name.replace("-", "_"))
    return name if name.isidentifier() and not name[0].isdigit() else f"_{name}"


def _import_directory_package(directory: Path) -> ModuleType:
    """Import ``directory`` as a package (its own absolute and relative imports work)."""
    package = module_name_for(directory)
    with _import_lock:
        existing = sys.modules.get(package)
        if existing is not None:
            if [str(directory)] == list(getattr(existing, "__path__", [])):
                return importlib.import_module(f"{package}.plugin")
            raise PluginLoadError(
                f"cannot import {directory} as {package!r}: that module name is already "
                f"taken by {getattr(existing, '__file__', None) or existing!r}"
            )
        init = directory / "__init__.py"
        spec: ModuleSpec | None
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                package, init, submodule_search_locations=[str(directory)]
            )
        else:  # a directory without __init__.py imports like a namespace package
            spec = ModuleSpec(package, None, is_package=True)
            spec.submodule_search_locations = [str(directory)]
        if spec is None:  # pragma: no cover - only for non-file loaders
            raise PluginLoadError(f"cannot import {directory}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(package, None)
            raise
    return importlib.import_module(f"{package}.plugin")


def _single_plugin_class(module: ModuleType, where: str) -> type[BasePlugin]:
    candidates = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BasePlugin)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(candidates) != 1:
        names = ", ".join(sorted(c.__name__ for c in candidates)) or "none"
        raise PluginLoadError(
            f"{where} must define exactly one concrete BasePlugin subclass (found: {names})"
        )
    return candidates[0]


def _named_class(module: ModuleType, where: str, class_name: str) -> type[Any]:
    obj = vars(module).get(class_name)
    if not inspect.isclass(obj):
        raise PluginLoadError(f"{where} defines no class {class_name!r} (config: class)")
    return obj


def _factory_or_class(module: ModuleType, where: str, class_name: str | None) -> Any:
    """What makes the plugin: the configured class, else the module's
    ``create_plugin(context)`` factory (as the upstream starter kit writes plugins,
    whatever classes it defines), else its one concrete BasePlugin subclass."""
    if class_name is not None:
        return _named_class(module, where, class_name)
    factory = vars(module).get("create_plugin")
    if callable(factory) and not inspect.isclass(factory):
        return factory
    return _single_plugin_class(module, where)


def load_plugin_class(found: DiscoveredPlugin, class_name: str | None = None) -> Any:
    """Import the plugin's code and return its class, or its ``create_plugin`` factory.
    Runs plugin code: call off the loop."""
    try:
        if found.source == "directory":
            directory = Path(found.location)
            module = _import_directory_package(directory)
            return _factory_or_class(module, str(directory / "plugin.py"), class_name)
        module_name, _, attr = found.location.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split(".") if attr else []:
            obj = getattr(obj, part)
        if isinstance(obj, ModuleType):  # an entry point naming a module
            return _factory_or_class(obj, found.location, class_name)
    except PluginLoadError:
        raise
    except Exception as exc:
        raise PluginLoadError(
            f"importing {found.location} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not inspect.isclass(obj) and not callable(obj):
        raise PluginLoadError(f"entry point {found.location} is not a class or a factory")
    return obj


def is_module_imported(found: DiscoveredPlugin) -> bool:
    """True when importing the plugin would run no new code (its module is loaded)."""
    if found.source == "directory":
        return f"{module_name_for(Path(found.location))}.plugin" in sys.modules
    return found.location.partition(":")[0].strip() in sys.modules
