"""The registry entry a certified plugin gets: the spec's Registry Format, exactly."""

from __future__ import annotations

from typing import Any

from aitbc.plugins import PluginRegistry

from .base import PluginInfo


def registry_entry(
    metadata: dict[str, Any], plugin: PluginInfo, wheel_sha256: str
) -> dict[str, Any]:
    """Built from get_metadata() and the wheel; validated against the shipped schema."""
    entry: dict[str, Any] = {
        "name": metadata["name"],
        "version": metadata["version"],
        "description": metadata["description"],
        "author": metadata["author"],
        "license": metadata["license"],
    }
    if metadata.get("repository") or metadata.get("homepage"):
        entry["repository"] = metadata.get("repository") or metadata["homepage"]
    entry["download_url"] = f"https://pypi.org/project/{plugin.distribution}/{plugin.version}/"
    entry["checksum"] = f"sha256:{wheel_sha256}"
    entry["tags"] = list(metadata.get("keywords") or [])
    compatibility = {
        key: metadata[key]
        for key in ("min_aitbc_version", "max_aitbc_version")
        if metadata.get(key)
    }
    if compatibility:
        entry["compatibility"] = compatibility
    # Not in the spec's example; the schema admits it, and an empty list says nothing.
    if metadata.get("permissions"):
        entry["permissions"] = list(metadata["permissions"])
    PluginRegistry.validate({"plugins": [entry]})
    return entry
