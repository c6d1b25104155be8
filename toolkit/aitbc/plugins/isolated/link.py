"""The host's side of an isolated plugin: its worker process, started in the jail
through the one process runner, and the pipe protocol to it (see :mod:`.worker`).

A request has the deadline of whoever awaits it (the manager's ``lifecycle_timeout``
or ``event_timeout``).  One that is cancelled is cancelled in the worker too; a worker
that does not let go of it within a grace period is stuck (a busy loop, a C-level
hang), and is killed.  When the worker ends, however it ends, every request in flight
fails with the reason, and the host is told once (``on_death``).  Nothing the worker
says is believed beyond what the plugin says about itself: its memory is read from
/proc, its death from its exit status, never from its words.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import WorkerLimits
from ..process import Tree, descendants, start
from ..sandbox.diagnosis import host_reason
from ..sandbox.jail import INNER_SCRATCH, Jail, isolation, signal_of

CANCEL_GRACE_S = 1.0  # a cancelled request's answer may take this long before the kill
EXIT_GRACE_S = 2.0  # after the channel closes, how long the worker may take to exit
MAX_LINE = 1 << 24  # a longer line is not the protocol: the worker is killed
_LOG_TAIL = 4096


class WorkerFailed(Exception):
    """The plugin's worker is gone (or was stopped); the message says why, in words that
    follow the step's name: ``start: the worker exited on its own (status 0)``."""


@dataclass(frozen=True)
class Shape:
    """What the jail lets the worker do, from the plugin's declared permissions."""

    network: bool = False
    subprocess: bool = False
    filesystem: bool = False  # writes anywhere
    writable: tuple[Path, ...] = ()  # beyond its data and temp folders

    def as_job(self, data_dir: str, temp_dir: str) -> dict[str, Any]:
        return {"network": self.network, "subprocess": self.subprocess,
                "filesystem": self.filesystem,
                "writable": [data_dir, temp_dir, *map(str, self.writable)]}  # fmt: skip


@dataclass
class Worker:
    """One plugin's worker, as the host sees it."""

    name: str
    tree: Tree
    limits: WorkerLimits
    log_path: Path
    on_publish: Callable[[str, dict[str, Any], int], None]
    on_subscribe: Callable[[str], None]
    on_refused: Callable[[str, str], None]
    on_death: Callable[[str], None] = lambda reason: None
    death: str | None = None
    ready: asyncio.Future[dict[str, Any]] = field(init=False)
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stopping: str | None = None  # why the host itself ends the worker
    _report: bool = False  # ... and whether that is the plugin's failure
    members: set[int] = field(default_factory=set)  # every process of its tree seen
    _reader: asyncio.Task[None] | None = None
    _writer: asyncio.StreamWriter | None = None

    def __post_init__(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()

    async def attach(self, channel_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(channel_fd, "rb", 0)
        )
        stdin = self.tree.process.stdin
        assert stdin is not None
        transport, protocol = await loop.connect_write_pipe(asyncio.BaseProtocol, stdin)
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        self._reader = asyncio.create_task(self._read(reader), name=f"aitbc-worker-{self.name}")

    # -- requests ------------------------------------------------------------------------
    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        if self.death is not None:
            raise WorkerFailed(self.death)
        ident = next(self._ids)
        answer = self._pending[ident] = asyncio.get_running_loop().create_future()
        self._send({"id": ident, "op": op, **fields})
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            if not answer.done():
                self._send({"op": "cancel", "target": ident})
                asyncio.get_running_loop().create_task(self._let_go(ident, answer, op))
            raise

    async def _let_go(self, ident: int, answer: asyncio.Future[dict[str, Any]], op: str) -> None:
        with contextlib.suppress(asyncio.TimeoutError, WorkerFailed):
            await asyncio.wait_for(asyncio.shield(answer), CANCEL_GRACE_S)
        if not answer.done():
            self.stop(f"its worker was stuck in {op} and was killed", report=True)
        self._pending.pop(ident, None)

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        self._writer.write(json.dumps(message, default=str).encode() + b"\n")

    # -- what the worker says ------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        problem: str | None = None
        try:
            while line := await reader.readline():
                problem = self._take(line)
                if problem is not None:
                    break
        except (ValueError, asyncio.LimitOverrunError):
            problem = "its worker sent a line longer than the protocol allows"
        except Exception as exc:  # any failure to read is the worker's end
            problem = f"its worker's channel failed: {exc}"
        await self._ended(problem)

    def _take(self, line: bytes) -> str | None:
        try:
            message = json.loads(line)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            return "its worker spoke something other than the protocol"
        if kind == "answer":
            pending = self._pending.pop(message.get("id"), None)
            if pending is not None and not pending.done():
                pending.set_result(message)
        elif kind in ("ready", "failed"):
            self._seen()
            if not self.ready.done():
                self.ready.set_result(message)
        elif kind == "publish" and isinstance(message.get("data"), dict):
            self.on_publish(str(message.get("event")), message["data"],
                            int(message.get("depth") or 0))  # fmt: skip
        elif kind == "subscribe":
            self.on_subscribe(str(message.get("event")))
        elif kind == "refused":
            self.on_refused(str(message.get("permission")), str(message.get("what"))[:300])
        return None

    def _seen(self) -> set[int]:
        """The tree's members now, added to those seen before: a jail's processes carry
        no token, and once its bubblewrap is gone only this list finds them."""
        self.members.update(descendants(self.tree.process.pid))
        return self.members

    async def _ended(self, problem: str | None) -> None:
        self._seen()
        for _ in range(int(EXIT_GRACE_S / 0.05)):
            if self.tree.exited() or problem is not None:
                break
            await asyncio.sleep(0.05)
        self.tree.close(self._seen())  # the whole tree, whatever it left, reaped
        code = self.tree.process.returncode
        reason = self._stopping or problem or self._why(code)
        self.death = reason
        for pending in self._pending.values():
            if not pending.done():
                pending.set_exception(WorkerFailed(reason))
        self._pending.clear()
        if not self.ready.done():
            self.ready.set_result({"type": "failed", "error": reason, "died": True})
        if self._stopping is None or self._report:
            self.on_death(reason)

    def _why(self, code: int | None) -> str:
        if code is None:
            return "its worker closed its channel and was killed"
        # In the jail bubblewrap reports a signal as 128 + its number; bare, Popen as -n.
        signum = signal_of(code) if isolation().jailed else (-code if code < 0 else None)
        limits = self.limits
        return host_reason(signum, code, limits.memory_mb, limits.cpu_s, self.log_tail())

    def log_tail(self) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, 2) - _LOG_TAIL))
            return log.read().decode(errors="replace")
        return ""

    # -- from outside ----------------------------------------------------------------------
    def memory_bytes(self) -> int | None:
        """Resident memory of the worker's whole tree, read from /proc."""
        pid = self.tree.process.pid
        total, page = 0, os.sysconf("SC_PAGE_SIZE")
        for member in (pid, *self._seen()):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * page
        return total or None

    def stop(self, why: str | None = None, *, report: bool = False) -> None:
        """End the worker now (its tree is killed); ``why`` becomes its death's reason,
        told to ``on_death`` with ``report`` (the host ended it for the plugin's fault)."""
        if self.death is None and self._stopping is None:
            self._stopping = why or "its worker was stopped by the host"
            self._report = report
        with contextlib.suppress(ProcessLookupError):
            self.tree.kill(self._seen())

    async def close(self) -> None:
        """Ask the worker to exit (end of its stdin), then make sure of it."""
        if self._stopping is None and self.death is None:
            self._stopping = "its worker was stopped by the host"
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), EXIT_GRACE_S)
            except asyncio.TimeoutError:
                self.tree.kill(self._seen())
                await self._reader
        else:
            self.tree.close()


async def start_worker(
    *,
    name: str,
    job: dict[str, Any],
    shape: Shape,
    limits: WorkerLimits,
    scratch: Path,
    data_dir: Path,
    readable: list[Path],
    callbacks: dict[str, Any],
) -> Worker:
    """Start ``name``'s worker in the jail (or, where there is none, as a plain limited
    process) and send it ``job``; its ``ready`` is awaited by the caller."""
    read_end, write_end = os.pipe()
    log_path = scratch.parent / f"{scratch.name}.log"  # outside the jail's view
    argv = [sys.executable, "-I", "-B", "-m", "aitbc.plugins.isolated"]
    jailed = isolation().jailed
    if jailed:
        jail = Jail(scratch, readable=tuple(readable), writable=(data_dir, *shape.writable),
                    network=shape.network)  # fmt: skip
        inner_fd = write_end
        command = jail.command(argv, jail.environment(), scratch)
        temp_dir = INNER_SCRATCH
    else:
        command, inner_fd, temp_dir = argv, write_end, str(scratch)
    job = {**job, "channel": inner_fd, "temp_dir": temp_dir, "data_dir": str(data_dir),
           "limits": {"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s,
                      "open_files": limits.open_files},
           "may": shape.as_job(str(data_dir), temp_dir),
           "parent": None if jailed else os.getpid()}  # fmt: skip
    with log_path.open("wb") as log:
        try:
            bare_env = None if jailed else {"PYTHONDONTWRITEBYTECODE": "1"}
            tree = start(command, stdin=subprocess.PIPE, stdout=log, stderr=log,
                         pass_fds=(write_end,), env=bare_env)  # fmt: skip
        finally:
            os.close(write_end)
    worker = Worker(name, tree, limits, log_path, **callbacks)
    await worker.attach(read_end)
    worker._send(job)
    return worker
