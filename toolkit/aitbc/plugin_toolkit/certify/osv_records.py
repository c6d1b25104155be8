"""OSV records: each checked as read (:func:`parse_record`), matched against a release
(:func:`is_affected`) and given a severity.

A record that cannot be evaluated raises :class:`OsvRecordError`, nothing else, so an
index can leave it out and remember why (:mod:`.osv`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .model import Severity

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
PIP_AUDIT_TIME = "%Y-%m-%dT%H:%M:%SZ"
_ZERO = Version("0.dev0")  # introduced "0": before every release, sorted first


class OsvRecordError(ValueError):
    """A record (or record file) that is not a usable OSV record for PyPI."""


# The base loader resolves no implicit types: every scalar is a string, so an unquoted
# ``fixed: 3.10`` stays version 3.10 (not the float 3.1), timestamps stay RFC 3339 text
# and the record is JSON-safe as read.  It is also the fastest loader.  Only YAML's
# null spellings are turned back into None (a withdrawn: null is not a withdrawal).
_Loader = yaml.CBaseLoader if hasattr(yaml, "CBaseLoader") else yaml.BaseLoader
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def _nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None if value in _NULLS else value


@dataclass(frozen=True)
class Affected:
    package: str  # canonical PyPI name
    ranges: tuple[tuple[tuple[str, Version | None], ...], ...]  # (kind, version); None = "0"
    versions: tuple[str, ...]  # explicit affected releases, compared when queried


@dataclass(frozen=True)
class OsvRecord:
    id: str
    aliases: tuple[str, ...]
    affected: tuple[Affected, ...]
    severity: Severity | None
    withdrawn: bool
    served: dict[str, Any] = field(repr=False, compare=False)  # what the server sends
    source: Path | None = None

    @property
    def packages(self) -> frozenset[str]:
        return frozenset(a.package for a in self.affected)


def _version(text: object, where: str) -> Version:
    if not isinstance(text, str):
        raise OsvRecordError(f"{where}: version {text!r} is not a string")
    try:
        return Version(text)
    except InvalidVersion:
        raise OsvRecordError(f"{where}: {text!r} is not a PEP 440 version") from None


def _strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OsvRecordError(f"{where} must be a list of strings")
    return value


def _parse_affected(entry: object, rid: str) -> Affected | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
        raise OsvRecordError(f"{rid}: an affected entry has no package")
    package = entry["package"]
    name, ecosystem = package.get("name"), package.get("ecosystem")
    if not isinstance(name, str) or not isinstance(ecosystem, str):
        raise OsvRecordError(f"{rid}: affected package needs a name and an ecosystem")
    if ecosystem != "PyPI":
        return None
    ranges = []
    if not isinstance(entry.get("ranges") or [], list):
        raise OsvRecordError(f"{rid}: ranges must be a list")
    for item in entry.get("ranges") or []:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise OsvRecordError(f"{rid}: a range has no type")
        events = item.get("events")
        if not isinstance(events, list) or not events:
            raise OsvRecordError(f"{rid}: a range has no events")
        if item["type"] == "GIT":  # commits: nothing to compare a release with
            continue
        parsed: list[tuple[str, Version | None]] = []
        for event in events:
            if not isinstance(event, dict) or len(event) != 1:
                raise OsvRecordError(f"{rid}: an event must have exactly one key")
            ((kind, value),) = event.items()
            if kind not in EVENT_KINDS:
                raise OsvRecordError(f"{rid}: unknown event {kind!r}")
            zero = kind == "introduced" and value == "0"
            parsed.append((kind, None if zero else _version(value, rid)))
        ranges.append(tuple(parsed))
    versions = _strings(entry.get("versions"), f"{rid}: versions")
    return Affected(canonicalize_name(name), tuple(ranges), tuple(versions))


def parse_record(data: object, source: Path | None = None) -> OsvRecord:
    """Check one decoded OSV record; raises :class:`OsvRecordError`, nothing else."""
    if not isinstance(data, dict):
        raise OsvRecordError("an OSV record must be a mapping")
    rid = data.get("id")
    if not isinstance(rid, str) or not rid:
        raise OsvRecordError("an OSV record needs an id")
    schema = data.get("schema_version") or "1.0.0"
    if _version(schema, f"{rid}: schema_version").major != 1:
        raise OsvRecordError(f"{rid}: unsupported schema_version {schema}")
    for key in ("summary", "details", "withdrawn", "published", "modified"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise OsvRecordError(f"{rid}: {key} must be a string")
    aliases = _strings(data.get("aliases"), f"{rid}: aliases")
    entries = data.get("affected")
    if not isinstance(entries, list):
        raise OsvRecordError(f"{rid}: no affected list")
    affected = tuple(a for a in (_parse_affected(e, rid) for e in entries) if a is not None)
    served = {**data, "affected": [_served_affected(e) for e in entries if _is_pypi(e)]}
    published = _rfc3339(data.get("published"))  # pip-audit's strptime takes two shapes
    served.pop("published", None)
    if published is not None:
        served["published"] = published
    try:
        json.dumps(served)
    except (TypeError, ValueError, RecursionError):
        raise OsvRecordError(f"{rid}: not JSON-compatible") from None
    withdrawn = data.get("withdrawn") is not None
    return OsvRecord(
        rid, tuple(aliases), affected, record_severity(data), withdrawn, served, source
    )


def _is_pypi(entry: dict[str, Any]) -> bool:
    return bool(entry["package"]["ecosystem"] == "PyPI")


def _served_affected(entry: dict[str, Any]) -> dict[str, Any]:
    # pip-audit reads fixed versions only when the name equals the canonical one
    package = {**entry["package"], "name": canonicalize_name(entry["package"]["name"])}
    return {**entry, "package": package}


def _rfc3339(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        shown = moment.strftime(PIP_AUDIT_TIME)
        datetime.strptime(shown, PIP_AUDIT_TIME)  # what pip-audit will do with it
    except (ValueError, OverflowError):
        return None  # informational only: left out rather than crash pip-audit
    return shown


def _in_range(version: Version, events: tuple[tuple[str, Version | None], ...]) -> bool:
    """The OSV evaluation: walk the events in version order ("0" first)."""
    order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
    vulnerable = False

    def key(event: tuple[str, Version | None]) -> tuple[Version, int]:
        return (_ZERO if event[1] is None else event[1], order[event[0]])

    for kind, at in sorted(events, key=key):
        if kind == "introduced" and (at is None or version >= at):
            vulnerable = True
        elif (kind == "fixed" and at is not None and version >= at) or (
            kind == "last_affected" and at is not None and version > at
        ):
            vulnerable = False
    return vulnerable


def _same(version: Version | None, text: str) -> bool:
    try:
        return version is not None and version == Version(text)
    except InvalidVersion:  # an odd entry in a versions list: compared as text only
        return False


def is_affected(record: OsvRecord, package: str, version: str) -> bool:
    """Whether ``package`` at ``version`` is affected; never raises for a parsed record."""
    name = canonicalize_name(package)
    try:
        parsed: Version | None = Version(version)
    except InvalidVersion:
        parsed = None
    for affected in record.affected:
        if affected.package != name:
            continue
        if version in affected.versions or any(_same(parsed, v) for v in affected.versions):
            return True
        if parsed is not None and any(_in_range(parsed, events) for events in affected.ranges):
            return True
    return False


# -- severity: an explicit level wins, else the CVSS v3 base score ---------------------
# fmt: off
_LEVELS = {"LOW": Severity.LOW, "MODERATE": Severity.MEDIUM, "MEDIUM": Severity.MEDIUM,
           "HIGH": Severity.HIGH, "CRITICAL": Severity.CRITICAL}
_CVSS = {"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}, "AC": {"L": 0.77, "H": 0.44},
         "UI": {"N": 0.85, "R": 0.62}, "CIA": {"H": 0.56, "L": 0.22, "N": 0.0}}
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
# fmt: on


def cvss3_score(vector: str) -> float:
    """The CVSS v3.x base score of a vector; raises KeyError/ValueError if malformed."""
    parts = dict(p.split(":", 1) for p in vector.split("/")[1:])
    scope = parts["S"]
    iss = 1 - math.prod(1 - _CVSS["CIA"][parts[k]] for k in "CIA")
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploit = 8.22 * _CVSS["AV"][parts["AV"]] * _CVSS["AC"][parts["AC"]]
    exploit *= _PR[scope][parts["PR"]] * _CVSS["UI"][parts["UI"]]
    if impact <= 0:
        return 0.0
    total = impact + exploit if scope == "U" else 1.08 * (impact + exploit)
    return math.ceil(min(total, 10.0) * 10 - 1e-9) / 10


def record_severity(data: dict[str, Any]) -> Severity | None:
    specific = data.get("database_specific")
    if isinstance(specific, dict) and str(specific.get("severity", "")).upper() in _LEVELS:
        return _LEVELS[str(specific["severity"]).upper()]
    scores = data.get("severity")
    for item in scores if isinstance(scores, list) else []:
        if isinstance(item, dict) and item.get("type") == "CVSS_V3":
            try:
                score = cvss3_score(str(item.get("score")))
            except (KeyError, ValueError):
                continue
            if score >= 9.0:
                return Severity.CRITICAL
            if score >= 7.0:
                return Severity.HIGH
            return Severity.MEDIUM if score >= 4.0 else Severity.LOW
    return None


def load_record_file(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        return _nulls(yaml.load(text, Loader=_Loader))  # noqa: S506 - base loader: no objects
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        raise OsvRecordError(f"cannot read: {exc}") from None
