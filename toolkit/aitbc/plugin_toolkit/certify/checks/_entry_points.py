"""The wheel's entry points, read as hosts and pip read them (importlib.metadata).

Certification names the plugin from entry_points.txt with configparser
(distributions.plugin_info); importlib.metadata has a parser of its own, which reads
some files differently (an indented line, a `;` comment, a line before any section).
The plugin that was certified must be the one a host loads, so the two readings must
agree, and no other group may be declared unless the policy allows it.
"""

from __future__ import annotations

import os
from importlib import metadata as importlib_metadata
from pathlib import Path

from ..base import PluginInfo
from ..distributions import ENTRY_POINT_GROUP
from ..model import Finding, Severity

#: Commands a console script must never shadow: the tools that install and certify.
_SHADOWED = frozenset({"pip", "pip3", "python", "python3", "aitbc-plugin", "uv", "pytest"})
_SCRIPT_GROUPS = frozenset({"console_scripts", "gui_scripts"})


class _EntryPointsText(importlib_metadata.Distribution):
    """A distribution that is only its entry_points.txt: importlib.metadata's own parser."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read_text(self, filename: str | os.PathLike[str]) -> str | None:
        return self._text if str(filename) == "entry_points.txt" else None

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        raise FileNotFoundError(path)  # never asked: only entry points are read


def read_entry_points(text: str) -> list[tuple[str, str, str]]:
    """(group, name, value) of each entry point, in order; ValueError when unreadable."""
    try:
        return [(e.group, e.name, e.value) for e in _EntryPointsText(text).entry_points]
    except (TypeError, ValueError) as exc:  # a line without "=" in a section
        raise ValueError(f"a line is not 'name = value' ({exc})") from None


def _why_refused(group: str, name: str) -> str:
    if group in _SCRIPT_GROUPS:
        shadows = " and would shadow that tool" if name.lower() in _SHADOWED else ""
        return f"it installs a command {name!r} on PATH{shadows}"
    if group == "pytest11":
        return "pytest would load it into every test run in the environment"
    return "software that loads that group would run the plugin's code"


def entry_point_findings(
    text: str, plugin: PluginInfo, allowed: tuple[str, ...], where: str
) -> list[Finding]:
    """What is wrong with entry_points.txt (its text) at ``where`` in the wheel."""
    try:
        points = read_entry_points(text)
    except ValueError as exc:
        return [
            Finding(
                "build.entry-point",
                Severity.HIGH,
                f"{where} cannot be read as hosts read it (importlib.metadata): {exc}",
                where,
            )
        ]
    findings = []
    ours = [(name, value) for group, name, value in points if group == ENTRY_POINT_GROUP]
    if ours != [(plugin.name, plugin.entry_point)]:
        said = ", ".join(f"{name} = {value}" for name, value in ours) or "nothing"
        findings.append(
            Finding(
                "build.entry-point",
                Severity.HIGH,
                f"{where}: hosts read [{ENTRY_POINT_GROUP}] as {said}, not as the certified "
                f"{plugin.name} = {plugin.entry_point}: a host would load something else",
                where,
            )
        )
    for group, name, value in points:
        if group == ENTRY_POINT_GROUP or group in allowed:
            continue
        findings.append(
            Finding(
                "build.entry-point",
                Severity.HIGH,
                f"{where}: the entry point [{group}] {name} = {value} is refused: "
                f"{_why_refused(group, name)} (a plugin declares only {ENTRY_POINT_GROUP}, "
                "unless the policy's [build] allowed_entry_point_groups names the group)",
                where,
            )
        )
    return findings
