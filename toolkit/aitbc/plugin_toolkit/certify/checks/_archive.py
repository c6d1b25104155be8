"""What the wheel and the sdist checks share: member paths that would land outside the
folder they are unpacked into, the size limits, and a cap on repeated findings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..model import Finding, Severity
from ..policy import BuildLimits

MIB = 1024 * 1024
#: Below this unpacked size a member's compression ratio is not judged: a small file
#: of repeated bytes packs 1000:1 and harms no one.
RATIO_FLOOR = MIB
#: Findings of one rule after which the rest are counted, not listed: a hostile
#: archive of 100 000 members must not make a report of 100 000 lines.
MAX_PER_RULE = 20


@dataclass(frozen=True)
class SizeLimits:
    max_file: int  # bytes, any one member unpacked
    max_artifact: int  # bytes, the archive packed and its members unpacked
    max_ratio: float

    @classmethod
    def from_policy(cls, build: BuildLimits) -> SizeLimits:
        return cls(
            int(min(build.max_file_mb, 2**40) * MIB),
            int(build.max_artifact_mb * MIB),
            build.max_compression_ratio,
        )


def unsafe_reason(name: str) -> str | None:
    """Why unpacking a member called ``name`` could write outside the target folder
    (on POSIX or on Windows), or None when it cannot."""
    if not name:
        return "an empty name"
    if name.startswith("/"):
        return "an absolute path"
    if "\\" in name:
        return "a backslash (a Windows path separator)"
    if ":" in name:
        return "a colon (a drive letter or a data stream on Windows)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    if ".." in name.split("/"):
        return "a '..' component"
    return None


def mib(size: float) -> str:
    return f"{size / MIB:.1f} MiB"


def capped(findings: Iterable[Finding]) -> list[Finding]:
    """At most MAX_PER_RULE findings of each rule, then one that counts the rest."""
    kept: list[Finding] = []
    left: dict[str, int] = {}
    seen: dict[str, int] = {}
    for finding in findings:
        seen[finding.rule] = seen.get(finding.rule, 0) + 1
        if seen[finding.rule] <= MAX_PER_RULE:
            kept.append(finding)
        else:
            left[finding.rule] = left.get(finding.rule, 0) + 1
    for rule, count in left.items():
        kept.append(Finding(rule, Severity.HIGH, f"... and {count} more like the above"))
    return kept
