"""The build stage every other check stands on: sdist and wheel, built by pypa `build`.

`build`'s ProjectBuilder calls the project's PEP 517 hooks, each in a Python of the
build environment (build_env.py, made beforehand) that runs in the kernel jail on a
copy of the project, with no network: the hooks run the plugin's own code (its
`setup.py`, an in-tree backend).  Only the hook runs there, not `python -m build`
around it: one Python start per distribution instead of two (0.42 s against 0.62 s
for a wheel of a generated plugin).  SOURCE_DATE_EPOCH is fixed so the wheel is
byte-for-byte reproducible; the build check rebuilds it from the sdist, as a registry
user would.
"""

from __future__ import annotations

import configparser
import contextlib
import email.parser
import json
import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aitbc.plugins.sandbox.jail import Observed, interpreter_paths, run_observed, seen_inside
from aitbc.plugins.sandbox.trace import Behaviour

from ..errors import ToolkitError
from ..files import write_atomic
from .base import PluginInfo
from .build_env import build_python, build_requirements

#: 1980-01-01, the earliest time a zip file can hold.  Anyone rebuilding with this
#: value set gets the registry's checksum.
SOURCE_DATE_EPOCH = 315532800
ENTRY_POINT_GROUP = "aitbc.plugins"


@dataclass(frozen=True)
class BuildOutcome:
    wheel: Path | None
    sdist: Path | None
    error: str | None
    log: str
    behaviour: Behaviour | None = None  # what the build did, when it ran (and was watched)


def build_environment() -> dict[str, str]:
    return {"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PYTHONHASHSEED": "0"}


#: pyproject_hooks' answer file: a hook's return value is a file name, a few bytes.
MAX_HOOK_ANSWER = 1 << 20
Distribution = Literal["wheel", "sdist"]


def jailed_build(
    source: Path, out_dir: Path, scratch: Path, distribution: Distribution, *, timeout: float,
    cache_dir: Path,
) -> Observed:  # fmt: skip
    """Build ``source``'s ``distribution`` (inside ``scratch``, the one folder the build
    may write) into ``out_dir``, its hook in the kernel jail where the machine has one,
    watched from outside.  Raises ToolkitError when the build environment cannot be
    made, or the project's build system cannot even be read."""
    from build import BuildBackendException, BuildException, ProjectBuilder  # 0.1 s: when used

    python = build_python(build_requirements(source), cache_dir, timeout)
    hook = _JailedHook(python, scratch, timeout)
    try:
        builder = ProjectBuilder(source, python_executable=str(python), runner=hook)
        # The hook's return value (a name the plugin's code chose) is not used: the
        # callers look in out_dir for what was built.
        builder.build(distribution, out_dir)
    except BuildBackendException as exc:
        if hook.observed is None or hook.observed.completed.returncode == 0:
            raise ToolkitError(f"the build backend gave no answer: {exc}") from None
    except BuildException as exc:  # pyproject.toml's [build-system] is not usable
        raise ToolkitError(str(exc)) from None
    if hook.observed is None:
        raise ToolkitError("the build backend was never called")
    return hook.observed


class _JailedHook:
    """pyproject_hooks' subprocess runner: the hook's Python in the jail.  The hook talks
    through files in a folder of ours (``input.json`` in, ``output.json`` out), which
    the jail cannot see: they are copied into a folder of ``scratch`` and back, the
    answer bounded, and its warnings (text of the plugin's choosing, which pypa `build`
    would print in this process) dropped."""

    def __init__(self, python: Path, scratch: Path, timeout: float) -> None:
        self.python, self.scratch, self.timeout = python, scratch, timeout
        self.observed: Observed | None = None

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        _, script, hook_name, control = cmd
        inside = Path(tempfile.mkdtemp(prefix=".pep517-", dir=self.scratch))
        asked = (Path(control) / "input.json").read_text(encoding="utf-8")  # the out folder
        (inside / "input.json").write_text(seen_inside(self.scratch, asked), encoding="utf-8")
        shutil.copyfile(script, inside / "_in_process.py")
        self.observed = run_observed(
            [str(self.python), str(inside / "_in_process.py"), hook_name, str(inside)],
            scratch=self.scratch,
            cwd=Path(cwd or self.scratch),
            timeout=self.timeout,
            env={**build_environment(), **(extra_environ or {})},
            readable=interpreter_paths(self.python),
        )
        done = self.observed.completed
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode or -1, cmd)
        with contextlib.suppress(ValueError):  # no answer: pyproject_hooks says so
            data = json.loads(_read_answer(inside) or b"null")
            if isinstance(data, dict):
                data.pop("warnings", None)
                write_atomic(Path(control) / "output.json", json.dumps(data).encode())


def _read_answer(folder: Path) -> bytes | None:
    """``folder/output.json`` if it is a regular file of bounded size.  The jailed hook
    could have left a link there (to a file of the user's), a FIFO (whose read would
    block) or the folder itself replaced by a link: none is followed or read.  Its
    writer is dead by now (the run killed its tree), so nothing changes meanwhile."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        where = os.open(folder, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        handle = os.open("output.json", flags, dir_fd=where)
    except OSError:
        return None
    finally:
        os.close(where)
    with os.fdopen(handle, "rb") as answer:
        found = os.fstat(answer.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_HOOK_ANSWER:
            return None
        return answer.read(MAX_HOOK_ANSWER + 1)


def build_distributions(
    source: Path, build_dir: Path, timeout: float, cache_dir: Path
) -> BuildOutcome:
    """The sdist and the wheel of ``source``, each built from a copy of it in
    ``build_dir``, both at once: what `python -m build --sdist --wheel` makes (the wheel
    from the tree), in the time of the slower one.  Each copy is its own, because the
    backend writes into the tree it builds (``*.egg-info``)."""
    targets: tuple[Distribution, ...] = ("wheel", "sdist")
    with ThreadPoolExecutor(2) as pool:
        wheel, sdist = pool.map(
            lambda target: _build_one(source, build_dir / target, target, timeout, cache_dir),
            targets,
        )
    behaviour = merged_behaviour(wheel.behaviour, sdist.behaviour)
    log = wheel.log + sdist.log
    problem = wheel.error or sdist.error
    if problem is not None or wheel.wheel is None or sdist.sdist is None:
        return BuildOutcome(None, None, problem or "the project does not build", log, behaviour)
    # Both in one folder, as one build (and a reused build) leaves them: the result cache
    # names the wheel by its place in the run.
    out_dir = build_dir / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = [path.rename(out_dir / path.name) for path in (wheel.wheel, sdist.sdist)]
    return BuildOutcome(artifacts[0], artifacts[1], None, log, behaviour)


def _build_one(source: Path, folder: Path, target: Distribution, timeout: float,
               cache_dir: Path) -> BuildOutcome:  # fmt: skip
    copy, out_dir = folder / "src", folder / "dist"
    shutil.copytree(source, copy, symlinks=True)
    try:
        observed = jailed_build(copy, out_dir, folder, target, timeout=timeout,
                                cache_dir=cache_dir)  # fmt: skip
    except ToolkitError as exc:
        return BuildOutcome(None, None, f"the project does not build: {exc}", "")
    built, behaviour = observed.completed, observed.behaviour
    log = built.stdout + built.stderr
    if built.timed_out:
        return BuildOutcome(None, None, f"the build took longer than {timeout:g}s", log, behaviour)
    found = sorted(out_dir.glob("*.whl" if target == "wheel" else "*.tar.gz"))
    if built.returncode != 0 or len(found) != 1:
        why = f"the project does not build: {built.tail(3)}"
        return BuildOutcome(None, None, why, log, behaviour)
    if target == "wheel":
        return BuildOutcome(found[0], None, None, log, behaviour)
    return BuildOutcome(None, found[0], None, log, behaviour)


def merged_behaviour(*records: Behaviour | None) -> Behaviour | None:
    """Several builds of one project, as one phase."""
    watched = [r for r in records if r is not None]
    if not watched:
        return None
    actions = tuple(dict.fromkeys(a for r in watched for a in r.actions))
    return Behaviour(actions, complete=all(r.complete for r in watched))


def plugin_info(wheel: Path) -> tuple[PluginInfo | None, str | None]:
    """What the wheel says the plugin is; or why it cannot say."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info_dir = next((n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")), None)
        if info_dir is None:
            return None, "the wheel has no METADATA"
        meta = email.parser.Parser().parsestr(archive.read(f"{info_dir}/METADATA").decode())
        entry_text = (
            archive.read(f"{info_dir}/entry_points.txt").decode()
            if f"{info_dir}/entry_points.txt" in names
            else ""
        )
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(entry_text)
    if not parser.has_section(ENTRY_POINT_GROUP) or not parser.items(ENTRY_POINT_GROUP):
        return None, f"the wheel declares no entry point in the group {ENTRY_POINT_GROUP!r}"
    entries = parser.items(ENTRY_POINT_GROUP)
    if len(entries) != 1:
        return None, f"the wheel declares {len(entries)} plugins; certify one plugin per project"
    name, target = entries[0]
    return PluginInfo(
        name=name.strip(),
        version=meta["Version"] or "",
        distribution=meta["Name"] or "",
        module=target.strip().split(":")[0].split(".")[0],
        entry_point=target.strip(),
    ), None
