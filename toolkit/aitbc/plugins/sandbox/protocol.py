"""The one protocol between a sandbox supervisor and its worker.

The supervisor writes one job, a JSON object, to the worker's stdin and closes it::

    {"module": "/path/conformance.py", "params": {...}, "limits": {...}}

The worker answers on a pipe it inherits (``--protocol-fd N``), never on its stdout,
which the code under test may print to.  One JSON object per line, in this order::

    {"type": "hello", "protocol": 1, "pid": 4242}
    {"type": "plan", "steps": ["import", "construct", ...]}
    {"type": "begin", "step": "start", "code_roots": ["/venv/.../my_plugin"]}
    {"type": "end", "step": "start", "ok": false, "duration_s": 0.01,
     "problems": [{"kind": "exception", "message": "...", "file": "...", "line": 12}]}
    ...
    {"type": "done"}

``{"type": "error", "message": ...}`` at any point means the worker itself could not
run the job (bad job, conformance module not loadable): the result is "could not check",
never "passed".  The worker stops at the first step that fails.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20  # a longer line is garbage, not a message
MESSAGE_TYPES = frozenset({"hello", "plan", "begin", "end", "done", "error"})


#: Why a step failed, in one word: the certification report's public rule ids are
#: ``lifecycle.<kind>``.  Defined here only; the worker, the supervisor, the leak finder
#: and the conformance steps (checks/conformance) all say one of these.
ProblemKind = Literal[
    "import",  # the plugin could not be loaded through its entry point
    "status",  # the plugin's status is not the one the step leads to
    "returned-false",  # a lifecycle method did not return True
    "health",  # health_check did not report the plugin active
    "exception",  # the step raised
    "hang",  # no answer within the step's (or the run's) wall-clock limit
    "exit",  # the worker exited or died from a signal
    "memory",  # the address-space limit was hit
    "cpu",  # the CPU-time limit was hit
    "leak.thread",
    "leak.task",
    "leak.socket",
    "leak.file",
]
PROBLEM_KINDS: frozenset[str] = frozenset(get_args(ProblemKind))


class ProtocolError(Exception):
    """A line from the worker that is not a message of this protocol."""


class LimitError(ValueError):
    """A limit that is not a positive number; ``name`` says which."""

    def __init__(self, name: str, value: object) -> None:
        super().__init__(f"limit {name} must be a positive number, not {value!r}")
        self.name = name


@dataclass(frozen=True)
class Limits:
    """What a worker may use: wall clock per step and overall, address space, CPU time."""

    step_timeout_s: float = 10.0
    total_timeout_s: float = 60.0
    memory_mb: int = 1024
    cpu_s: int = 30

    def __post_init__(self) -> None:
        for name in ("step_timeout_s", "total_timeout_s", "memory_mb", "cpu_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise LimitError(name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Limits:
        if not isinstance(data, dict):
            raise ValueError("limits must be an object")
        return cls(
            step_timeout_s=float(data["step_timeout_s"]),
            total_timeout_s=float(data["total_timeout_s"]),
            memory_mb=int(data["memory_mb"]),
            cpu_s=int(data["cpu_s"]),
        )


@dataclass(frozen=True)
class Problem:
    """Why a step failed: a :data:`ProblemKind` and the words for it.  ``file`` is an
    absolute path in the worker's environment, when the code at fault is known."""

    kind: ProblemKind
    message: str
    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Problem:
        if not isinstance(data, dict):
            raise ProtocolError(f"a problem must be an object, not {type(data).__name__}")
        kind, message = data.get("kind"), data.get("message")
        file, line = data.get("file"), data.get("line")
        if not isinstance(kind, str) or not isinstance(message, str):
            raise ProtocolError("a problem needs a kind and a message")
        if kind not in PROBLEM_KINDS:
            raise ProtocolError(f"unknown problem kind {kind[:40]!r}")
        if file is not None and not isinstance(file, str):
            raise ProtocolError("a problem's file must be a string")
        if line is not None and (isinstance(line, bool) or not isinstance(line, int)):
            raise ProtocolError("a problem's line must be an integer")
        return cls(kind, message, file, line)  # type: ignore[arg-type]  # checked above


def encode(message: dict[str, Any]) -> bytes:
    # ensure_ascii: one line per message whatever the text holds
    return json.dumps(message, separators=(",", ":"), default=str).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"a line of {len(line)} bytes")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"not JSON: {line[:80]!r}") from None
    if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
        raise ProtocolError(f"not a message: {line[:80]!r}")
    return message
