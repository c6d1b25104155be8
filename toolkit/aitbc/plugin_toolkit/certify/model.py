"""The certification report: plain, frozen data that every writer reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class CheckStatus(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the check could not run (tool crashed, timed out, unparsable output)
    SKIPPED = "skipped"  # not required by the policy, or nothing to check
    INCOMPLETE = (
        "incomplete"  # ran, but could not check everything (e.g. an unauditable dependency)
    )


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    """One problem.  ``file`` is relative to the project root; ``line`` is 1-based."""

    rule: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.file,
            "line": self.line,
        }


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: CheckStatus
    duration_s: float = 0.0
    findings: tuple[Finding, ...] = ()
    summary: str = ""  # one line a person reads first
    cached: bool = False
    # INCOMPLETE, and the user accepted that (--allow-incomplete-audit, the policy):
    # it then counts as a pass.
    allowed: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # check-specific plain data

    @property
    def passes(self) -> bool:
        """Counts as a pass for the verdict: passed, or incomplete and allowed."""
        return self.status is CheckStatus.PASSED or (
            self.status is CheckStatus.INCOMPLETE and self.allowed
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "cached": self.cached,
            "allowed": self.allowed,
            "findings": [f.as_dict() for f in self.findings],
            "details": self.details,
        }


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CertificationReport:
    certified: bool
    plugin: dict[str, Any]  # name, version, kind, module, entry_point, project
    checks: tuple[CheckResult, ...]
    artifacts: tuple[Artifact, ...] = ()
    registry_entry: dict[str, Any] | None = None
    toolkit: dict[str, Any] = field(default_factory=dict)  # {"version", "tools": {name: ver}}
    reasons: tuple[str, ...] = ()  # why not certified, one line each
    # How plugin code was contained: {"level": "full"|"partial", "mechanism", "contained":
    # [phases in the jail], "missing": [what was not contained, in words]}.
    isolation: dict[str, Any] = field(default_factory=dict)
    # What plugin code did in each phase, seen from outside: {phase: {"network": [...],
    # "programs": [...], "writes": [...], "processes_left": [...], "notes": [...]}}.
    behaviour: dict[str, Any] = field(default_factory=dict)
    # A partial run (--only): these checks alone ran.  It may pass; it never certifies.
    only: tuple[str, ...] = ()
    # The run's wall time, build included: its checks run in parallel, so their durations'
    # sum is not how long it took.
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """The checks that ran met the policy: ``certified`` for a whole run; for a
        partial one, no reason against it."""
        return self.certified or (bool(self.only) and not self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "certified": self.certified and not self.only,
            "passed": self.passed,
            "only": list(self.only),
            "plugin": self.plugin,
            "checks": [c.as_dict() for c in self.checks],
            "artifacts": [a.as_dict() for a in self.artifacts],
            "registry_entry": self.registry_entry,
            "toolkit": self.toolkit,
            "reasons": list(self.reasons),
            "isolation": self.isolation,
            "behaviour": self.behaviour,
            "duration_s": round(self.duration_s, 3),
        }


def check_result_from_dict(data: dict[str, Any]) -> CheckResult:
    """The inverse of ``CheckResult.as_dict`` (for the result cache)."""
    return CheckResult(
        id=data["id"],
        status=CheckStatus(data["status"]),
        duration_s=float(data["duration_s"]),
        findings=tuple(
            Finding(f["rule"], Severity(f["severity"]), f["message"], f["file"], f["line"])
            for f in data["findings"]
        ),
        summary=data["summary"],
        cached=bool(data.get("cached", False)),
        allowed=bool(data.get("allowed", False)),
        details=dict(data.get("details", {})),
    )
