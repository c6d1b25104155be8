"""`lifecycle`: the plugin, loaded from its installed wheel in a separate and limited
process, goes through its whole lifecycle (restart included) and leaves nothing behind.

The steps are checks/conformance/lifecycle.py, run by the SDK's sandbox
(aitbc.plugins.sandbox): this module only chooses the limits and turns what the
sandbox saw into findings.  A misbehaving plugin fails the check; a sandbox that could
not run at all makes it an error, never a pass.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from aitbc.plugins.sandbox import Problem, SandboxResult, run_conformance
from aitbc.plugins.sandbox.jail import isolation

from ..base import CheckContext, CheckError, PluginEnvironment, result, timed
from ..behaviour import declared_permissions, judge
from ..model import CheckResult, Finding, Severity

CONFORMANCE = PurePosixPath("conformance", "lifecycle.py")
_MAX_TAIL_LINES = 30


class LifecycleCheck:
    """The plugin goes through its whole lifecycle, restart included, and leaves nothing
    behind.

    It is loaded from its installed wheel in a separate worker process of its isolated
    environment (the SDK's sandbox), limited in wall-clock time per step and overall,
    in address space and in CPU time (`[lifecycle]` in the policy), and driven through
    the conformance steps in `conformance/lifecycle.py`: import through the entry
    point, construction, `initialize`, `start`, `health_check`, `handle_event`,
    `stop`, `start` and `stop` again, `cleanup`, then a look for threads, asyncio
    tasks, files and sockets it left behind (what its import and its constructor made
    counts too) and for process-wide state it left changed: logging, builtins, `sys`
    and `threading` hooks, signal handlers, the event loop policy, the `socket`
    module, the SDK's own classes and functions.  The first step that fails is reported
    with why (`lifecycle.<kind>`) and, where known, the plugin's file and line.  A
    worker that could not run at all makes the check an error, never a pass."""

    id = "lifecycle"
    title = "Lifecycle, restart and clean-up in a separate, limited process"
    security = False
    needs_wheel = True
    uses_environment = True
    typical_s = 0.25

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            _, plugin = context.built_plugin()
            module = context.checks_dir.joinpath(*CONFORMANCE.parts)
            if not module.is_file():
                raise CheckError(f"the conformance steps are missing: {module}")
            environment = context.environment()
            workdir = context.scratch / "sandbox"
            workdir.mkdir(parents=True, exist_ok=True)
            outcome = run_conformance(
                environment.python,
                module,
                params={"name": plugin.name, "entry_point": plugin.entry_point},
                limits=context.policy.lifecycle,
                workdir=workdir,
                # In the kernel jail wherever this machine has one (the report says so).
                isolate=isolation().jailed,
                readable=[context.checks_dir],
            )
            return self._verdict(context, environment, outcome, elapsed())

    def _verdict(
        self,
        context: CheckContext,
        environment: PluginEnvironment,
        outcome: SandboxResult,
        duration: float,
    ) -> CheckResult:
        details: dict[str, Any] = {
            "steps": [
                {"step": s.name, "ok": s.ok, "duration_s": round(s.duration_s, 3)}
                for s in outcome.steps
            ],
            "worker_exit": outcome.death,
            "worker_log": _tail(outcome.log_tail) if not outcome.passed else "",
        }
        if outcome.error is not None:
            raise CheckError(f"could not run the lifecycle: {outcome.error}", **details)
        findings = [
            _finding(step, problem, context, environment) for step, problem in outcome.problems
        ]
        seen, details["behaviour"] = judge(
            self.id, "lifecycle", outcome.behaviour, declared_permissions(context)
        )
        findings += seen
        if findings:
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            return result(self.id, findings, duration, findings[0].message + more, **details)
        if not outcome.passed:  # no problem named, yet not every step ran: fail closed
            ran = len(outcome.steps)
            reason = f"the worker stopped after {ran} of {len(outcome.plan)} steps without a reason"
            raise CheckError(reason, **details)
        # The steps' names come from the conformance module itself, as the worker ran it.
        summary = f"{len(outcome.steps)} steps passed ({', '.join(outcome.plan)})"
        return result(self.id, [], duration, summary, **details)

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        if context.wheel is None:
            return None
        conformance = sorted(context.checks_dir.joinpath("conformance").glob("*.py"))
        return [context.wheel, *conformance]


def _finding(
    step: str, problem: Problem, context: CheckContext, environment: PluginEnvironment
) -> Finding:
    file, line = _project_file(problem.file, context, environment), problem.line
    return Finding(
        f"lifecycle.{problem.kind}",
        Severity.HIGH,
        f"step {step}: {problem.message}",
        file,
        line if file is not None else None,
    )


def _project_file(
    path: str | None, context: CheckContext, environment: PluginEnvironment
) -> str | None:
    """The project file (relative to its root) a path in the environment was built from."""
    if path is None or context.plugin is None:
        return None
    try:
        shipped = Path(path).resolve().relative_to(Path(environment.site_packages).resolve())
    except ValueError:
        return None
    inside = PurePosixPath(shipped.as_posix())
    module = context.plugin.module
    if inside == PurePosixPath(f"{module}.py"):  # a single-module plugin
        candidates = [inside, PurePosixPath("src", inside)]
    elif inside.parts[0] == module and len(inside.parts) > 1:
        # flat layout (the project is the package), the package folder, src/ layout
        rest = PurePosixPath(*inside.parts[1:])
        candidates = [rest, inside, PurePosixPath("src", inside)]
    else:
        return None
    for candidate in candidates:
        if context.workdir.joinpath(*candidate.parts).is_file():
            return candidate.as_posix()
    return None


def _tail(log: str) -> str:
    return "\n".join(log.strip().splitlines()[-_MAX_TAIL_LINES:])
