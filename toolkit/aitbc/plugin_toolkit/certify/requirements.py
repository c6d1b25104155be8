"""What a plugin declares it needs: the built wheel's ``Requires-Dist`` and its
``requirements.txt`` (the spec's dependency file), each requirement with its line.

Read without installing anything, so the audit judges the declarations even when the
plugin environment cannot be made, and the runner can name a conflict with the SDK's own
requirements before the installer buries it in a resolver message.  requirements.txt is
read with pip-requirements-parser (pip's own grammar, as pip-audit reads it).
"""

from __future__ import annotations

import email.parser
import functools
import importlib.metadata
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pip_requirements_parser import RequirementsFile

from .base import CheckError
from .model import Finding, Severity
from .specifiers import can_both_hold

SDK = "aitbc-plugins"
REQUIREMENTS_TXT = "requirements.txt"
#: Where a wheel's requirements are written in the project, searched in this order.
DECLARING_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
_MAX_NESTING = 5  # -r inside -r ...


@dataclass(frozen=True)
class Declared:
    requirement: Requirement
    file: str | None  # project-relative; None: the wheel says it, no project file does
    line: int | None
    extra: str | None = None  # the wheel's extra it belongs to

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def where(self) -> str:
        if self.file is None:
            return "the wheel's Requires-Dist"
        return f"{self.file}:{self.line}" if self.line else self.file

    def text(self) -> str:
        """The requirement without its extra marker, as an author would write it."""
        req = Requirement(str(self.requirement))
        if self.extra is not None:
            req.marker = None
        return str(req)


@dataclass
class DeclaredSet:
    wheel: list[Declared] = field(default_factory=list)
    listed: list[Declared] | None = None  # requirements.txt; None: there is none
    findings: list[Finding] = field(default_factory=list)  # unreadable or refused lines

    def direct(self) -> list[Declared]:
        """Every declared requirement the audit judges: the wheel's, then the list's."""
        return [*self.wheel, *(self.listed or [])]


class ConflictWithSdk(CheckError):
    """The plugin requires a version of something the SDK needs that the SDK does not
    accept: no environment can hold both.  The audit names it, at its line; every other
    check it stops says it is blocked by the audit."""

    owner = "audit"


def _locate(workdir: Path, name: str) -> tuple[str | None, int | None]:
    """The line of the project's build files where ``name`` is required."""
    quoted = re.compile(r"""["']\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?=[\[<>=!~;@"' ]|$)""")
    bare = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?=[\[<>=!~;@ ]|$)")
    for filename in DECLARING_FILES:
        try:
            lines = (workdir / filename).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            stripped = line.split("#", 1)[0] if filename != "setup.py" else line
            found = quoted.findall(stripped)
            if filename == "setup.cfg":
                found += bare.findall(stripped)
            if any(canonicalize_name(candidate) == name for candidate in found):
                return filename, number
    return None, None


def _extra_of(req: Requirement) -> str | None:
    match = re.search(r"""extra\s*==\s*["']([^"']+)["']""", str(req.marker or ""))
    return match.group(1) if match else None


def wheel_requirements(wheel: Path, workdir: Path) -> list[Declared]:
    """The wheel's ``Requires-Dist``, every extra included, each located in the project."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(
                n for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            )  # fmt: skip
            text = archive.read(name).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, StopIteration, KeyError) as exc:
        raise CheckError(f"cannot read the wheel's METADATA: {exc or 'none'}") from None
    declared = []
    for raw in email.parser.Parser().parsestr(text).get_all("Requires-Dist") or []:
        try:
            req = Requirement(raw)
        except InvalidRequirement as exc:
            raise CheckError(
                f"the wheel declares an unreadable requirement {raw!r}: {exc}"
            ) from None
        file, line = _locate(workdir, canonicalize_name(req.name))
        declared.append(Declared(req, file, line, _extra_of(req)))
    return declared


def _refused(file: str, line: int, text: str, why: str) -> Finding:
    return Finding("audit.direct-reference", Severity.HIGH, f"{text!r} {why}", file, line)


def _listed(
    workdir: Path, relative: Path, findings: list[Finding], depth: int = 0
) -> list[Declared]:
    """The requirements of a requirements file (and of the files it includes with -r)."""
    path = workdir / relative
    shown = relative.as_posix()
    parsed = RequirementsFile.from_file(str(path), include_nested=False)
    declared: list[Declared] = []
    for req in parsed.requirements:
        line = req.line_number or 0
        if req.is_editable or req.link is not None or req.name is None:
            why = "is a direct URL or local path: PyPI refuses these, and so does certification"
            findings.append(_refused(shown, line, req.line or "", why))
            continue
        try:
            requirement = Requirement(req.line or "")
        except InvalidRequirement:
            requirement = Requirement(f"{req.name}{req.specifier or ''}")
        declared.append(Declared(requirement, shown, line))
    for option in parsed.options:
        included = option.options.get("requirements") or []
        if included and depth < _MAX_NESTING:
            for name in included:
                target = (path.parent / name).resolve()
                if target.is_file() and target.is_relative_to(workdir.resolve()):
                    inner = target.relative_to(workdir.resolve())
                    declared += _listed(workdir, inner, findings, depth + 1)
                    continue
                message = f"-r {name}: not a file of the project"
                findings.append(Finding("audit.requirements-option", Severity.MEDIUM, message,
                                        shown, option.line_number))  # fmt: skip
            continue
        findings.append(Finding(
            "audit.requirements-option", Severity.MEDIUM,
            f"{(option.line or '').strip()!r} is an installer option, not a requirement: a "
            "registry installs the wheel's Requires-Dist and never reads it", shown,
            option.line_number,
        ))  # fmt: skip
    for bad in parsed.invalid_lines:
        first = (bad.error_message or "").strip().splitlines()[0:1] or ["unreadable"]
        findings.append(Finding("audit.unreadable-requirement", Severity.HIGH,
                                f"{(bad.line or '').strip()!r}: {first[0]}", shown,
                                bad.line_number))  # fmt: skip
    return declared


def _same(a: Requirement, b: Requirement) -> bool:
    return (
        a.specifier == b.specifier
        and a.extras == b.extras
        and str(a.marker or "") == str(b.marker or "")
    )


def _disagreements(declared: DeclaredSet) -> list[Finding]:
    """requirements.txt and the wheel must say the same (the wheel's extras aside)."""
    if declared.listed is None:
        return []
    shipped = {d.name: d for d in declared.wheel if d.extra is None}
    listed = {d.name: d for d in declared.listed}
    findings = []
    for name, wheel in shipped.items():
        other = listed.get(name)
        if other is None:
            message = (f"{wheel.where} requires {wheel.text()!r}, which {REQUIREMENTS_TXT} "
                       "does not list")  # fmt: skip
            findings.append(Finding("audit.declared-mismatch", Severity.MEDIUM, message,
                                    wheel.file, wheel.line))  # fmt: skip
        elif not _same(wheel.requirement, other.requirement):
            message = (f"{other.where} says {other.text()!r} but {wheel.where} (the wheel) "
                       f"says {wheel.text()!r}")  # fmt: skip
            findings.append(Finding("audit.declared-mismatch", Severity.MEDIUM, message,
                                    other.file, other.line))  # fmt: skip
    for name, other in listed.items():
        if name not in shipped:
            where = next((d.where for d in declared.wheel if d.name == name), None)
            also = f" (only in the wheel's extras, at {where})" if where else ""
            message = (
                f"{other.where} lists {other.text()!r}, which the wheel does not "
                f"require{also}: a registry installs the wheel's requirements only"
            )
            findings.append(Finding("audit.declared-mismatch", Severity.MEDIUM, message,
                                    other.file, other.line))  # fmt: skip
    return findings


def declared_requirements(wheel: Path, workdir: Path) -> DeclaredSet:
    declared = DeclaredSet(wheel=wheel_requirements(wheel, workdir))
    for item in declared.wheel:
        if item.requirement.url:
            why = "is a direct URL or local path: PyPI refuses these, and so does certification"
            declared.findings.append(
                _refused(item.file or "METADATA", item.line or 0, item.text(), why)
            )
    if (workdir / REQUIREMENTS_TXT).is_file():
        declared.listed = _listed(workdir, Path(REQUIREMENTS_TXT), declared.findings)
    declared.findings += _disagreements(declared)
    return declared


@functools.cache  # the installed SDK does not change under a running toolkit
def sdk_requirements() -> dict[str, Requirement]:
    """What the SDK itself requires at run time (its extras left out), by canonical name.
    Callers must not change the mapping: it is shared."""
    wanted: dict[str, Requirement] = {}
    env = {str(k): str(v) for k, v in default_environment().items()}
    for raw in importlib.metadata.requires(SDK) or []:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            wanted[canonicalize_name(req.name)] = req
    return wanted


def sdk_conflicts(declared: list[Declared], sdk: dict[str, Requirement]) -> list[Finding]:
    """A finding for each declared requirement no version of which the SDK accepts."""
    findings, seen = [], set()
    for item in declared:
        theirs = sdk.get(item.name)
        key = (item.name, str(item.requirement.specifier))
        if theirs is None or key in seen or item.extra is not None:
            continue
        seen.add(key)
        if not can_both_hold(item.requirement.specifier, theirs.specifier):
            message = (f"{item.text()!r} conflicts with the SDK's own requirement "
                       f"{item.requirement.name + str(theirs.specifier)!r} ({SDK}): no "
                       "version satisfies both, so no "
                       "environment can hold the plugin")  # fmt: skip
            findings.append(Finding("audit.sdk-conflict", Severity.HIGH, message,
                                    item.file, item.line))  # fmt: skip
    return findings


def check_installable(wheel: Path, workdir: Path) -> None:
    """Raise :class:`ConflictWithSdk` when the wheel requires what the SDK refuses."""
    try:
        found = sdk_conflicts(wheel_requirements(wheel, workdir), sdk_requirements())
    except (CheckError, importlib.metadata.PackageNotFoundError):
        return  # the audit reports an unreadable wheel; the installer says the rest
    if found:
        first = found[0]
        where = f"{first.file}:{first.line}: " if first.file and first.line else ""
        raise ConflictWithSdk(where + first.message)


__all__ = [
    "SDK", "ConflictWithSdk", "Declared", "DeclaredSet", "check_installable",
    "declared_requirements", "sdk_conflicts", "sdk_requirements", "wheel_requirements",
]  # fmt: skip
