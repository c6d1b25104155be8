"""The plugin's runtime dependency closure, read from its environment's metadata files.

The closure of the plugin distribution's ``Requires-Dist`` (markers and extras evaluated
for the isolated plugin environment), at the versions installed there, read from its
``*.dist-info`` files: its Python is never started, which would run the ``.pth`` files
of its packages with our rights.  The SDK (``aitbc-plugins``, on no public index) and
what only it requires are left out and listed in ``Dependencies.excluded``.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..base import CheckContext, CheckError
from ..requirements import SDK
from . import _site


class AuditSetupError(CheckError):
    """The dependencies could not be worked out (no environment, inventory failed)."""


@dataclass
class Dependencies:
    root: str  # the plugin's distribution
    pinned: dict[str, tuple[str, str]] = field(default_factory=dict)  # canon -> (name, ver)
    via: dict[str, str] = field(default_factory=dict)  # canon -> who requires it
    excluded: dict[str, str] = field(default_factory=dict)  # name -> why
    missing: dict[str, str] = field(default_factory=dict)  # declared, not installed
    #: the METADATA files of the plugin and of what is audited (None: one has none)
    metadata_files: list[Path] | None = None

    def unresolved(self) -> dict[str, str]:
        return {n: f"required by {p} but not installed" for n, p in self.missing.items()}

    def requirements(self) -> str:
        return "".join(f"{n}=={v}\n" for n, v in sorted(self.pinned.values()))


def _requirements(raw: list[str], env: dict[str, str], extras: set[str]) -> list[Requirement]:
    wanted = []
    for text in raw:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise AuditSetupError(f"unreadable requirement {text!r}: {exc}") from None
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras):
            wanted.append(req)
    return wanted


def _walk(
    root: str, dists: dict[str, dict[str, Any]], env: dict[str, str], stop: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Everything ``root`` requires (name -> parent), not going through ``stop``;
    and the requirements with no installed distribution (name -> parent)."""
    seen: dict[str, set[str]] = {}
    parents: dict[str, str] = {}
    missing: dict[str, str] = {}
    queue: list[tuple[str, set[str]]] = [(root, {""})]
    while queue:
        name, extras = queue.pop()
        for req in _requirements(dists[name]["requires"], env, extras):
            child, wanted = canonicalize_name(req.name), {"", *req.extras}
            if child in (stop, root):
                continue
            if child not in dists:
                missing.setdefault(child, dists[name]["name"])
            elif not wanted <= seen.get(child, set()):
                seen[child] = seen.get(child, set()) | wanted
                parents.setdefault(child, dists[name]["name"])
                queue.append((child, seen[child]))
    return parents, missing


def _inventory(site_packages: Path) -> list[dict[str, Any]]:
    """Every distribution installed in the plugin environment, from its metadata files:
    its Python is not started, which would run the ``.pth`` files of its packages."""
    if not site_packages.is_absolute() or not site_packages.is_dir():
        raise AuditSetupError(f"could not list the plugin environment: no {site_packages}")
    found = []
    path = [str(p) for p in _site.search_dirs(site_packages)]
    for dist in importlib.metadata.distributions(path=path):
        if not dist.metadata["Name"]:
            continue
        files = [f for f in dist.files or [] if f.name == "METADATA"]
        files = [f for f in files if f.parent.suffix == ".dist-info"]
        metadata = str(dist.locate_file(files[0])) if files else None
        found.append({"name": dist.metadata["Name"], "version": dist.version,
                      "requires": dist.requires or [], "metadata": metadata})  # fmt: skip
    return found


def resolve_dependencies(context: CheckContext) -> Dependencies:
    """The plugin's runtime dependency closure at the installed versions."""
    _, plugin = context.built_plugin()
    environment = context.environment()
    env = _site.marker_environment(environment.python)
    dists: dict[str, dict[str, Any]] = {}
    for dist in _inventory(environment.site_packages):  # the first on the path wins
        dists.setdefault(canonicalize_name(dist["name"]), dist)
    root = canonicalize_name(plugin.distribution)
    if root not in dists:
        raise AuditSetupError(f"{plugin.distribution} is not installed in the environment")
    deps = Dependencies(plugin.distribution)
    deps.via, deps.missing = _walk(root, dists, env, stop=canonicalize_name(SDK))
    deps.pinned = {n: (dists[n]["name"], dists[n]["version"]) for n in deps.via}
    files = [dists[n].get("metadata") for n in (root, *sorted(deps.pinned))]
    deps.metadata_files = [Path(f) for f in files if f] if all(files) else None
    if canonicalize_name(SDK) in dists:
        deps.excluded[SDK] = "the AITBC SDK itself: on no public index, not audited"
        for name in _walk(canonicalize_name(SDK), dists, env, stop=None)[0]:
            if name not in deps.pinned and name != root:
                deps.excluded[dists[name]["name"]] = f"required only by {SDK}"
    deps.excluded = dict(sorted(deps.excluded.items(), key=lambda i: i[0].lower()))
    return deps


def pulled_in_by(deps: Dependencies, name: str) -> str:
    """The plugin's own requirement (canonical name) that brings ``name`` in."""
    root, seen = canonicalize_name(deps.root), set()
    while name not in seen:
        seen.add(name)
        parent = canonicalize_name(deps.via.get(name, deps.root))
        if parent == root:
            return name
        name = parent
    return name
