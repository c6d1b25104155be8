"""The one protocol between a sandbox supervisor and its worker.

The supervisor writes the job, one JSON object, as the first line of the worker's
stdin; nothing about it is in the worker's argv or environment::

    {"module": "/path/conformance.py", "params": {...}, "limits": {...}, "channel": 5}

The worker answers on the inherited pipe ``channel``, never on its stdout, which the
code under test may print to.  One JSON object per line::

    {"type": "hello", "protocol": 2, "pid": 4242}
    {"type": "plan", "steps": ["import", "construct", ...]}

Then the supervisor asks for each step in turn, on stdin, with a fresh random nonce,
and the worker answers that request, and only that one, with the same nonce::

    > {"run": "start", "nonce": "9f2c..."}
    {"type": "begin", "step": "start", "nonce": "9f2c...", "code_roots": ["/venv/.../my_plugin"]}
    {"type": "end", "step": "start", "nonce": "9f2c...", "ok": false, "duration_s": 0.01,
     "problems": [{"kind": "exception", "message": "...", "file": "...", "line": 12}]}

A line that answers no pending request (a wrong or missing nonce, a second answer, a
message out of order) is a forgery by the code under test: the step fails with kind
``forged``.  Code that runs before a request cannot know its nonce.  The supervisor stops
asking at the first step that fails, and closes stdin when done: the worker then exits.
``{"type": "error", "message": ...}`` before the plan means the worker itself could not
run the job (bad job, conformance module not loadable): "could not check", never "passed".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

PROTOCOL_VERSION = 2
MAX_LINE_BYTES = 1 << 20  # a longer line is garbage, not a message
MESSAGE_TYPES = frozenset({"hello", "plan", "begin", "end", "error"})


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
    "leak.process",  # a child process still alive after cleanup, seen from outside
    "state",  # process-wide state (logging, builtins, sys hooks, ...) left changed
    "forged",  # a message on the result channel that answers no request of the supervisor
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
