"""PluginRegistry: the spec's Registry Format."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import PluginManager, PluginRegistry, RegistryEntry, RegistryError
from hypothesis import given
from hypothesis import strategies as st

SPEC_DOCUMENT = {
    "plugins": [
        {
            "name": "agent-cli",
            "version": "1.0.0",
            "description": "Agent management CLI commands",
            "author": "AITBC Team",
            "license": "MIT",
            "repository": "https://github.com/aitbc/agent-cli-plugin",
            "download_url": "https://pypi.org/project/aitbc-agent-cli/",
            "checksum": "sha256:" + "a" * 64,
            "tags": ["cli", "agent", "management"],
            "compatibility": {"min_aitbc_version": "1.0.0", "max_aitbc_version": "2.0.0"},
        }
    ]
}


def entry(version: str, **extra: object) -> dict[str, Any]:
    return {**SPEC_DOCUMENT["plugins"][0], "version": version, **extra}


def test_spec_document_loads_and_round_trips() -> None:
    registry = PluginRegistry(SPEC_DOCUMENT)
    found = registry.get("agent-cli")
    assert found is not None and found.version == "1.0.0"
    assert found.tags == ("cli", "agent", "management")
    assert found.min_aitbc_version == "1.0.0"
    assert registry.to_dict() == SPEC_DOCUMENT


def test_lookup_by_name_and_version() -> None:
    registry = PluginRegistry({"plugins": [entry("1.0.0"), entry("1.2.0"), entry("2.0.0b1")]})
    assert registry.versions("agent-cli") == ["1.0.0", "1.2.0", "2.0.0b1"]
    assert registry.get("agent-cli", "1.2") is not None  # PEP 440 equal spelling
    assert registry.get("agent-cli", "1.2.0").version == "1.2.0"  # type: ignore[union-attr]
    assert registry.get("agent-cli").version == "2.0.0b1"  # type: ignore[union-attr]
    assert registry.find("agent-cli", "<2").version == "1.2.0"  # type: ignore[union-attr]
    assert registry.get("agent-cli", "9.9") is None and registry.get("nope") is None
    assert "agent-cli" in registry and len(registry) == 3


def test_compatibility_filter() -> None:
    old = entry("0.9.0", compatibility={"max_aitbc_version": "0.9"})
    registry = PluginRegistry({"plugins": [old, entry("1.0.0")]})
    assert registry.get("agent-cli", aitbc_version="0.9").version == "0.9.0"  # type: ignore[union-attr]
    assert registry.get("agent-cli", "0.9.0", aitbc_version="1.0") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "'plugins' is a required property"),
        ({"plugins": {}}, "is not of type 'array'"),
        ({"plugins": [{"name": "x"}]}, "plugins.0"),
        ({"plugins": [entry("1.0", name="bad_name")]}, "plugins.0.name"),
        ({"plugins": [entry("1.0", checksum="md5:abc")]}, "plugins.0.checksum"),
        ({"plugins": [entry("not a version")]}, "not a valid version"),
        ({"plugins": [entry("1.0", tags="cli")]}, "plugins.0.tags"),
    ],
)
def test_invalid_documents_are_refused_with_the_place(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(RegistryError) as info:
        PluginRegistry(document)
    assert message in str(info.value)


def test_file_load_save_is_atomic_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(SPEC_DOCUMENT))
    registry = PluginRegistry.from_file(path)
    registry.add(RegistryEntry.from_dict(entry("1.1.0")))
    registry.save(path)
    assert PluginRegistry.from_file(path).versions("agent-cli") == ["1.0.0", "1.1.0"]
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]  # no temp file left
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(RegistryError, match=r"broken\.json:1: not JSON"):
        PluginRegistry.from_file(tmp_path / "broken.json")
    with pytest.raises(RegistryError, match="cannot read"):
        PluginRegistry.from_file(tmp_path / "missing.json")


def test_checksum_verification(tmp_path: Path) -> None:
    artifact = tmp_path / "plugin.whl"
    artifact.write_bytes(b"wheel bytes")
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    good = RegistryEntry.from_dict(entry("1.0", checksum=f"sha256:{digest}"))
    bad = RegistryEntry.from_dict(entry("1.0", checksum="sha256:" + "0" * 64))
    assert good.verify(artifact) and not bad.verify(artifact)


def test_manager_plugin_registry_comes_from_config(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(SPEC_DOCUMENT))
    manager = PluginManager({"registry": str(path)})
    assert manager.plugin_registry.get("agent-cli") is not None
    assert len(PluginManager({}).plugin_registry) == 0


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=15,
    )
)
def test_arbitrary_documents_raise_only_registry_error(document: object) -> None:
    data = {"plugins": [document]} if isinstance(document, dict) else document
    with contextlib.suppress(RegistryError):
        PluginRegistry(data)  # type: ignore[arg-type]  # any JSON value, on purpose
