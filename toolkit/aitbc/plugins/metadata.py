"""PluginMetadata, validated on construction, and version compatibility."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from ._version import __version__
from .errors import MetadataError
from .permissions import Permissions

NAME_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*$")
NAME_MAX_LENGTH = 64

#: The AITBC platform version this SDK implements; plugins declare compatibility against it.
AITBC_VERSION = __version__


def validate_name(name: object, field_name: str = "name") -> str:
    """Return ``name`` if it is a valid plugin name, else raise :class:`MetadataError`."""
    if not isinstance(name, str):
        raise MetadataError(field_name, f"must be a string, not {type(name).__name__}")
    if len(name) > NAME_MAX_LENGTH:
        raise MetadataError(field_name, f"must be at most {NAME_MAX_LENGTH} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise MetadataError(field_name, f"{name!r} does not match {NAME_PATTERN.pattern}")
    return name


def parse_version(value: object, field_name: str = "version") -> Version:
    """Parse a PEP 440 version (the common semantic-version forms are PEP 440 too)."""
    if not isinstance(value, str):
        raise MetadataError(field_name, f"must be a string, not {type(value).__name__}")
    try:
        return Version(value)
    except InvalidVersion:
        raise MetadataError(field_name, f"{value!r} is not a valid version") from None


def parse_dependency(value: object, field_name: str = "dependencies") -> Requirement:
    """A dependency is a plugin name, optionally with a version specifier: ``other>=1.2``."""
    if not isinstance(value, str):
        raise MetadataError(field_name, f"entries must be strings, not {type(value).__name__}")
    try:
        req = Requirement(value)
    except InvalidRequirement:
        raise MetadataError(field_name, f"{value!r} is not a plugin name[specifier]") from None
    if req.extras or req.marker or req.url:
        raise MetadataError(field_name, f"{value!r}: only a name and a version specifier")
    validate_name(req.name, field_name)
    return req


def _check_str_list(value: object, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(field_name, "must be a list of strings")
    return value


@dataclass
class PluginMetadata:
    """Plugin metadata structure"""

    name: str
    version: str
    description: str
    author: str
    license: str
    homepage: str | None = None
    repository: str | None = None
    keywords: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    min_aitbc_version: str | None = None
    max_aitbc_version: str | None = None
    supported_platforms: list[str] = field(default_factory=list)
    # Not in the spec: capabilities the plugin needs (see aitbc.plugins.permissions).
    permissions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate_name(self.name)
        parse_version(self.version)
        for text_field in ("description", "author", "license"):
            if not isinstance(getattr(self, text_field), str):
                raise MetadataError(text_field, "must be a string")
        for url_field in ("homepage", "repository"):
            if getattr(self, url_field) is not None and not isinstance(
                getattr(self, url_field), str
            ):
                raise MetadataError(url_field, "must be a string or None")
        # The spec's dataclass defaults these lists to None; keep them lists.
        self.keywords = _check_str_list(self.keywords, "keywords")
        self.dependencies = _check_str_list(self.dependencies, "dependencies")
        self.supported_platforms = _check_str_list(self.supported_platforms, "supported_platforms")
        for dep in self.dependencies:
            parse_dependency(dep)
        # Stored canonical, so that to_dict() and the registry entry carry one spelling.
        self.permissions = Permissions.parse(self.permissions).as_list()
        low = self._bound("min_aitbc_version")
        high = self._bound("max_aitbc_version")
        if low is not None and high is not None and low > high:
            raise MetadataError(
                "min_aitbc_version",
                f"{self.min_aitbc_version} is greater than max_aitbc_version "
                f"{self.max_aitbc_version}",
            )

    def _bound(self, field_name: str) -> Version | None:
        value = getattr(self, field_name)
        return None if value is None else parse_version(value, field_name)

    def permission_set(self) -> Permissions:
        """The declared permissions, parsed (validated again: the list is mutable)."""
        return Permissions.parse(self.permissions)

    def incompatibility(self, aitbc_version: str = AITBC_VERSION) -> str | None:
        """Why this plugin cannot run on ``aitbc_version``, or None when it can.

        Both bounds are inclusive, as the registry's ``compatibility`` range reads.
        """
        running = Version(aitbc_version)
        low = self._bound("min_aitbc_version")
        high = self._bound("max_aitbc_version")
        if low is not None and running < low:
            return f"requires AITBC >= {low}, running {running}"
        if high is not None and running > high:
            return f"requires AITBC <= {high}, running {running}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "author": self.author,
            "license": self.license,
            "homepage": self.homepage,
            "repository": self.repository,
            "keywords": list(self.keywords),
            "dependencies": list(self.dependencies),
            "min_aitbc_version": self.min_aitbc_version,
            "max_aitbc_version": self.max_aitbc_version,
            "supported_platforms": list(self.supported_platforms),
            "permissions": list(self.permissions),
        }
