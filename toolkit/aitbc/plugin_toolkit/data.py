"""Where the shipped data lives: templates/ and checks/ travel inside the wheel
(under aitbc/plugin_toolkit/_data) and are found through importlib.resources, so
an installed aitbc-plugin works from any directory, offline.  In a source
checkout (an editable install) they are the repository's own folders."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir(name: str) -> Path:
    shipped = Path(str(resources.files("aitbc.plugin_toolkit"))) / "_data" / name
    if shipped.is_dir():
        return shipped
    checkout = Path(__file__).resolve().parents[3] / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"aitbc-plugin's {name}/ is missing from this installation")
