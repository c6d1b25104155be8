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
    """The sdist and the wheel of ``source``, built from a copy of it in ``build_dir``."""
    copy, out_dir = build_dir / "src", build_dir / "dist"
    shutil.copytree(source, copy, symlinks=True)
    try:
        observed = jailed_build(copy, out_dir, build_dir, ("--sdist", "--wheel"),
                                timeout=timeout, cache_dir=cache_dir)  # fmt: skip
    except ToolkitError as exc:
        return BuildOutcome(None, None, f"the project does not build: {exc}", "")
    built, behaviour = observed.completed, observed.behaviour
    log = built.stdout + built.stderr
    if built.timed_out:
        return BuildOutcome(None, None, f"the build took longer than {timeout:g}s", log, behaviour)
    wheels, sdists = sorted(out_dir.glob("*.whl")), sorted(out_dir.glob("*.tar.gz"))
    if built.returncode != 0 or len(wheels) != 1 or len(sdists) != 1:
        why = f"the project does not build: {built.tail(3)}"
        return BuildOutcome(None, None, why, log, behaviour)
    return BuildOutcome(wheels[0], sdists[0], None, log, behaviour)


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
