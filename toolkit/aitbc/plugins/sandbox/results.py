"""What a conformance run found: per step, and for the run as a whole."""

from __future__ import annotations

from dataclasses import dataclass

from .protocol import Problem
from .trace import Behaviour


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    duration_s: float
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class SandboxResult:
    plan: tuple[str, ...]  # the steps the conformance module defines
    steps: tuple[StepResult, ...]  # those that ran, in order
    finished: bool  # the run came to its end (every step asked, or one failed)
    error: str | None  # could not check: the worker did not start or broke the protocol
    death: str | None  # how the worker ended early, in words, when it did
    returncode: int | None
    worker_pid: int | None
    log_tail: str  # the end of the worker's stdout and stderr
    duration_s: float
    behaviour: Behaviour | None = None  # what the run did, seen by strace (in the jail)

    @property
    def problems(self) -> list[tuple[str, Problem]]:
        return [(step.name, problem) for step in self.steps for problem in step.problems]

    @property
    def passed(self) -> bool:
        """Every planned step ran and passed: the only way to pass."""
        return (
            self.error is None
            and self.finished
            and len(self.steps) == len(self.plan)
            and all(step.ok for step in self.steps)
        )
