"""Running code under test in a separate, limited process: one mechanism for the
certification ``lifecycle`` check and for hosts that isolate plugins in processes.

- :func:`run_conformance` (supervisor): start a worker with a Python that has this SDK,
  give it a conformance module and limits, get per-step results and why it died.
- The worker (``python -m aitbc.plugins.sandbox``) runs the module's ``STEPS``; a step
  is ``async def step(session: Session)`` and fails by raising :class:`StepFailure`.
- :mod:`.protocol` is the JSON-lines protocol between them, with the limits and the
  kinds of problem a step can have; :mod:`.leaks` finds the threads, tasks, files and
  sockets a run left behind.  Child processes go through the SDK's one runner,
  :mod:`aitbc.plugins.process`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use (PEP 562): a worker never imports the supervisor's side.
_EXPORTS = {
    "LimitError": ".protocol",
    "Limits": ".protocol",
    "PROBLEM_KINDS": ".protocol",
    "Problem": ".protocol",
    "ProblemKind": ".protocol",
    "ProtocolError": ".protocol",
    "SandboxResult": ".results",
    "Session": ".worker",
    "StepFailure": ".worker",
    "StepResult": ".results",
    "kill_tree": "..process",  # the one runner's, re-exported
    "run_conformance": ".supervisor",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ..process import kill_tree
    from .protocol import (
        PROBLEM_KINDS,
        LimitError,
        Limits,
        Problem,
        ProblemKind,
        ProtocolError,
    )
    from .results import SandboxResult, StepResult
    from .supervisor import run_conformance
    from .worker import Session, StepFailure

__all__ = [
    "PROBLEM_KINDS",
    "LimitError",
    "Limits",
    "Problem",
    "ProblemKind",
    "ProtocolError",
    "SandboxResult",
    "Session",
    "StepFailure",
    "StepResult",
    "kill_tree",
    "run_conformance",
]
