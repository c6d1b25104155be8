"""The build stage every other check stands on: sdist and wheel with pypa `build`.

`python -m build` with both targets builds the sdist, then the wheel *from the
sdist*, exactly as a registry user would rebuild it.  SOURCE_DATE_EPOCH is fixed so
the wheel is byte-for-byte reproducible.  The build runs the plugin's own code (its
`setup.py`, an in-tree backend), so it runs in the kernel jail, on a copy of the
project, in a build environment made beforehand (build_env.py).
"""

from __future__ import annotations

import configparser
import email.parser
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aitbc.plugins.sandbox.jail import Observed, interpreter_paths, run_observed
from aitbc.plugins.sandbox.trace import Behaviour

from ..errors import ToolkitError
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


def build_command(python: Path, source: Path, out_dir: Path, *targets: str) -> list[str]:
    """pypa `build` with the build environment's Python: its requirements are there
    already, and nothing is fetched while the plugin's code runs."""
    return [str(python), "-m", "build", *targets, "--no-isolation", "--skip-dependency-check",
            "--outdir", str(out_dir), str(source)]  # fmt: skip


def jailed_build(
    source: Path, out_dir: Path, scratch: Path, targets: tuple[str, ...], *, timeout: float,
    cache_dir: Path,
) -> Observed:  # fmt: skip
    """Build ``source`` (inside ``scratch``, the one folder the build may write) into
    ``out_dir``, in the kernel jail where the machine has one, watched from outside.
    Raises ToolkitError when the build environment cannot be made."""
    python = build_python(build_requirements(source), cache_dir, timeout)
    return run_observed(
        build_command(python, source, out_dir, *targets),
        scratch=scratch,
        cwd=source,
        timeout=timeout,
        env=build_environment(),
        readable=interpreter_paths(python),
        # The frontend runs the backend's hooks in a Python of its own environment.
        expected_programs=[str(python)],
    )


def build_distributions(
    source: Path, build_dir: Path, timeout: float, cache_dir: Path
) -> BuildOutcome:
    """The sdist and the wheel of ``source``, each built from a copy of it in
    ``build_dir``, both at once: what `python -m build --sdist --wheel` makes (the wheel
    from the tree), in the time of the slower one.  Each copy is its own, because the
    backend writes into the tree it builds (``*.egg-info``)."""
    with ThreadPoolExecutor(2) as pool:
        wheel, sdist = pool.map(
            lambda target: _build_one(source, build_dir / target, target, timeout, cache_dir),
            ("wheel", "sdist"),
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


def _build_one(source: Path, folder: Path, target: str, timeout: float,
               cache_dir: Path) -> BuildOutcome:  # fmt: skip
    copy, out_dir = folder / "src", folder / "dist"
    shutil.copytree(source, copy, symlinks=True)
    try:
        observed = jailed_build(copy, out_dir, folder, (f"--{target}",), timeout=timeout,
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
