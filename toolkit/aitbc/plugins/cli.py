"""Mounting the click groups of active CLI plugins into a host's command line."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from .kinds import CLIPlugin
from .manager import PluginManager
from .status import PluginStatus


@dataclass
class MountResult:
    """What :func:`mount_cli_plugins` added, and what it had to leave out and why."""

    mounted: dict[str, str] = field(default_factory=dict)  # command name -> plugin name
    skipped: dict[str, str] = field(default_factory=dict)  # command name -> reason


def mount_cli_plugins(manager: PluginManager, group: click.Group) -> MountResult:
    """Add every active CLIPlugin's command groups to ``group``.

    A command whose name the host (or an earlier plugin) already uses is skipped,
    never replaced: a plugin cannot shadow the host's own commands.
    """
    result = MountResult()
    for name in manager.list_plugins():
        plugin = manager.plugins[name]
        if not isinstance(plugin, CLIPlugin) or plugin.status is not PluginStatus.ACTIVE:
            continue
        try:
            commands = plugin.get_commands()
        except Exception as exc:
            result.skipped[name] = f"get_commands raised {type(exc).__name__}: {exc}"
            continue
        for command in commands:
            command_name = command.name or name
            if command_name in group.commands:
                owner = result.mounted.get(command_name, "the host")
                result.skipped[command_name] = f"{name}: name already used by {owner}"
                continue
            group.add_command(command, command_name)
            result.mounted[command_name] = name
    return result
