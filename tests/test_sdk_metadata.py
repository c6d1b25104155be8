"""PluginMetadata and PluginStatus: the spec's data, validated on construction."""

from __future__ import annotations

from typing import Any

import pytest
from aitbc.plugins import AITBC_VERSION, MetadataError, PluginMetadata, PluginStatus
from aitbc.plugins.metadata import NAME_PATTERN
from hypothesis import given
from hypothesis import strategies as st

VALID: dict[str, Any] = dict(
    name="my-plugin", version="1.0.0", description="d", author="a", license="MIT"
)


def test_status_has_the_spec_values() -> None:
    assert [s.value for s in PluginStatus] == [
        "unloaded", "loading", "loaded", "active", "inactive", "error", "unloading",
    ]  # fmt: skip


def test_list_fields_default_to_empty_lists_not_none() -> None:
    meta = PluginMetadata(**VALID)
    assert meta.keywords == [] and meta.dependencies == [] and meta.supported_platforms == []
    assert meta.homepage is None and meta.min_aitbc_version is None
    other = PluginMetadata(**VALID)
    other.keywords.append("x")
    assert meta.keywords == []  # not one shared list


def test_explicit_none_lists_become_empty_lists() -> None:
    meta = PluginMetadata(**VALID, keywords=None, dependencies=None)  # type: ignore[arg-type]
    assert meta.keywords == [] and meta.dependencies == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "1plugin"),
        ("name", "my_plugin"),
        ("name", "-x"),
        ("name", ""),
        ("name", "a" * 65),
        ("name", 42),
        ("version", "one"),
        ("version", ""),
        ("version", "1.0.0.beta-x!"),
        ("min_aitbc_version", "latest"),
        ("max_aitbc_version", "2.x"),
        ("keywords", "cli"),
        ("keywords", [1, 2]),
        ("dependencies", ["Not A Name"]),
        ("dependencies", ["other[extra]>=1"]),
        ("description", None),
    ],
)
def test_invalid_metadata_names_the_field(field: str, value: object) -> None:
    with pytest.raises(MetadataError) as info:
        PluginMetadata(**{**VALID, field: value})
    assert info.value.field == field
    assert field in str(info.value)


def test_min_greater_than_max_is_refused() -> None:
    with pytest.raises(MetadataError, match="min_aitbc_version"):
        PluginMetadata(**VALID, min_aitbc_version="2.0.0", max_aitbc_version="1.0.0")


def test_name_of_64_characters_passes() -> None:
    assert PluginMetadata(**{**VALID, "name": "a" * 64}).name == "a" * 64


@pytest.mark.parametrize(
    "version", ["1.0.0", "0.1.0", "1.2.3-rc.1", "1.2.3-alpha", "2.0.0+build.7", "1.0"]
)
def test_semantic_and_pep440_versions_pass(version: str) -> None:
    assert PluginMetadata(**{**VALID, "version": version}).version == version


def test_compatibility_with_running_sdk() -> None:
    ok = PluginMetadata(**VALID, min_aitbc_version="1.0.0", max_aitbc_version="2.0.0")
    assert ok.incompatibility("1.5") is None
    assert ok.incompatibility(AITBC_VERSION) is None
    assert "requires AITBC >= 1.0.0" in (ok.incompatibility("0.9") or "")
    assert "requires AITBC <= 2.0.0" in (ok.incompatibility("2.1") or "")


def test_dependency_with_specifier_passes() -> None:
    meta = PluginMetadata(**VALID, dependencies=["other-plugin>=1.2,<2"])
    assert meta.dependencies == ["other-plugin>=1.2,<2"]


# -- property-based: bad input raises only the documented exception -------------------
names = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9-]{0,63}\Z")
semver = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}{pre}",
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["", "-alpha", "-beta.2", "-rc.1", "+build.5", "-rc.3+exp.1"]),
)


@given(name=names, version=semver)
def test_any_valid_name_and_semver_is_accepted(name: str, version: str) -> None:
    meta = PluginMetadata(**{**VALID, "name": name, "version": version})
    assert meta.name == name


@given(
    name=st.one_of(st.text(max_size=80), st.integers(), st.none()),
    version=st.one_of(st.text(max_size=20), st.integers()),
    low=st.one_of(st.none(), st.text(max_size=10)),
    high=st.one_of(st.none(), st.text(max_size=10)),
    keywords=st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=5), st.integers()))),
    deps=st.lists(st.text(max_size=20), max_size=3),
)
def test_arbitrary_input_raises_only_metadata_error(
    name: object, version: object, low: object, high: object, keywords: object, deps: list[str]
) -> None:
    try:
        meta = PluginMetadata(
            name=name,  # type: ignore[arg-type]
            version=version,  # type: ignore[arg-type]
            description="d",
            author="a",
            license="MIT",
            keywords=keywords,  # type: ignore[arg-type]
            dependencies=deps,
            min_aitbc_version=low,  # type: ignore[arg-type]
            max_aitbc_version=high,  # type: ignore[arg-type]
        )
    except MetadataError as exc:
        assert exc.field in {"name", "version", "min_aitbc_version", "max_aitbc_version",
                             "keywords", "dependencies"}  # fmt: skip
    else:
        assert isinstance(meta.name, str) and len(meta.name) <= 64
        assert NAME_PATTERN.fullmatch(meta.name)
