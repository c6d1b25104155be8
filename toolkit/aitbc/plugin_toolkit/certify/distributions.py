"""The build stage every other check stands on: sdist and wheel with pypa `build`.

`python -m build` with both targets builds the sdist, then the wheel *from the
sdist*, exactly as a registry user would rebuild it.  SOURCE_DATE_EPOCH is fixed so
the wheel is byte-for-byte reproducible.
"""

from __future__ import annotations

import configparser
import email.parser
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aitbc.plugins.process import run

from .base import PluginInfo

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


def build_environment() -> dict[str, str]:
    return {"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PYTHONHASHSEED": "0"}


def build_command(source: Path, out_dir: Path, *targets: str) -> list[str]:
    command = [sys.executable, "-m", "build", *targets, "--outdir", str(out_dir)]
    try:
        import uv  # noqa: F401  - build's `--installer uv` makes isolated builds fast

        command += ["--installer", "uv"]
    except ImportError:
        pass
    return [*command, str(source)]


def build_distributions(source: Path, out_dir: Path, timeout: float) -> BuildOutcome:
    built = run(
        build_command(source, out_dir, "--sdist", "--wheel"),
        timeout=timeout,
        env=build_environment(),
    )
    log = built.stdout + built.stderr
    if built.timed_out:
        return BuildOutcome(None, None, f"the build took longer than {timeout:g}s", log)
    wheels, sdists = sorted(out_dir.glob("*.whl")), sorted(out_dir.glob("*.tar.gz"))
    if built.returncode != 0 or len(wheels) != 1 or len(sdists) != 1:
        return BuildOutcome(None, None, f"the project does not build: {built.tail(3)}", log)
    return BuildOutcome(wheels[0], sdists[0], None, log)


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
