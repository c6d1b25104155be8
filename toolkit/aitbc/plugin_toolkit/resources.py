"""Where the shipped data lives: templates/ and checks/ travel inside the wheel
(under aitbc/plugin_toolkit/_data) and are found through importlib.resources, so
an installed aitbc-plugin works from any directory, offline.  In a source
checkout (an editable install) they are the repository's own folders."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: What `new` records as the template source in .copier-answers.yml: a name, not a
#: path, so the project stays updatable when the toolkit is reinstalled elsewhere.
BUILTIN_TEMPLATE_SOURCE = "aitbc-plugin:builtin"
BUNDLE_NAME = "plugin.bundle"


def data_dir(name: str) -> Path:
    shipped = Path(str(resources.files("aitbc.plugin_toolkit"))) / "_data" / name
    if shipped.is_dir():
        return shipped
    checkout = Path(__file__).resolve().parents[3] / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"aitbc-plugin's {name}/ is missing from this installation")


def builtin_bundle() -> Path:
    """The git bundle holding every released version of the plugin template."""
    return data_dir("templates") / BUNDLE_NAME


def builtin_template_dir() -> Path:
    """The plugin template's working copy (newer than the bundle only during development)."""
    return data_dir("templates") / "plugin"
