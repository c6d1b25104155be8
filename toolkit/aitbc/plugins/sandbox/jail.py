"""The kernel sandbox that plugin code runs in: bubblewrap (Flatpak's sandbox), which
sets up Linux namespaces for it.

Inside a :class:`Jail` a process has
- no network at all: a new network namespace holds only its own loopback, so not even
  the host's loopback services are reachable;
- a clean environment: only what :meth:`Jail.environment` lists (``PATH``, locale, a
  fresh ``HOME`` and ``TMPDIR`` in its scratch folder, and what the caller adds), never
  the caller's variables and so none of its secrets;
- a read-only view of the machine, with the caller's ``HOME`` and ``/tmp`` replaced by
  empty folders, except its scratch folder (writable) and the paths it is given to read
  (the plugin's environment, the Python it runs on, the conformance steps);
- its own PID namespace, IPC, UTS and cgroup namespaces and a new session: when the
  jail's first process ends or is killed, the kernel kills everything left inside it,
  double forks and ``setsid`` included, and it cannot see or signal the host's
  processes.

What it does not stop: code that exploits the kernel itself (a bug in namespaces or a
system call), CPU and memory use (the worker's own rlimits and the supervisor's wall
clock do that), reading world-readable files outside ``HOME`` and ``/tmp`` (``/etc``,
``/usr``: the machine's software, read-only), or a plugin that behaves only when it
believes nobody watches (timing or environment sniffing).  Where bubblewrap or the
namespaces it needs are missing, :func:`isolation` says what is missing instead of
pretending; the caller decides whether to go on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .leaks import within
from .trace import Behaviour, read_behaviour, strace, tracer_prefix

if TYPE_CHECKING:
    from ..process import Completed

IsolationLevel = Literal["full", "partial"]
#: What a jailed process may know of the locale; everything else is set by the jail.
_LOCALE = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Where the scratch folder appears inside every jail, certification's and a host's
#: alike: its real path (a temporary folder named by the caller, with the check's name
#: in it) would tell the code inside what runs it.
INNER_SCRATCH = "/tmp/work"  # noqa: S108 - a mount point inside the jail's own /tmp
_PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Isolation:
    """How plugin code is contained and watched: ``full`` when it runs in the jail and
    strace follows it from outside; ``partial`` with what was missing otherwise."""

    level: IsolationLevel
    mechanism: str  # "bubblewrap 0.8.0 + strace 6.1", or what there is, or "none"
    missing: tuple[str, ...] = ()
    jailed: bool = False  # bubblewrap makes its namespaces here
    traced: bool = False  # strace can follow a jail from outside

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "mechanism": self.mechanism, "missing": list(self.missing)}

    def describe(self) -> str:
        """One line for a person."""
        if self.level == "full":
            return f"isolation: full ({self.mechanism})"
        return f"isolation: partial ({'; '.join(self.missing)})"


def bubblewrap() -> str | None:
    return shutil.which("bwrap")


def isolation() -> Isolation:
    """Whether a full jail can be made here: bubblewrap runs a process in every
    namespace the jail uses, and strace can follow it.  Asked once per process: the
    first thread to ask runs the probes (four processes, a fifth of a second) and the
    others wait for its answer rather than run them again."""
    with _ASKING:
        return _probed()


_ASKING = threading.Lock()


@functools.cache
def _probed() -> Isolation:
    found = bubblewrap()
    if found is None:
        return Isolation("partial", "none", ("bubblewrap (bwrap) is not installed",))
    from ..process import run

    # The running Python as the jailed program: it exists, whatever PATH holds.
    probe = [found, *_namespaces(), "--ro-bind", "/", "/", "--", sys.executable, "-S", "-c", ""]
    # The four probes at once, in the time of the slowest: what the tracer's two say
    # counts only when bubblewrap's own probe passed.
    with ThreadPoolExecutor(4) as pool:
        jailed = pool.submit(run, probe, timeout=_PROBE_TIMEOUT_S)
        named = pool.submit(run, [found, "--version"], timeout=_PROBE_TIMEOUT_S)
        traced = pool.submit(_tracer_problem, probe)
        tracer = pool.submit(_strace_version)
        try:
            done, version = jailed.result(), named.result().stdout.strip()
        except OSError as exc:
            return Isolation("partial", "none", (f"bubblewrap could not run: {exc}",))
        if done.returncode != 0:
            why = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            # Ubuntu 24.04's AppArmor refuses unprivileged user namespaces to unconfined
            # programs: "setting up uid map: Permission denied" and the like.
            return Isolation("partial", "none", (f"bubblewrap cannot create namespaces: {why}",))
        jail = version or "bubblewrap"
        try:
            why_not = traced.result()
        except OSError as exc:
            why_not = f"strace could not run: {exc}"
        if why_not is not None:
            return Isolation("partial", jail, (why_not,), jailed=True)
        return Isolation("full", f"{jail} + {tracer.result()}", jailed=True, traced=True)


def _tracer_problem(probe: list[str]) -> str | None:
    """Why strace cannot follow a jail from outside here (no strace, ptrace refused)."""
    from ..process import run

    if strace() is None:
        return "strace is not installed: no behaviour record"
    with tempfile.TemporaryDirectory(prefix="aitbc-trace-probe-") as folder:
        log = str(Path(folder, "log"))
        done = run([*tracer_prefix(log), *probe], timeout=_PROBE_TIMEOUT_S)
        if done.returncode != 0:
            why = " ".join(done.stderr.split())[:200] or f"exit status {done.returncode}"
            return f"strace cannot follow the jail: {why}"
        with Path(log).open(encoding="ascii", errors="replace") as lines:
            if not read_behaviour(lines, scratch=(), cwd="/").complete:
                return "strace cannot follow the jail: its log shows no process"
    return None


def _strace_version() -> str:
    from ..process import run

    found = strace()
    try:
        out = run([found or "strace", "-V"], timeout=_PROBE_TIMEOUT_S).stdout.splitlines()
    except OSError:  # no strace: the tracer's probe says so
        out = []
    words = out[0].split() if out else []
    return f"strace {words[-1]}" if words else "strace"


def _namespaces() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--new-session"]


@dataclass(frozen=True)
class Jail:
    """A bubblewrap jail: ``scratch`` is the one writable folder; ``readable`` are
    paths (files or folders) it may read although they lie in a hidden place."""

    scratch: Path
    readable: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = field(default_factory=lambda: _default_hidden())
    # A host's plugin worker: its data folder (and the paths it declares) it may write,
    # and the host's network when it declares a network permission.
    writable: tuple[Path, ...] = ()
    network: bool = False

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment a jailed process gets: an allowlist, never inherited."""
        home, tmp = self.scratch / "home", self.scratch / "tmp"
        return {"PATH": _PATH, **_LOCALE, "HOME": str(home), "TMPDIR": str(tmp),
                # Bytecode would be written into read-only environments: noise, not news.
                "PYTHONDONTWRITEBYTECODE": "1", **(extra or {})}  # fmt: skip

    def command(
        self, argv: Iterable[str], env: Mapping[str, str], cwd: Path, trace_log: Path | None = None
    ) -> list[str]:
        """``argv`` run in the jail with exactly ``env``, from ``cwd``; with ``trace_log``,
        under strace on the host, which writes there what every process in it does."""
        found = bubblewrap()
        if found is None:
            raise OSError("bubblewrap (bwrap) is not installed")
        for folder in (self.scratch / "home", self.scratch / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        namespaces = [*_namespaces(), "--share-net"] if self.network else _namespaces()
        args = [found, *namespaces, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # /tmp is always the jail's own: the scratch folder is mounted in it.
        for place in sorted({Path("/tmp"), *self.hidden}):  # noqa: S108
            args += ["--tmpfs", str(place)]
        scratch = _real(self.scratch)
        # Outer paths first, so an inner bind is never covered by an outer one; what lies
        # inside the scratch folder is writable with it.
        for path in sorted({_real(p) for p in (*self.readable, cwd)}, key=len):
            if not within(path, list(self._scratch_forms())) and Path(path).exists():
                args += ["--ro-bind", path, path]
        for path in sorted({_real(p) for p in self.writable if p.exists()}, key=len):
            args += ["--bind", path, path]
        args += ["--bind", scratch, INNER_SCRATCH, "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, self.inside(value)]
        tracer = tracer_prefix(str(trace_log)) if trace_log is not None else []
        inner_argv = [self.inside(arg) for arg in argv]
        return [*tracer, *args, "--chdir", self.inside(str(cwd)), "--", *inner_argv]

    def _scratch_forms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((_real(self.scratch), str(self.scratch))))

    def inside(self, text: str) -> str:
        """``text`` (an argument, a variable, a path) as the jail sees it: the scratch
        folder's path replaced by :data:`INNER_SCRATCH` wherever it occurs."""
        for form in self._scratch_forms():
            text = re.sub(re.escape(form.rstrip("/")) + r"(?=/|$|[^\w.-])", INNER_SCRATCH, text)
        return text

    def behaviour(self, trace_log: Path, cwd: Path, expected: Iterable[str] = ()) -> Behaviour:
        """What the traced run that wrote ``trace_log`` did outside its scratch folder."""
        try:
            with trace_log.open(encoding="ascii", errors="replace") as lines:
                return read_behaviour(lines, scratch=[INNER_SCRATCH],
                                      cwd=self.inside(_real(cwd)),
                                      expected_programs=expected)  # fmt: skip
        except OSError:
            return Behaviour(complete=False)


@dataclass(frozen=True)
class Observed:
    """A jailed run: how it ended, and what it did (None where nothing watched)."""

    completed: Completed
    behaviour: Behaviour | None


def run_observed(
    argv: list[str],
    *,
    scratch: Path,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    readable: Iterable[Path] = (),
    expected_programs: Iterable[str] = (),
    input: str | None = None,
) -> Observed:
    """``argv`` through the process runner, in the jail where this machine has one (the
    child then gets exactly the jail's allowlist and ``env``), followed by strace where
    it can be; elsewhere as it is, ``env`` over the caller's environment.
    ``expected_programs``: what the step runs itself (not the plugin's doing)."""
    from ..process import run

    if not isolation().jailed:
        return Observed(run(argv, cwd=cwd, timeout=timeout, env=env, input=input), None)
    with watched_jail(scratch, readable) as (jail, log):
        command = jail.command(argv, jail.environment(env), cwd, log)
        done = run(command, cwd=cwd, timeout=timeout, input=input)
        behaviour = jail.behaviour(log, cwd, expected_programs) if log is not None else None
    return Observed(done, behaviour)


def seen_inside(scratch: Path, text: str) -> str:
    """``text`` as a process :func:`run_observed` starts for ``scratch`` sees it: paths
    in the scratch folder have another name in the jail (the arguments and the
    environment are translated already; a file the process reads is not)."""
    return Jail(scratch).inside(text) if isolation().jailed else text


@contextlib.contextmanager
def watched_jail(scratch: Path, readable: Iterable[Path]) -> Iterator[tuple[Jail, Path | None]]:
    """A jail for ``scratch`` and where strace is to write its log (None where strace
    cannot follow a jail here).  The log lives in a private folder the jail shows
    empty: nothing inside can read it."""
    with tempfile.TemporaryDirectory(prefix="aitbc-trace-") as private:
        jail = Jail(scratch, readable=tuple(readable), hidden=(*_default_hidden(), Path(private)))
        yield jail, Path(private, "strace.log") if isolation().traced else None


def interpreter_paths(python: Path) -> tuple[Path, ...]:
    """What a jailed ``python`` must read: its environment and the Python it is made of."""
    real = Path(os.path.realpath(python))
    return (python.parent.parent, real.parent.parent)


def _default_hidden() -> tuple[Path, ...]:
    places = {Path("/tmp"), Path("/var/tmp")}  # noqa: S108 - hidden, not used
    # Sockets on a read-only mount still accept connections: /run holds the host's
    # (docker.sock, the D-Bus system bus), so the jail sees an empty one.
    if Path("/run").is_dir():
        places.add(Path("/run"))
    with contextlib.suppress(RuntimeError, KeyError):
        places.add(Path.home())
    return tuple(sorted(places))


def _real(path: Path) -> str:
    return os.path.realpath(path)


def signal_of(returncode: int) -> int | None:
    """The signal that ended a jailed process: bubblewrap exits with 128 + its number."""
    return returncode - 128 if 128 < returncode < 128 + 65 else None


def host_pid(outer: int, inner: int) -> int | None:
    """The host's pid of the jailed process whose pid inside its namespace is ``inner``
    (``outer``: bubblewrap's pid), found through /proc/<pid>/status's NSpid."""
    from ..process import descendants

    for pid in descendants(outer):
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == str(inner):
                    return pid
    return None
