"""The certification policy: which checks are required and their thresholds (TOML)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aitbc.plugins.sandbox import Limits

from ..errors import ToolkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LEVELS = ("low", "medium", "high")
#: What ``[audit] ranges`` may say of a requirement that admits vulnerable releases.
AUDIT_RANGES = ("fail", "warn")
#: What ``[isolation] require`` may say: "partial" certifies wherever it runs (saying
#: what was missing); "full" certifies only a run in the jail, watched from outside.
ISOLATION_LEVELS = ("partial", "full")


@dataclass(frozen=True)
class BuildLimits:
    """``[build]``: what a wheel may declare and how large its artifacts may be."""

    allowed_entry_point_groups: tuple[str, ...] = ()  # besides aitbc.plugins
    max_file_mb: float = 20  # any one member of the wheel or the sdist, unpacked
    max_artifact_mb: float = 100  # the wheel and the sdist, each, packed and unpacked
    max_compression_ratio: float = 100  # unpacked:packed, a member of 1 MiB or more


@dataclass(frozen=True)
class Policy:
    required: tuple[str, ...]
    security_severity: str
    security_confidence: str
    nosec_needs_reason: bool
    allow_incomplete_audit: bool
    lifecycle: Limits  # the sandbox's own limits object: validated there, once
    tool_timeout_s: float
    source: str  # where it came from, for the report
    require_isolation: str = "partial"  # one of ISOLATION_LEVELS
    build: BuildLimits = field(default_factory=BuildLimits)
    test_timeout_s: float = 60.0  # [tests]: any one of the plugin's tests
    min_coverage: float = 60.0  # [tests]: % of the shipped code's lines the tests must run
    audit_ranges: str = "fail"  # [audit] ranges: one of AUDIT_RANGES

    def fingerprint(self) -> str:
        return repr(sorted((k, v) for k, v in self.__dict__.items() if k != "source"))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ToolkitError(f"cannot read policy {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ToolkitError(f"policy {path} is not valid TOML: {exc}") from None


_SHAPE: dict[str, dict[str, type | tuple[type, ...]]] = {
    "": {"required": list},
    "security": {"severity": str, "confidence": str, "nosec_needs_reason": bool},
    "audit": {"allow_incomplete": bool, "ranges": str},
    "lifecycle": {
        "step_timeout_s": (int, float),
        "total_timeout_s": (int, float),
        "memory_mb": int,
        "cpu_s": int,
    },
    "limits": {"tool_timeout_s": (int, float)},
    "isolation": {"require": str},
    "tests": {"test_timeout_s": (int, float), "min_coverage": (int, float)},
    "build": {
        "allowed_entry_point_groups": list,
        "max_file_mb": (int, float),
        "max_artifact_mb": (int, float),
        "max_compression_ratio": (int, float),
    },
}
#: No policy may let an artifact unpack to more: the checks that extract the wheel
#: (interface, security) refuse one this large whatever the policy says.
MAX_ARTIFACT_MB_CEILING = 1024


def _merge(base: dict[str, Any], override: dict[str, Any], where: Path) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in override.items():
        table = _SHAPE.get(key)
        if isinstance(value, dict) and table is not None and key:
            for sub, item in value.items():
                _check_type(f"{key}.{sub}", item, table.get(sub), where)
                merged[key][sub] = item
        else:
            _check_type(key, value, _SHAPE[""].get(key), where)
            merged[key] = value
    return merged


def _check_type(key: str, value: Any, wanted: type | tuple[type, ...] | None, where: Path) -> None:
    if wanted is None:
        raise ToolkitError(f"policy {where}: unknown setting {key!r}")
    if isinstance(value, bool) and wanted in (int, (int, float)):
        raise ToolkitError(f"policy {where}: {key} must be a number")
    if not isinstance(value, wanted):
        raise ToolkitError(f"policy {where}: {key} has the wrong type ({type(value).__name__})")


def load_policy(
    checks_dir: Path, override: Path | None = None, known_checks: Iterable[str] | None = None
) -> Policy:
    """The shipped policy, with ``override``'s settings over it.  ``known_checks``: the
    ids ``required`` may name (default: the registered checks)."""
    if known_checks is None:
        from .checks import check_ids  # the registry imports every check: only when needed

        known_checks = check_ids()
    known = tuple(known_checks)
    default_path = checks_dir / "policy.toml"
    data = _read(default_path)
    if override is not None:
        data = _merge(data, _read(override), override)
    where = override or default_path
    required = data["required"]
    unknown = [c for c in required if c not in known]
    if unknown or not all(isinstance(c, str) for c in required):
        raise ToolkitError(f"policy {where}: unknown check(s) in required: {unknown}")
    security, lifecycle = data["security"], data["lifecycle"]
    for key in ("severity", "confidence"):
        if security[key] not in LEVELS:
            raise ToolkitError(f"policy {where}: security.{key} must be one of {LEVELS}")
    try:
        limits = Limits(**{key: lifecycle[key] for key in _SHAPE["lifecycle"]})
    except ValueError as exc:  # "limit cpu_s must be a positive number, not -1"
        key = next((k for k in _SHAPE["lifecycle"] if f" {k} " in f" {exc} "), "?")
        raise ToolkitError(f"policy {where}: lifecycle.{key} must be positive") from None
    if data["limits"]["tool_timeout_s"] <= 0:
        raise ToolkitError(f"policy {where}: limits.tool_timeout_s must be positive")
    audit_ranges = data["audit"].get("ranges", "fail")
    if audit_ranges not in AUDIT_RANGES:
        raise ToolkitError(f"policy {where}: audit.ranges must be one of {AUDIT_RANGES}")
    require_isolation = data.get("isolation", {}).get("require", "partial")
    if require_isolation not in ISOLATION_LEVELS:
        raise ToolkitError(f"policy {where}: isolation.require must be one of {ISOLATION_LEVELS}")
    return Policy(
        build=_build_limits(data.get("build", {}), where),
        required=tuple(required),
        security_severity=security["severity"],
        security_confidence=security["confidence"],
        nosec_needs_reason=security["nosec_needs_reason"],
        allow_incomplete_audit=data["audit"]["allow_incomplete"],
        audit_ranges=audit_ranges,
        lifecycle=limits,
        tool_timeout_s=float(data["limits"]["tool_timeout_s"]),
        source=str(where),
        require_isolation=require_isolation,
        **_tests_settings(data.get("tests", {}), where),
    )


def _build_limits(table: dict[str, Any], where: Path) -> BuildLimits:
    defaults = BuildLimits()
    groups = table.get("allowed_entry_point_groups", [])
    if not all(isinstance(g, str) and g.strip() and "[" not in g and "]" not in g
               for g in groups):  # fmt: skip
        raise ToolkitError(
            f"policy {where}: build.allowed_entry_point_groups must be entry point group names"
        )
    sizes = {}
    for key in ("max_file_mb", "max_artifact_mb", "max_compression_ratio"):
        value = table.get(key, getattr(defaults, key))
        if not value > 0:
            raise ToolkitError(f"policy {where}: build.{key} must be positive")
        sizes[key] = float(value)
    if sizes["max_artifact_mb"] > MAX_ARTIFACT_MB_CEILING:
        raise ToolkitError(
            f"policy {where}: build.max_artifact_mb must be at most {MAX_ARTIFACT_MB_CEILING}"
        )
    return BuildLimits(tuple(g.strip() for g in groups), **sizes)


def _tests_settings(table: dict[str, Any], where: Path) -> dict[str, float]:
    timeout = table.get("test_timeout_s", Policy.test_timeout_s)
    if not timeout > 0:
        raise ToolkitError(f"policy {where}: tests.test_timeout_s must be positive")
    coverage = table.get("min_coverage", Policy.min_coverage)
    if not 0 <= coverage <= 100:
        raise ToolkitError(f"policy {where}: tests.min_coverage must be a percentage (0 to 100)")
    return {"test_timeout_s": float(timeout), "min_coverage": float(coverage)}
