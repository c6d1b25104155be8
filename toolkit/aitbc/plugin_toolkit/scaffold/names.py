"""Plugin names as the spec allows them, and the Python module names they become."""

from __future__ import annotations

import keyword
import sys

from aitbc.plugins.metadata import NAME_MAX_LENGTH, NAME_PATTERN

from ..errors import ToolkitError

#: Names a plugin package must not shadow, beyond the standard library.
RESERVED_MODULES = frozenset({"aitbc", "tests", "test", "docs", "setup", "conftest"})


def module_name_for(plugin_name: str) -> str:
    return plugin_name.lower().replace("-", "_")


def check_plugin_name(name: str) -> str:
    """Return the module name for ``name``, or raise ToolkitError saying what is wrong."""
    if len(name) > NAME_MAX_LENGTH:
        raise ToolkitError(
            f"plugin name {name[:20]!r}... is {len(name)} characters; "
            f"at most {NAME_MAX_LENGTH} are allowed"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise ToolkitError(
            f"plugin name {name!r} must match {NAME_PATTERN.pattern} "
            "(letters, digits and '-', starting with a letter)"
        )
    module = module_name_for(name)
    if keyword.iskeyword(module):
        raise ToolkitError(f"plugin name {name!r} gives module {module!r}, a Python keyword")
    if module in sys.stdlib_module_names:
        raise ToolkitError(
            f"plugin name {name!r} gives module {module!r}, which would shadow the "
            "standard-library module of that name"
        )
    if module in RESERVED_MODULES:
        raise ToolkitError(f"plugin name {name!r} gives module {module!r}, which is reserved")
    return module
