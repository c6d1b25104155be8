"""Runs a certification: copy, build, checks in parallel, one report."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from aitbc.plugins import __version__
from aitbc.plugins.registry import sha256_file
from aitbc.plugins.sandbox.jail import isolation

from ..data import data_dir
from ..errors import ToolkitError
from ..files import write_atomic
from . import checks as registry
from .base import Check, CheckContext, CheckError, Lazy, PluginEnvironment
from .behaviour import PHASE_CHECKS
from .cache import AnswerCache, BuildCache, Durations, ResultCache, cache_root
from .causes import Causes, blocked_by, name_once
from .checks._mypy import warm_mypy_cache
from .distributions import BuildOutcome, build_distributions, plugin_info
from .environment import environment_for, prepare_base, site_packages_of
from .model import Artifact, CertificationReport, CheckResult, CheckStatus, Finding, Severity
from .policy import Policy, load_policy
from .probes import run_metadata_probe
from .registry_entry import registry_entry
from .requirements import check_installable

TOOLS = ("mypy", "bandit", "pip-audit", "build", "pytest", "uv", "copier")
_IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
)
ProgressCallback = Callable[[str, CheckResult | None], None]


@dataclass(frozen=True)
class CertifyOptions:
    project: Path
    policy_file: Path | None = None
    vuln_db: Path | None = None
    allow_incomplete_audit: bool = False
    use_cache: bool = True
    dist_dir: Path | None = None
    jobs: int = 4
    only: tuple[str, ...] = ()  # run just these checks (a fast subset, as pre-commit does)
    require_isolation: str | None = None  # over the policy's [isolation] require


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool in TOOLS:
        try:
            versions[tool] = importlib_metadata.version(tool)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _looks_like_project(path: Path) -> bool:
    return any((path / name).is_file() for name in ("plugin.py", "setup.py", "pyproject.toml"))


def validate_options(options: CertifyOptions) -> Policy:
    if not options.project.is_dir():
        raise ToolkitError(f"{options.project}: no such project directory")
    if not _looks_like_project(options.project):
        raise ToolkitError(
            f"{options.project} is not a plugin project (no plugin.py, setup.py or pyproject.toml)"
        )
    if options.vuln_db is not None and not options.vuln_db.is_dir():
        raise ToolkitError(f"--vuln-db {options.vuln_db}: no such directory")
    known = set(registry.check_ids())
    unknown = sorted(set(options.only) - known)
    if unknown:
        raise ToolkitError(
            f"--only: unknown check(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    policy = load_policy(data_dir("checks"), options.policy_file)
    if options.require_isolation is not None:
        policy = replace(policy, require_isolation=options.require_isolation)
    return policy


def certify(
    options: CertifyOptions, progress: ProgressCallback | None = None
) -> CertificationReport:
    policy = validate_options(options)
    began = time.perf_counter()
    tools = tool_versions()
    root = cache_root()
    cache = ResultCache(
        root if options.use_cache else None,
        f"{__version__}|{sorted(tools.items())}|{policy.fingerprint()}",
    )
    with tempfile.TemporaryDirectory(prefix="aitbc-certify-") as run_dir_name:
        early = ThreadPoolExecutor(3)
        early.submit(isolation)  # the jail's probes, while the project is copied and keyed
        run_dir = Path(run_dir_name)
        workdir = run_dir / "project"
        shutil.copytree(options.project, workdir, ignore=_IGNORED, symlinks=True)
        builds = BuildCache(root if options.use_cache else None, f"{cache.salt}|{sys.version}")
        key = builds.key(workdir)
        reused = builds.get(key, run_dir / "build" / "dist")
        # While the plugin builds: the base of its environment (its dependencies) is
        # made, for the checks that will wait for it.  A tree built before (an unchanged
        # plugin) does not need it.  (The advisories are read by the audit itself: it
        # parses only the records its packages need, a tenth of a second.)
        if options.use_cache and reused is None:
            early.submit(_prepare, workdir, options.project.resolve(), run_dir / "warm", policy)
        outcome = _build(workdir, run_dir / "build", policy.tool_timeout_s, builds, key, reused)
        plugin, plugin_problem = plugin_info(outcome.wheel) if outcome.wheel else (None, None)
        base = CheckContext(
            project=options.project.resolve(),
            workdir=workdir,
            scratch=run_dir / "scratch",
            policy=policy,
            checks_dir=data_dir("checks"),
            wheel=outcome.wheel,
            sdist=outcome.sdist,
            build_error=outcome.error,
            build_behaviour=outcome.behaviour,
            plugin=plugin,
            plugin_problem=plugin_problem,
            vuln_db=options.vuln_db,
            allow_incomplete_audit=options.allow_incomplete_audit or policy.allow_incomplete_audit,
        )
        causes = Causes(base)
        answers = AnswerCache(root if options.use_cache else None, builds.salt)
        context = _with_shared_values(base, root, options.use_cache, causes, answers)
        every = registry.CHECKS
        durations = Durations(root if options.use_cache else None)
        # The checks that need no plugin environment first, the longest first: they run
        # while the environment of a changed plugin is made, from here (an unchanged one
        # has its environment already, or needs none: its checks come from the cache).
        selected = sorted(
            [c for c in every if not options.only or c.id in options.only],
            key=lambda c: (c.uses_environment, -durations.seconds.get(c.id, c.typical_s)),
        )
        if reused is None and plugin is not None and any(c.uses_environment for c in selected):
            # And the probe, which the checks of a changed plugin all ask for first.
            early.submit(_made, context.plugin_environment, context.metadata_probe)
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            ran = dict(
                zip(
                    [c.id for c in selected],
                    pool.map(lambda c: _run_one(c, context, cache, progress), selected),
                    strict=True,
                )
            )
        durations.update(result for result, _ in ran.values())
        skipped = "not selected (--only)"
        results = name_once([
            (ran[c.id][0], causes.of(c, context, ran[c.id][1])) if c.id in ran
            else (CheckResult(c.id, CheckStatus.SKIPPED, summary=skipped), None)
            for c in every
        ])  # fmt: skip
        report = _report(context, results, policy, tools, options.only)
        report = replace(report, duration_s=time.perf_counter() - began)  # the wall time
        if options.dist_dir is not None and report.artifacts:
            _write_dist(options.dist_dir, [p for p in (outcome.wheel, outcome.sdist) if p])
        early.shutdown()  # long done: the environment waited for the base it made
    return report


def _prepare(workdir: Path, project: Path, scratch: Path, policy: Policy) -> None:
    """What a first certification of the project would wait for, made while it builds:
    its environment's base and its mypy cache (from the base's sources, while their
    bytecode is compiled, when the base is new).  A failure here is found again, and
    named, by the step that needs the result."""
    timeout = policy.tool_timeout_s

    def warm(base: Path) -> None:
        with contextlib.suppress(Exception):
            warm_mypy_cache(project, site_packages_of(base), data_dir("checks"), scratch, timeout)

    warming: list[threading.Thread] = []

    def start_warming(base: Path) -> None:
        warming.append(threading.Thread(target=warm, args=(base,), daemon=True))
        warming[-1].start()

    base = prepare_base(workdir, cache_root(), timeout=timeout, when_installed=start_warming)
    for thread in warming:
        thread.join()
    if base is not None and not warming:
        warm(base)


def _made(*values: Lazy[Any] | None) -> None:
    """Make lazy values now, in order; a failure is kept, for the checks that ask, to name."""
    for lazy in values:
        if lazy is not None:
            with contextlib.suppress(Exception):
                lazy.get()


def _build(
    source: Path, build_dir: Path, timeout: float, builds: BuildCache, key: str,
    reused: tuple[Path, Path] | None,
) -> BuildOutcome:  # fmt: skip
    if reused is not None:
        return BuildOutcome(*reused, error=None, log="reused the build of an identical tree")
    outcome = build_distributions(source, build_dir, timeout, cache_root())
    # A build that did anything of note is never reused: it is watched again next time.
    quiet = outcome.behaviour is None or not outcome.behaviour.actions
    if outcome.wheel is not None and outcome.sdist is not None and quiet:
        builds.put(key, outcome.wheel, outcome.sdist)
    return outcome


def _with_shared_values(
    context: CheckContext, root: Path, reuse: bool, causes: Causes, answers: AnswerCache
) -> CheckContext:
    """The context with what checks compute for one another, each made once per run by
    whichever check asks first: the plugin environment and the metadata probe.  Their
    failures are noted in ``causes``: every check they stop then points to one of them."""

    def make_environment() -> PluginEnvironment:
        wheel, _ = context.built_plugin()
        check_installable(wheel, context.workdir)  # a conflict with the SDK, named plainly
        return environment_for(wheel, root, reuse=reuse, timeout=context.policy.tool_timeout_s)

    shared = replace(context, plugin_environment=Lazy(causes.noted(make_environment)))
    probe = causes.noted(lambda: run_metadata_probe(shared, answers))
    return replace(shared, metadata_probe=Lazy(probe))


Attempt = tuple[CheckResult, BaseException | None]  # the result, and the error it stands for


def _run_one(
    check: Check, context: CheckContext, cache: ResultCache, progress: ProgressCallback | None
) -> Attempt:
    if progress:
        progress(check.id, None)
    outcome = _run_check(check, context, cache)
    if progress:
        progress(check.id, outcome[0])
    return outcome


def error_result(check_id: str, duration: float, reason: str, **details: Any) -> CheckResult:
    """The check could not decide.  Fail closed: ERROR is never certified."""
    finding = Finding(f"{check_id}.error", Severity.HIGH, reason)
    return CheckResult(check_id, CheckStatus.ERROR, duration, (finding,), reason, details=details)


def run_check(check: Check, context: CheckContext) -> CheckResult:
    """``check.run(context)``, with the one edge where a check that cannot decide
    (:class:`CheckError`) or crashes becomes an ``error`` result."""
    return _attempt(check, context)[0]


def _attempt(check: Check, context: CheckContext) -> Attempt:
    """:func:`run_check`, and the exception an error result stands for (whose chain
    tells whether a failure shared with other checks stopped this one)."""
    began = time.perf_counter()
    try:
        if check.needs_wheel and (context.wheel is None or context.plugin is None):
            why = context.build_error or context.plugin_problem or "no wheel"
            raise CheckError(f"cannot run without a plugin wheel: {why}")
        return check.run(context), None
    except CheckError as exc:
        return error_result(check.id, time.perf_counter() - began, exc.reason, **exc.details), exc
    except ToolkitError as exc:
        return error_result(check.id, time.perf_counter() - began, str(exc)), exc
    except Exception as exc:  # fail closed: a crashing check never reads as a pass
        return error_result(
            check.id,
            time.perf_counter() - began,
            f"the {check.id} check crashed: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        ), exc


def _run_check(check: Check, context: CheckContext, cache: ResultCache) -> Attempt:
    if check.needs_wheel and (context.wheel is None or context.plugin is None):
        return _attempt(check, context)  # it says why, as an error: nothing to cache
    (context.scratch / check.id).mkdir(parents=True, exist_ok=True)
    scoped = replace(context, scratch=context.scratch / check.id)
    began = time.perf_counter()
    try:
        inputs = check.cache_inputs(scoped)
        # Names relative to the run folder: the copy and the built wheel live in a new
        # temporary folder each run, and the key must not change with it.
        key = None if inputs is None else cache.key(check.id, inputs, context.workdir.parent)
    except Exception:  # no key, no caching: running the check says what is wrong
        key = None
    if key is not None:
        hit = cache.get(key)
        if hit is not None:  # report what the run spent, not what the first run did
            return replace(hit, duration_s=time.perf_counter() - began), None
    outcome = _attempt(check, scoped)
    if key is not None:
        cache.put(key, outcome[0])
    return outcome


def _report(
    context: CheckContext,
    results: list[CheckResult],
    policy: Policy,
    tools: dict[str, str],
    only: tuple[str, ...],
) -> CertificationReport:
    required = [c for c in policy.required if not only or c in only]
    reasons = tuple(
        f"{r.id} {r.status.value}: "
        + (f"blocked by {owner}" if (owner := blocked_by(r)) else r.summary)
        for r in results
        if r.id in required and not r.passes
    )
    contained = _isolation()
    if policy.require_isolation == "full" and contained["level"] != "full":
        missing = "; ".join(contained["missing"])
        reasons += (f"isolation partial, the policy requires full: {missing}",)
    # A partial run (--only) may pass, but is never a certification: no registry entry.
    certified = not reasons and not only
    artifacts = tuple(
        Artifact(path.name, sha256_file(path), path.stat().st_size)
        for path in (context.wheel, context.sdist)
        if path is not None
    )
    plugin = context.plugin
    # Only what the run already asked: a run without the metadata check names no entry.
    probe = context.metadata_probe.peek() if context.metadata_probe is not None else None
    meta = probe.metadata if probe is not None else None
    entry = None
    if certified and plugin is not None and meta is not None and artifacts:
        entry = registry_entry(meta, plugin, artifacts[0].sha256)
    summary: dict[str, Any] = {"project": str(context.project), "policy": policy.source}
    if plugin is not None:
        summary.update(
            name=plugin.name,
            version=plugin.version,
            distribution=plugin.distribution,
            module=plugin.module,
            entry_point=plugin.entry_point,
            kind=probe.kind if probe is not None else None,
        )
    toolkit: dict[str, Any] = {"version": __version__, "tools": tools}
    environment = context.plugin_environment.peek() if context.plugin_environment else None
    changed = getattr(environment, "rebuilt_because", None)
    if changed:  # the cache had been tampered with (or damaged): say so, once
        toolkit["cache"] = f"the cached plugin environment had been changed ({changed}); rebuilt"
    return CertificationReport(
        isolation=contained,
        behaviour=_behaviour(results),
        certified=certified,
        plugin=summary,
        checks=tuple(results),
        artifacts=artifacts,
        registry_entry=entry,
        toolkit=toolkit,
        reasons=reasons,
        only=only,
    )


#: The phases that run plugin code: in the kernel jail and watched from outside when
#: the machine has both.  (The plugin environment is installed from wheels only, and
#: mypy and the audit never start the environment's Python outside the jail.)
JAILED_PHASES = ("build", "import", "lifecycle", "tests")


def _isolation() -> dict[str, Any]:
    found = isolation()
    contained = list(JAILED_PHASES) if found.jailed else []
    return {"level": found.level, "mechanism": found.mechanism, "contained": contained,
            "missing": list(found.missing)}  # fmt: skip


def _behaviour(results: list[CheckResult]) -> dict[str, Any]:
    """Each phase's behaviour record, from the check that ran the phase."""
    by_id = {r.id: r for r in results}
    records = {}
    for phase, check_id in PHASE_CHECKS.items():
        found = by_id.get(check_id)
        record = found.details.get("behaviour") if found is not None else None
        if isinstance(record, dict):
            records[phase] = {k: v for k, v in record.items() if k != "phase"}
    return records


def _write_dist(dist_dir: Path, files: list[Path]) -> None:
    """The artifacts and a SHA256SUMS file in `sha256sum -c` format, each written atomically."""
    dist_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for path in files:
        write_atomic(dist_dir / path.name, path.read_bytes())
        lines.append(f"{sha256_file(path)}  {path.name}\n")
    write_atomic(dist_dir / "SHA256SUMS", "".join(lines).encode())
