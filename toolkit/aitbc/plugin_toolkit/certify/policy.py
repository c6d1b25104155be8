"""The certification policy: which checks are required and their thresholds (TOML)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitbc.plugins.sandbox import Limits

from ..errors import ToolkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LEVELS = ("low", "medium", "high")
#: What ``[isolation] require`` may say: "partial" certifies wherever it runs (saying
#: what was missing); "full" certifies only a run in the jail, watched from outside.
ISOLATION_LEVELS = ("partial", "full")


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
    "audit": {"allow_incomplete": bool},
    "lifecycle": {
        "step_timeout_s": (int, float),
        "total_timeout_s": (int, float),
        "memory_mb": int,
        "cpu_s": int,
    },
    "limits": {"tool_timeout_s": (int, float)},
    "isolation": {"require": str},
}


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
    require_isolation = data.get("isolation", {}).get("require", "partial")
    if require_isolation not in ISOLATION_LEVELS:
        raise ToolkitError(f"policy {where}: isolation.require must be one of {ISOLATION_LEVELS}")
    return Policy(
        required=tuple(required),
        security_severity=security["severity"],
        security_confidence=security["confidence"],
        nosec_needs_reason=security["nosec_needs_reason"],
        allow_incomplete_audit=data["audit"]["allow_incomplete"],
        lifecycle=limits,
        tool_timeout_s=float(data["limits"]["tool_timeout_s"]),
        source=str(where),
        require_isolation=require_isolation,
    )
