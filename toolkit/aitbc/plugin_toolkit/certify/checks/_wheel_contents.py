"""Everything a wheel installs, member by member, read from its zip directory.

A plugin's wheel installs its one package and its own .dist-info, nothing else: not
a `.pth` file (Python runs it at every start), not a `.data/` folder (scripts, headers,
data and purelib/platlib overlays land outside site-packages/<package>), not another
import package or module (it would add to, or overwrite, another distribution's
namespace), and only the entry points hosts are meant to load.  Sizes and compression
ratios come from the zip headers, so nothing is unpacked before it is judged; zipfile
never unpacks a member past the size its header declares.
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..base import PluginInfo
from ..model import Finding, Severity
from ..policy import BuildLimits
from . import _shipped
from ._archive import RATIO_FLOOR, SizeLimits, capped, mib, unsafe_reason
from ._entry_points import entry_point_findings

#: Where each folder of `<name>.data/` installs (the wheel spec's scheme keys).
_DATA_TARGETS = {
    "scripts": "the environment's bin/ (commands on PATH)",
    "data": "the environment's prefix (any path below it)",
    "headers": "the environment's include/ folder",
    "purelib": "site-packages, beside every other package",
    "platlib": "site-packages, beside every other package",
}
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")
_HIGH = Severity.HIGH


@dataclass
class WheelContents:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reported, never failed
    metadata: str | None = None  # METADATA's text, when the wheel has a readable one


def inspect_wheel(wheel: Path, plugin: PluginInfo, build: BuildLimits) -> WheelContents:
    """What is wrong with what ``wheel`` installs; notes on what is merely unusual."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            return _inspect(archive, wheel, plugin, build)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        return WheelContents(
            [Finding("build.unreadable", _HIGH, f"the wheel is unreadable: {why}")]
        )


def _inspect(
    archive: zipfile.ZipFile, wheel: Path, plugin: PluginInfo, build: BuildLimits
) -> WheelContents:
    found = WheelContents()
    infos = archive.infolist()
    found.findings += size_findings(infos, wheel.stat().st_size, SizeLimits.from_policy(build))
    found.findings += name_findings([info.filename for info in infos])
    names = [i.filename for i in infos if unsafe_reason(i.filename) is None and not i.is_dir()]
    info_dir = own_info_dir(wheel.name, names)
    module = plugin.module
    owner = reserved_import_names().get(module)
    if owner is not None:
        found.findings.append(
            Finding(
                "build.foreign-module",
                _HIGH,
                f"the plugin's package {module}/ is the import name of {owner}, which every "
                f"plugin environment has: installing the wheel would overwrite it",
            )
        )
    if f"{module}/__init__.py" not in names:
        found.findings.append(
            Finding(
                "build.package-missing", _HIGH, f"the wheel does not contain the package {module}/"
            )
        )
    foreign: dict[str, list[str]] = {}
    for name in names:
        verdict = judge_member(name, module, info_dir)
        if isinstance(verdict, Finding):
            found.findings.append(verdict)
        elif verdict == "foreign":
            foreign.setdefault(name.partition("/")[0], []).append(name)
        elif verdict is not None:
            found.notes.append(verdict)
    found.findings += [_foreign(top, members, module) for top, members in foreign.items()]
    if not any(f.rule in ("build.too-large", "build.compression-ratio") for f in found.findings):
        found.findings += _unreadable_members(archive, infos)  # bounded: the sizes are fine
        found.metadata, more = _own_metadata(archive, info_dir, plugin, build, set(names))
        found.findings += more
    found.findings = capped(found.findings)
    return found


def size_findings(infos: list[zipfile.ZipInfo], packed: int, limits: SizeLimits) -> list[Finding]:
    findings = []
    if packed > limits.max_artifact:
        findings.append(
            Finding(
                "build.too-large",
                _HIGH,
                f"the wheel is {mib(packed)}, over {mib(limits.max_artifact)}",
            )
        )
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.max_artifact:
        findings.append(
            Finding(
                "build.too-large",
                _HIGH,
                f"the wheel unpacks to {mib(unpacked)}, over {mib(limits.max_artifact)}",
            )
        )
    for info in infos:
        name, size = info.filename, info.file_size
        if size > limits.max_file:
            findings.append(
                Finding(
                    "build.too-large",
                    _HIGH,
                    f"{name} unpacks to {mib(size)}, over {mib(limits.max_file)}",
                    name,
                )
            )
        if size >= RATIO_FLOOR and size > limits.max_ratio * info.compress_size:
            ratio = f"{size / info.compress_size:.0f}:1" if info.compress_size else "from nothing"
            findings.append(
                Finding(
                    "build.compression-ratio",
                    _HIGH,
                    f"{name} unpacks {ratio} to {mib(size)}, over the limit of "
                    f"{limits.max_ratio:g}:1 (a zip bomb)",
                    name,
                )
            )
    return findings


def name_findings(names: list[str]) -> list[Finding]:
    """Unsafe paths, and members another member would overwrite or could not sit beside."""
    findings = []
    seen: set[str] = set()
    folders = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    for name in names:
        why = unsafe_reason(name)
        if why is not None:
            findings.append(
                Finding(
                    "build.unsafe-path",
                    _HIGH,
                    f"{name!r} is an unsafe path ({why}): installing it could "
                    "write outside site-packages",
                    name,
                )
            )
            continue
        key = name.rstrip("/")
        if key in seen:
            findings.append(
                Finding(
                    "build.duplicate-member",
                    _HIGH,
                    f"{name} is in the wheel twice: which one installs is up to "
                    "the installer, and need not be the one checked",
                    name,
                )
            )
        elif not name.endswith("/") and key in folders:
            findings.append(
                Finding(
                    "build.duplicate-member",
                    _HIGH,
                    f"{name} is a file and a folder of other members at once",
                    name,
                )
            )
        seen.add(key)
    return findings


def own_info_dir(wheel_name: str, names: list[str]) -> str | None:
    """The wheel's own .dist-info: the one its file name names (else the only one)."""
    dirs = sorted(
        {
            n.split("/")[0]
            for n in names
            if n.count("/") == 1
            and n.split("/")[0].endswith(".dist-info")
            and n.endswith("/METADATA")
        }
    )
    try:
        name, version, _, _ = parse_wheel_filename(wheel_name)
    except InvalidWheelFilename:
        return dirs[0] if len(dirs) == 1 else None
    for candidate in dirs:
        stem, _, tail = candidate[: -len(".dist-info")].rpartition("-")
        if canonicalize_name(stem) == name and tail == str(version):
            return candidate
    return dirs[0] if len(dirs) == 1 else None


def judge_member(name: str, module: str, info_dir: str | None) -> Finding | str | None:
    """A finding for a member the wheel must not install, "foreign" for a member of
    another import name (reported once per name), a note, or None when it is fine."""
    top, _, rest = name.partition("/")
    if name.lower().endswith(".pth"):
        return Finding(
            "build.pth-file",
            _HIGH,
            f"{name} is a .pth file: Python runs the import lines of a .pth file in "
            "site-packages at every start of the environment",
            name,
        )
    if top.endswith(".data") and rest:
        scheme = rest.partition("/")[0]
        where = _DATA_TARGETS.get(scheme, f"a place the installer knows as {scheme!r}")
        return Finding(
            "build.data-dir",
            _HIGH,
            f"{name} is under {top}/, which installs it into {where}, outside the "
            f"plugin's package {module}/",
            name,
        )
    if top == info_dir and rest:
        return None
    if top.endswith(".dist-info") and rest:
        return "foreign"
    if top == module and rest:
        leaf = rest.rsplit("/", 1)[-1]
        if leaf in _shipped.BUILD_FILES:
            return Finding(
                "build.scaffolding-in-wheel",
                _HIGH,
                f"{name} is a build file shipped in the wheel: the project's build "
                "scaffolding, installed as a module of the plugin",
                name,
            )
        if _shipped.is_test_or_scaffolding(rest):
            return f"{name} is a test file shipped in the wheel (a note, not a failure)"
        return None
    if _importable(top, is_folder=bool(rest)):
        return "foreign"
    return Finding("build.stray-file", _HIGH, f"{name} is outside the package {module}/", name)


def _importable(top: str, *, is_folder: bool) -> bool:
    if is_folder:
        return top.isidentifier()
    return top.split(".")[0].isidentifier() and top.endswith(_MODULE_SUFFIXES)


def _foreign(top: str, members: list[str], module: str) -> Finding:
    listed = ", ".join(members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else "")
    if top.endswith(".dist-info"):
        what = f"the metadata of another distribution ({top}/)"
    elif len(members) == 1 and "/" not in members[0]:
        what = f"the top-level module {top.split('.')[0]!r}"
    else:
        what = f"the import package {top!r}"
    return Finding(
        "build.foreign-module",
        _HIGH,
        f"{listed}: {what}, not the plugin's package {module}/; installing the wheel "
        "would add to or overwrite another distribution's files",
        members[0],
    )


def _unreadable_members(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> list[Finding]:
    """Members whose data does not unpack (or fails its CRC): what the other checks read."""
    findings = []
    for info in infos:
        try:
            with archive.open(info) as member:
                while member.read(1 << 20):
                    pass
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            findings.append(
                Finding(
                    "build.unreadable",
                    _HIGH,
                    f"{info.filename} does not unpack: {exc}",
                    info.filename,
                )
            )
    return findings


def _own_metadata(
    archive: zipfile.ZipFile,
    info_dir: str | None,
    plugin: PluginInfo,
    build: BuildLimits,
    names: set[str],
) -> tuple[str | None, list[Finding]]:
    if info_dir is None:
        why = "the wheel has no .dist-info of its own (named as the wheel file is) with a METADATA"
        return None, [Finding("build.metadata", _HIGH, why)]
    metadata = archive.read(f"{info_dir}/METADATA").decode("utf-8", "replace")
    entry_points = f"{info_dir}/entry_points.txt"
    if entry_points not in names:
        return metadata, []
    text = archive.read(entry_points).decode("utf-8", "replace")
    allowed = build.allowed_entry_point_groups
    return metadata, entry_point_findings(text, plugin, allowed, entry_points)


@functools.cache
def reserved_import_names() -> dict[str, str]:
    """Import name -> distribution, for the SDK and what it pulls in at runtime: names
    that every plugin environment has, which a plugin's package must not take."""
    names = {"aitbc": "aitbc-plugins"}
    done: set[str] = set()
    queue = ["aitbc-plugins"]
    while queue:
        wanted = canonicalize_name(queue.pop())
        if wanted in done:
            continue
        done.add(wanted)
        try:
            dist = importlib_metadata.distribution(wanted)
        except importlib_metadata.PackageNotFoundError:
            continue
        for top in _top_level_names(dist):
            names.setdefault(top, dist.metadata["Name"] or wanted)
        for line in dist.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                queue.append(requirement.name)
    return names


def _top_level_names(dist: importlib_metadata.Distribution) -> set[str]:
    listed = dist.read_text("top_level.txt")
    if listed is not None:
        return {line.strip() for line in listed.splitlines() if line.strip().isidentifier()}
    tops = set()
    for path in dist.files or []:
        top = path.parts[0] if path.parts else ""
        stem = top.split(".")[0]
        if stem.isidentifier() and (len(path.parts) > 1 or top.endswith(_MODULE_SUFFIXES)):
            tops.add(stem)
    return tops - {"__pycache__"}
