"""The `build` check."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from aitbc.plugins.registry import sha256_file
from aitbc.plugins.sandbox.trace import Behaviour
from packaging.metadata import InvalidMetadata, Metadata

from ...errors import ToolkitError
from ..base import CheckContext, CheckError, result, timed
from ..behaviour import declared_permissions, judge
from ..cache import cache_root
from ..distributions import jailed_build
from ..model import CheckResult, Finding, Severity
from . import _shipped

_STRAY_NAMES = {"setup.py", "conftest.py", "setup.cfg", "pyproject.toml", "requirements.txt"}


def content_findings(wheel: Path, module: str) -> list[Finding]:
    findings = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info_dir = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata_text = archive.read(f"{info_dir}/METADATA").decode("utf-8", "replace")
    if f"{module}/__init__.py" not in names:
        findings.append(
            Finding(
                "build.package-missing",
                Severity.HIGH,
                f"the wheel does not contain the package {module}/",
            )
        )
    for name in names:
        top = name.partition("/")[0]
        if top in (info_dir, info_dir.replace(".dist-info", ".data")):
            continue
        parts = name.split("/")
        if top != module:
            findings.append(
                Finding(
                    "build.stray-file", Severity.HIGH, f"{name} is outside the package {module}/"
                )
            )
        elif "tests" in parts[1:-1] or parts[-1] in _STRAY_NAMES or parts[-1].startswith("test_"):
            findings.append(
                Finding(
                    "build.tests-in-wheel",
                    Severity.MEDIUM,
                    f"{name} is a test or build file shipped in the wheel",
                )
            )
    findings += metadata_findings(metadata_text)
    return findings


def metadata_findings(text: str) -> list[Finding]:
    try:
        metadata = Metadata.from_email(text, validate=True)
    except Exception as exc:  # packaging raises an ExceptionGroup of InvalidMetadata
        problems = getattr(exc, "exceptions", None) or [exc]
        return [
            Finding("build.metadata", Severity.HIGH, f"METADATA: {problem}")
            for problem in problems
            if isinstance(problem, (InvalidMetadata, ValueError))
        ] or [Finding("build.metadata", Severity.HIGH, f"METADATA unreadable: {exc}")]
    content_type = (metadata.description_content_type or "text/x-rst").split(";")[0].strip()
    if metadata.description and content_type == "text/x-rst":
        from readme_renderer.rst import render

        if render(metadata.description) is None:
            return [
                Finding(
                    "build.description",
                    Severity.MEDIUM,
                    "the long description is not valid reStructuredText (PyPI would reject it)",
                )
            ]
    return []


class BuildCheck:
    """The wheel holds the plugin's package and nothing stray, its metadata is valid,
    and rebuilding it from the sdist gives the same bytes.

    A file outside the plugin's package is a finding, and so is a test or build file
    (`tests/`, `test_*.py`, `setup.py`, `conftest.py`...) shipped inside it.  The
    wheel's METADATA must validate (packaging) and its long description must render
    as PyPI renders it.  The wheel is then rebuilt from the sdist with
    `SOURCE_DATE_EPOCH` fixed: a different sha256 means the registry's checksum could
    not be verified by anyone, and fails the check."""

    id = "build"
    title = "Reproducible wheel and sdist with checksums"
    security = False
    needs_wheel = True

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            wheel, plugin = context.built_plugin()
            findings = content_findings(wheel, plugin.module)
            rebuilt, why, watched = self._rebuild_from_sdist(context)
            if rebuilt is None:
                raise CheckError(f"rebuilding from the sdist failed: {why}")
            behaviour = _merged(context.build_behaviour, watched)
            seen, record = judge(self.id, "build", behaviour, declared_permissions(context))
            findings += seen
            wheel_sha = sha256_file(wheel)
            rebuilt_sha = sha256_file(rebuilt)
            if rebuilt_sha != wheel_sha:
                findings.append(
                    Finding(
                        "build.not-reproducible",
                        Severity.HIGH,
                        f"rebuilding the wheel from the sdist gave sha256 {rebuilt_sha[:16]}..., "
                        f"not {wheel_sha[:16]}...; the registry checksum could not be verified",
                    )
                )
        summary = (
            f"wheel and sdist built; the wheel rebuilds byte for byte (sha256 {wheel_sha[:16]}...)"
            if not findings
            else f"{len(findings)} build problem(s)"
        )
        return result(self.id, findings, elapsed(), summary, wheel_sha256=wheel_sha,
                      behaviour=record)  # fmt: skip

    @staticmethod
    def _rebuild_from_sdist(context: CheckContext) -> tuple[Path | None, str, Behaviour | None]:
        wheel, _ = context.built_plugin()
        if context.sdist is None:
            return None, "no sdist was built", None
        work = context.scratch / "rebuild"
        with tarfile.open(context.sdist) as archive:
            archive.extractall(work / "src", filter="data")
        roots = [p for p in (work / "src").iterdir() if p.is_dir()]
        if len(roots) != 1:
            return None, "the sdist does not hold exactly one source folder", None
        try:
            timeout = context.policy.tool_timeout_s
            observed = jailed_build(
                roots[0], work / "dist", work, ("--wheel",), timeout=timeout, cache_dir=cache_root()
            )
        except ToolkitError as exc:
            return None, str(exc), None
        run, rebuilt = observed.completed, work / "dist" / wheel.name
        if run.timed_out or run.returncode != 0 or not rebuilt.is_file():
            return None, run.tail(3), observed.behaviour
        return rebuilt, "", observed.behaviour

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        # Not the sdist's bytes: its gzip header carries the build time.  The sources and
        # build files decide the sdist, and the wheel's bytes are reproducible.
        if context.wheel is None:
            return None
        project = context.workdir
        return [context.wheel, *_shipped.project_sources(project), *_shipped.build_files(project)]


def _merged(*records: Behaviour | None) -> Behaviour | None:
    """The build from the tree and the rebuild from the sdist, as one phase."""
    watched = [r for r in records if r is not None]
    if not watched:
        return None
    actions = tuple(dict.fromkeys(a for r in watched for a in r.actions))
    return Behaviour(actions, complete=all(r.complete for r in watched))
