"""What a plugin environment's *base* is made of: the SDK, the tools and the plugin's
dependencies, without the plugin.  An edited plugin (a new wheel, the same
requirements) gets a copy of its base with only itself installed; and the base can be
made while the plugin builds, from the dependencies its ``pyproject.toml`` declares.

Only what would be installed counts, so the key is the same from either side: each
requirement whose marker holds on this Python (no extra asked), without its marker.
Reading them runs nothing; a ``pyproject.toml`` that lies only makes a base no wheel
uses (the wheel's own requirements decide what the plugin gets).
"""

from __future__ import annotations

import sys
import zipfile
from email.parser import BytesParser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def installed_requirements(lines: list[str]) -> list[str] | None:
    """The requirements an install of these would act on, normalised and sorted; None
    when one cannot be read."""
    environment = {str(k): str(v) for k, v in default_environment().items()} | {"extra": ""}
    wanted = set()
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return None
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        requirement.marker = None
        requirement.name = canonicalize_name(requirement.name)  # "Foo_Bar" is "foo-bar"
        wanted.add(str(requirement))
    return sorted(wanted)


def wheel_requirements(wheel: Path) -> list[str] | None:
    """What the wheel's ``Requires-Dist`` installs; None when its METADATA cannot be read
    (the environment is then made from the wheel alone, which says what is wrong)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1
                     and n.endswith(".dist-info/METADATA")]  # fmt: skip
            if len(names) != 1:
                return None
            parsed = BytesParser().parsebytes(archive.read(names[0]), headersonly=True)
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    return installed_requirements([str(line) for line in parsed.get_all("Requires-Dist") or []])


def project_requirements(project: Path) -> list[str] | None:
    """What the project's ``pyproject.toml`` declares it installs, when it says so
    statically (not ``dynamic``); None otherwise."""
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("project")
    if not isinstance(table, dict) or "dependencies" in table.get("dynamic", []):
        return None
    declared = table.get("dependencies", [])
    if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
        return None
    return installed_requirements(declared)


def modules_of(wheel: Path) -> list[str] | None:
    """The Python modules the wheel installs into site-packages (from its purelib or
    platlib data too), relative to it; None when it cannot be read."""
    paths = installed_paths(wheel, "site-packages")
    if paths is None:
        return None
    return [path.removeprefix("site-packages/") for path in paths
            if path.startswith("site-packages/") and path.endswith(".py")
            and ".dist-info/" not in path]  # fmt: skip


def installed_paths(wheel: Path, site_packages: str) -> list[str] | None:
    """Where installing the wheel writes, relative to the environment's root
    (``site_packages`` is that folder's place in it): its packages and .dist-info there,
    its ``.data`` where each kind goes; None when it cannot be read."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    found = []
    for name in names:
        parts = name.split("/")
        if ".." in parts or not parts[-1]:
            continue
        if len(parts) > 2 and parts[0].endswith(".data"):
            kind, rest = parts[1], parts[2:]
            where = {"purelib": [site_packages], "platlib": [site_packages], "scripts": ["bin"],
                     "data": []}.get(kind)  # fmt: skip
            if where is not None:
                found.append("/".join([*where, *rest]))
            continue
        found.append("/".join([site_packages, *parts]))
    return found
