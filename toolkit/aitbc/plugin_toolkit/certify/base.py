"""The two small interfaces of certification, a check and a report writer, and what a
check is given (:class:`CheckContext`) and may raise (:class:`CheckError`).

A check describes itself, as repo-review's checks do: its ``id``, its ``title``, its
class docstring (the user-facing explanation, shown as SARIF rule help and required,
verbatim, in checks/README.md), whether its findings are security alerts and whether
it needs the built wheel.  The policy, report titles, SARIF rules and documentation
are all derived from the registered checks, so adding a check is one new module in
certify/checks/ and one line in certify/checks/__init__.py; adding a format is one
module in certify/writers/ and one line in certify/writers/__init__.py.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .model import CertificationReport, CheckResult, CheckStatus, Finding

if TYPE_CHECKING:
    from aitbc.plugins.sandbox.trace import Behaviour

    from .policy import Policy
    from .probes import MetadataProbe

T = TypeVar("T")
#: Where `certify --vuln-db` takes its default from: a directory of OSV records.
VULN_DB_VARIABLE = "AITBC_VULN_DB"


class CheckError(Exception):
    """A check cannot decide (a tool crashed, timed out, printed nonsense, a setup step
    failed).  Raised by a check; the runner alone turns it into an ``error`` result,
    which is never certified.  ``details`` are kept in the result for the author."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class Lazy(Generic[T]):
    """A value computed on first use, once, by whichever thread asks first.  A failure
    is remembered and raised again, so every check that needs the value sees the same
    cause (and the expensive step is not retried by each of them)."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute: Callable[[], T] | None = compute
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if self._compute is not None:
                compute, self._compute = self._compute, None
                try:
                    self._value = compute()
                except Exception as exc:
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._value  # type: ignore[return-value]  # set when there is no error

    def peek(self) -> T | None:
        """The value when it has been computed (and worked), else None; never computes."""
        with self._lock:
            return self._value if self._compute is None and self._error is None else None


@dataclass(frozen=True)
class PluginInfo:
    """What the built wheel says the plugin is."""

    name: str  # the plugin (entry point) name
    version: str
    distribution: str  # the distribution name in the wheel's metadata
    module: str  # the import package
    entry_point: str  # "module.plugin:Class"
    kind: str | None = None  # base | cli | blockchain | ai, once known


class PluginEnvironment(Protocol):
    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        ...

    @property
    def site_packages(self) -> Path: ...


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may read.  Checks must not write outside ``scratch``.

    What one check computes for others is a :class:`Lazy` member: made on first use,
    once per run, shared by every check (the runner gives each check a copy of this
    context with its own ``scratch``, and the same lazy members)."""

    project: Path  # the user's project: never written to
    workdir: Path  # a copy of the project; checks read this one
    scratch: Path  # per-check scratch space
    policy: Policy
    checks_dir: Path  # the shipped checks/ folder
    wheel: Path | None = None
    sdist: Path | None = None
    build_error: str | None = None  # why the project did not build
    # What the build of the project did outside its scratch folder (None: not watched,
    # or the build was reused from the cache, which keeps only builds that did nothing).
    build_behaviour: Behaviour | None = None
    plugin: PluginInfo | None = None
    plugin_problem: str | None = None  # why the wheel names no plugin
    vuln_db: Path | None = None  # `--vuln-db DIR`, default $AITBC_VULN_DB
    osv_url: str | None = None  # an OSV service to ask instead of PyPI (a mirror, tests)
    allow_incomplete_audit: bool = False
    # The isolated environment with the SDK and the plugin's wheel installed, shared by
    # the checks that run plugin code (metadata, interface, audit, lifecycle, tests).
    plugin_environment: Lazy[PluginEnvironment] | None = None
    # What the plugin says about itself (get_metadata(), its schema, its kind), asked
    # once in the plugin environment; the metadata check and the registry entry read it.
    metadata_probe: Lazy[MetadataProbe] | None = None

    def environment(self) -> PluginEnvironment:
        """The plugin environment; a :class:`CheckError` when there is none."""
        if self.plugin_environment is None:
            raise CheckError("no plugin environment to run the plugin in")
        try:
            return self.plugin_environment.get()
        except CheckError:
            raise
        except Exception as exc:  # the plugin's dependencies are someone else's code
            raise CheckError(
                f"the plugin environment could not be made: {type(exc).__name__}: {exc}"
            ) from exc

    def built_plugin(self) -> tuple[Path, PluginInfo]:
        """The wheel and what it names; the runner never runs a wheel check without."""
        if self.wheel is None or self.plugin is None:
            raise CheckError("no plugin wheel to check")
        return self.wheel, self.plugin


class Check(Protocol):
    """A certification check.  Its class docstring is its user-facing explanation.

    ``id`` is part of the public contract (report, policy, SARIF rule ids).  ``run``
    returns a verdict or raises :class:`CheckError` when it cannot decide."""

    id: str
    title: str
    #: Its findings are security alerts (SARIF ``security-severity``, code scanning).
    security: bool
    #: It needs the built wheel: without one the runner reports an error, unrun.
    needs_wheel: bool
    #: It runs in (or reads) the plugin environment: the checks that do not are started
    #: first, while the environment is made.
    uses_environment: bool
    #: Seconds it takes on a small plugin: the runner's guess at its place in the
    #: schedule (longest first) until a run on this machine has timed it.
    typical_s: float

    def run(self, context: CheckContext) -> CheckResult: ...

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        """Files whose content decides the result (for the cache); None: never cache."""
        ...


@dataclass(frozen=True)
class CheckInfo:
    """What is said about a check, wherever it is said (reports, SARIF, docs)."""

    id: str
    title: str
    explanation: str
    security: bool
    needs_wheel: bool


def describe(check: Check) -> CheckInfo:
    """The check's own description; its docstring is the explanation."""
    explanation = inspect.cleandoc(type(check).__doc__ or "").strip()
    if not explanation:
        raise TypeError(f"check {check.id!r} has no docstring to explain it")
    return CheckInfo(check.id, check.title, explanation, check.security, check.needs_wheel)


class ReportWriter(Protocol):
    """A report format.  Its name is its line in writers/__init__.py."""

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
    allowed: bool = False,
    **details: Any,
) -> CheckResult:
    """A result whose status follows from its findings unless given."""
    chosen = status or (CheckStatus.FAILED if findings else CheckStatus.PASSED)
    return CheckResult(
        check_id, chosen, duration, tuple(findings), summary, allowed=allowed, details=details
    )
