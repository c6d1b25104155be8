"""`aitbc-plugin check`: the fast part of certification, for the edit loop and the
pre-commit hook, in about a second.  It reads the source tree as it is, builds
nothing and runs no plugin code:

- ``interface``, the static half: mypy (its incremental cache kept per project, the
  one certify keeps) checks the plugin's package, copied from the project as
  ``pyproject.toml`` maps it, beside the interface probe of the entry point that
  ``pyproject.toml`` declares, against the SDK installed beside this toolkit;
- ``security``: bandit and the toolkit's own rule over the files named (pre-commit
  passes the changed ones), or over every Python file of the project.

What it does not do is everything certify does with a wheel: what the build ships, the
run-time signatures, the metadata, the audit, the lifecycle and the tests.  It never
certifies: its report says PASSED (only: ...), never CERTIFIED.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aitbc.plugins import __version__

from ..data import data_dir
from ..errors import ToolkitError
from .base import CheckContext, CheckError, result
from .checks import _shipped, scanned
from .checks.interface import InterfaceCheck, split_entry_point
from .checks.security import SecurityCheck
from .model import CertificationReport, CheckResult
from .policy import load_policy
from .runner import error_result

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_POINT_GROUP = "aitbc.plugins"
QUICK_CHECKS = ("interface", "security")


@dataclass(frozen=True)
class Layout:
    """Where the plugin's package is, as ``pyproject.toml`` says (no code is run)."""

    entry_point: str
    package: str  # the top-level import name
    folder: Path  # the folder holding the package's modules


def static_layout(project: Path) -> Layout:
    """The entry point and package folder from ``pyproject.toml``; a ToolkitError
    saying what is missing when they are not declared there."""
    path = project / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ToolkitError(f"{path}: cannot read it ({exc}); check needs pyproject.toml") from None
    points = data.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    if not isinstance(points, dict) or len(points) != 1:
        raise ToolkitError(f'{path}: check needs one [project.entry-points."{ENTRY_POINT_GROUP}"]'
                           " entry; run certify for a plugin declared otherwise")  # fmt: skip
    (entry_point,) = points.values()
    try:
        module, _ = split_entry_point(str(entry_point))
    except ValueError as exc:
        raise ToolkitError(f"{path}: {exc}") from None
    package = module.split(".")[0]
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    mapping = mapping if isinstance(mapping, dict) else {}
    if package in mapping:
        folder = project / str(mapping[package])
    elif "" in mapping:
        folder = project / str(mapping[""]) / package
    else:
        folder = next(
            (f for f in (project / package, project / "src" / package) if f.is_dir()),
            project / package,
        )
    resolved = folder.resolve()
    if not resolved.is_dir() or not resolved.is_relative_to(project.resolve()):
        raise ToolkitError(f"{path}: the package {package} is not a folder of the project")
    return Layout(str(entry_point), package, resolved)


def package_modules(layout: Layout, project: Path) -> dict[str, Path]:
    """The package's modules as a wheel would place them (``pkg/mod.py``) -> their
    project file; tests and scaffolding left out, as the build leaves them out."""
    found = {}
    for path in scanned.project_files(project, layout.folder):
        if path.suffix not in _shipped.SOURCE_SUFFIXES:
            continue
        relative = PurePosixPath(path.relative_to(layout.folder).as_posix())
        if any(part.startswith(".") or part in _shipped.NOT_SOURCE for part in relative.parts):
            continue
        shipped = f"{layout.package}/{relative}"
        if relative.parts[0] in ("tests", "test", "docs") or _shipped.is_test_or_scaffolding(
            str(relative)
        ):
            continue
        found[shipped] = path
    return found


def quick_check(project: Path, files: list[Path], policy_file: Path | None = None) -> (
    CertificationReport
):  # fmt: skip
    """The interface (static) and security verdicts on ``project``'s source; bandit over
    ``files`` when given (the changed ones), else over every Python file."""
    if not project.is_dir():
        raise ToolkitError(f"{project}: no such project directory")
    project = project.resolve()
    policy = load_policy(data_dir("checks"), policy_file)
    layout = static_layout(project)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ToolkitError(f"no such file: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="aitbc-check-") as scratch_name:
        scratch = Path(scratch_name)
        context = CheckContext(project=project, workdir=project, scratch=scratch,
                               policy=policy, checks_dir=data_dir("checks"))  # fmt: skip
        with ThreadPoolExecutor(2) as pool:  # mypy and bandit are processes: both at once
            interface = pool.submit(_interface, context, layout)
            security = pool.submit(_security, context, layout, files)
            checks = (interface.result(), security.result())
    failed = tuple(f"{c.id} {c.status.value}: {c.summary}" for c in checks if not c.passes)
    return CertificationReport(
        isolation={"level": "none", "mechanism": "none: no plugin code runs", "contained": [],
                   "missing": []},
        behaviour={},
        certified=False,
        plugin={"project": str(project), "policy": policy.source,
                "entry_point": layout.entry_point},
        checks=checks,
        artifacts=(),
        registry_entry=None,
        toolkit={"version": __version__, "mode": "check: the source, no build, no plugin code"},
        reasons=failed,
        only=QUICK_CHECKS,
    )  # fmt: skip


def _timed(check_id: str, work: Any, *args: Any) -> CheckResult:
    began = time.perf_counter()
    try:
        done: CheckResult = work(*args, lambda: time.perf_counter() - began)
        return done
    except (CheckError, ToolkitError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        return error_result(check_id, time.perf_counter() - began, reason)


def _interface(context: CheckContext, layout: Layout) -> CheckResult:
    def work(elapsed: Any) -> CheckResult:
        root = context.scratch / "src"
        modules = package_modules(layout, context.project)
        for shipped, path in modules.items():
            (root / shipped).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / shipped)
        origins = {s: p.relative_to(context.project).as_posix() for s, p in modules.items()}
        code = _shipped.ShippedCode(root, tuple(sorted(modules)), origins)
        site_packages = Path(sysconfig.get_paths()["purelib"])  # where this SDK is
        check = InterfaceCheck()
        static = check.static_half(context, code, layout.entry_point, site_packages, None)
        summary = (
            f"{len(static.findings)} interface error(s) in {layout.entry_point}"
            if static.findings
            else f"{layout.entry_point} implements its kind's interface (mypy, the source; "
            "certify compares its run-time signatures too)"
        )
        return result("interface", static.findings, elapsed(), summary,
                      other_type_errors=len(static.ignored),
                      disregarded_suppressions=static.disregarded)  # fmt: skip

    return _timed("interface", work)


def _security(context: CheckContext, layout: Layout, files: list[Path]) -> CheckResult:
    def work(elapsed: Any) -> CheckResult:
        project = context.project
        ships = set(package_modules(layout, project).values())
        chosen = [f.resolve() for f in files] if files else [
            p for p in scanned.project_files(project) if p.suffix in scanned.PYTHON_SUFFIXES
        ]  # fmt: skip
        targets = [
            scanned.Target(path, path.relative_to(project).as_posix(),
                           scanned.SHIPS if path in ships else "a project file")
            for path in chosen
            if path.suffix in scanned.PYTHON_SUFFIXES and path.is_relative_to(project)
        ]  # fmt: skip
        return SecurityCheck().scan(context, targets, [], elapsed)

    return _timed("security", work)
