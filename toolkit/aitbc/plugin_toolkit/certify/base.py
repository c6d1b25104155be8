"""The two small interfaces of certification: a check and a report writer.

Adding a check is one new module in certify/checks/ and one line in
certify/checks/__init__.py; adding a format is one module in certify/writers/ and one
line in certify/writers/__init__.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from .model import CertificationReport, CheckResult, CheckStatus, Finding, Severity

if TYPE_CHECKING:
    from .policy import Policy


@dataclass(frozen=True)
class PluginInfo:
    """What the built wheel says the plugin is."""

    name: str  # the plugin (entry point) name
    version: str
    distribution: str  # the distribution name in the wheel's metadata
    module: str  # the import package
    entry_point: str  # "module.plugin:Class"
    kind: str | None = None  # base | cli | blockchain | ai, once known


@dataclass
class CheckContext:
    """Everything a check may read.  Checks must not write outside ``scratch``."""

    project: Path  # the user's project: never written to
    workdir: Path  # a copy of the project; checks read this one
    scratch: Path  # per-run scratch space; a check makes its own subfolder
    policy: Policy
    wheel: Path | None = None
    sdist: Path | None = None
    build_error: str | None = None
    plugin: PluginInfo | None = None
    vuln_db: Path | None = None
    allow_incomplete_audit: bool = False
    checks_dir: Path = field(default_factory=Path)  # the shipped checks/ folder
    # The isolated environment with the SDK and the plugin's wheel installed, created on
    # first use and shared by the checks that need it (lifecycle, tests).
    plugin_environment: Callable[[], PluginEnvironment] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PluginEnvironment(Protocol):
    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        ...

    @property
    def site_packages(self) -> Path: ...


class Check(Protocol):
    """``id`` is part of the public contract (report, policy, SARIF rules)."""

    id: str
    title: str
    #: True when the check needs the built wheel (it reports ERROR without one).
    needs_wheel: bool

    def run(self, context: CheckContext) -> CheckResult: ...

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        """Files whose content decides the result (for the cache); None: never cache."""
        ...


class ReportWriter(Protocol):
    format: str
    suffix: str  # file suffix for --report-dir, e.g. ".sarif"

    def write(self, report: CertificationReport, stream: IO[str]) -> None: ...


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    began = time.perf_counter()
    yield lambda: time.perf_counter() - began


def result(
    check_id: str,
    findings: list[Finding] | tuple[Finding, ...],
    duration: float,
    summary: str,
    *,
    status: CheckStatus | None = None,
    **details: Any,
) -> CheckResult:
    """A result whose status follows from its findings unless given."""
    chosen = status or (CheckStatus.FAILED if findings else CheckStatus.PASSED)
    return CheckResult(check_id, chosen, duration, tuple(findings), summary, details=details)


def error_result(check_id: str, duration: float, reason: str, **details: Any) -> CheckResult:
    """The check could not decide.  Fail closed: ERROR is never certified."""
    finding = Finding(f"{check_id}.error", Severity.HIGH, reason)
    return CheckResult(check_id, CheckStatus.ERROR, duration, (finding,), reason, details=details)
