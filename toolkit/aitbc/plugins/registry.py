"""The spec's Registry Format: load, validate, look up, write."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .config import load_schema, schema_problem
from .errors import RegistryError


@dataclass(frozen=True)
class RegistryEntry:
    """One plugin release in a registry document."""

    name: str
    version: str
    description: str
    author: str
    license: str
    repository: str | None = None
    download_url: str | None = None
    checksum: str | None = None
    tags: tuple[str, ...] = ()
    min_aitbc_version: str | None = None
    max_aitbc_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegistryEntry:
        known = {
            "name", "version", "description", "author", "license", "repository",
            "download_url", "checksum", "tags", "compatibility",
        }  # fmt: skip
        compatibility = data.get("compatibility", {})
        return cls(
            name=data["name"],
            version=data["version"],
            description=data["description"],
            author=data["author"],
            license=data["license"],
            repository=data.get("repository"),
            download_url=data.get("download_url"),
            checksum=data.get("checksum"),
            tags=tuple(data.get("tags", ())),
            min_aitbc_version=compatibility.get("min_aitbc_version"),
            max_aitbc_version=compatibility.get("max_aitbc_version"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "author": self.author,
            "license": self.license,
        }
        for key in ("repository", "download_url", "checksum"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        data["tags"] = list(self.tags)
        compatibility = {
            key: getattr(self, key)
            for key in ("min_aitbc_version", "max_aitbc_version")
            if getattr(self, key) is not None
        }
        if compatibility:
            data["compatibility"] = compatibility
        data.update(self.extra)
        return data

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def is_compatible(self, aitbc_version: str) -> bool:
        running = Version(aitbc_version)
        if self.min_aitbc_version and running < Version(self.min_aitbc_version):
            return False
        return not (self.max_aitbc_version and running > Version(self.max_aitbc_version))

    def verify(self, artifact: str | os.PathLike[str]) -> bool:
        """True when the artifact's sha256 equals this entry's ``checksum``."""
        if not self.checksum or not self.checksum.startswith("sha256:"):
            return False
        return sha256_file(artifact) == self.checksum.removeprefix("sha256:")


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PluginRegistry:
    """Plugin releases by name and version, from documents in the spec's Registry Format."""

    def __init__(self, entries: Mapping[str, Any] | None = None) -> None:
        self._entries: dict[str, dict[Version, RegistryEntry]] = {}
        if entries is not None:
            self.load_dict(entries)

    # -- loading --------------------------------------------------------------------------
    @staticmethod
    def validate(document: object) -> None:
        """Raise :class:`RegistryError` unless ``document`` follows the Registry Format."""
        problem = schema_problem(document, load_schema("registry.schema.json"))
        if problem is not None:
            where, message = problem
            raise RegistryError(f"invalid registry at {where}: {message}")

    def load_dict(self, document: Mapping[str, Any]) -> None:
        self.validate(document)
        for raw in document["plugins"]:
            self.add(RegistryEntry.from_dict(raw))

    def load_file(self, path: str | os.PathLike[str]) -> None:
        registry_path = Path(path)
        try:
            document = json.loads(registry_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RegistryError(f"cannot read {registry_path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{registry_path}:{exc.lineno}: not JSON: {exc.msg}") from None
        self.load_dict(document)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PluginRegistry:
        registry = cls()
        registry.load_file(path)
        return registry

    def add(self, entry: RegistryEntry) -> None:
        """Add (or replace) one release."""
        try:
            version = entry.parsed_version
        except InvalidVersion:
            raise RegistryError(f"{entry.name}: {entry.version!r} is not a valid version") from None
        self._entries.setdefault(entry.name, {})[version] = entry

    # -- lookups ----------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[RegistryEntry]:
        for name in sorted(self._entries):
            yield from (self._entries[name][v] for v in sorted(self._entries[name]))

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def versions(self, name: str) -> list[str]:
        return [e.version for v, e in sorted(self._entries.get(name, {}).items())]

    def get(
        self, name: str, version: str | None = None, *, aitbc_version: str | None = None
    ) -> RegistryEntry | None:
        """The release ``version`` (any spelling PEP 440 equates), or the newest one that
        is compatible with ``aitbc_version`` when given; None when there is none."""
        releases = self._entries.get(name, {})
        if version is not None:
            try:
                entry = releases.get(Version(version))
            except InvalidVersion:
                return None
            if entry and aitbc_version and not entry.is_compatible(aitbc_version):
                return None
            return entry
        return self.find(name, "", aitbc_version=aitbc_version)

    def find(
        self, name: str, specifier: str, *, aitbc_version: str | None = None
    ) -> RegistryEntry | None:
        """The newest release of ``name`` matching ``specifier`` (``">=1.0,<2"``)."""
        try:
            wanted = SpecifierSet(specifier)
        except InvalidSpecifier:
            raise RegistryError(f"{specifier!r} is not a version specifier") from None
        releases = self._entries.get(name, {})
        for version in sorted(releases, reverse=True):
            entry = releases[version]
            if wanted.contains(version, prereleases=True) and (
                aitbc_version is None or entry.is_compatible(aitbc_version)
            ):
                return entry
        return None

    # -- writing ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"plugins": [entry.to_dict() for entry in self]}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the registry atomically (temporary file, then rename)."""
        target = Path(path)
        document = self.to_dict()
        self.validate(document)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=2)
                stream.write("\n")
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
