"""The `build` check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aitbc.plugins.registry import sha256_file
from aitbc.plugins.sandbox.trace import Behaviour
from packaging.metadata import InvalidMetadata, Metadata

from ...errors import ToolkitError
from ..base import CheckContext, CheckError, result, timed
from ..behaviour import declared_permissions, judge
from ..cache import cache_root
from ..distributions import jailed_build, merged_behaviour
from ..model import CheckResult, Finding, Severity
from ._archive import SizeLimits
from ._sdist_contents import inspect_sdist, unpack
from ._wheel_contents import inspect_wheel


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
    """The wheel installs the plugin's package and nothing else, its metadata is valid,
    the sdist holds only the project's files, and rebuilding the wheel from the sdist
    gives the same bytes.

    Refused in the wheel, each member named: a `.pth` file, anything under `*.data/`
    (scripts, data, headers, purelib/platlib), a module or package other than the
    plugin's own (another distribution's namespace, the SDK's included), a build file
    (`setup.py`, `pyproject.toml`...) in the package, an unsafe or duplicate path, and
    an entry point outside `aitbc.plugins` (a console script, a `pytest11` plugin)
    unless the policy's `[build]` allows its group.  Tests shipped in the package are
    a note, not a failure.  In the sdist: a link, a special file, an unsafe path, and
    a file whose bytes are in no project file (what the backend generates, such as
    `PKG-INFO` and `*.egg-info/`, excepted).  Both have size and compression-ratio
    limits, read from their headers before anything is unpacked.  The wheel's
    METADATA must validate (packaging) and its long description must render as PyPI
    renders it.  The wheel is then rebuilt from the sdist with `SOURCE_DATE_EPOCH`
    fixed: a different sha256 means the registry's checksum could not be verified by
    anyone, and fails the check."""

    id = "build"
    title = "Reproducible wheel and sdist with checksums"
    security = False
    needs_wheel = True
    uses_environment = False
    typical_s = 0.8

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            wheel, plugin = context.built_plugin()
            build = context.policy.build
            contents = inspect_wheel(wheel, plugin, build)
            findings = list(contents.findings)
            if contents.metadata is not None:
                findings += metadata_findings(contents.metadata)
            if context.sdist is None:
                raise CheckError("rebuilding from the sdist failed: no sdist was built")
            work = context.scratch / "rebuild"
            sdist = inspect_sdist(
                context.sdist, context.workdir, plugin.distribution, SizeLimits.from_policy(build)
            )
            findings += sdist.findings
            details: dict[str, Any] = {"notes": contents.notes} if contents.notes else {}
            wheel_sha = sha256_file(wheel)
            watched: Behaviour | None = None
            if sdist.root is not None and not sdist.findings:
                rebuilt, why, watched = self._rebuild(context, work, sdist.root)
                if rebuilt is None:
                    raise CheckError(f"rebuilding from the sdist failed: {why}", **details)
                rebuilt_sha = sha256_file(rebuilt)
                if rebuilt_sha != wheel_sha:
                    findings.append(
                        Finding(
                            "build.not-reproducible",
                            Severity.HIGH,
                            f"rebuilding the wheel from the sdist gave sha256 "
                            f"{rebuilt_sha[:16]}..., not {wheel_sha[:16]}...; the registry "
                            "checksum could not be verified",
                        )
                    )
            else:
                details["rebuilt"] = "no: the sdist is not safe to unpack and build"
            behaviour = merged_behaviour(context.build_behaviour, watched)
            seen, record = judge(self.id, "build", behaviour, declared_permissions(context))
            findings += seen
        summary = (
            f"wheel and sdist built; the wheel rebuilds byte for byte (sha256 {wheel_sha[:16]}...)"
            if not findings
            else f"{len(findings)} build problem(s)"
        )
        if contents.notes:
            summary += f"; note: the wheel ships {len(contents.notes)} test file(s)"
        return result(self.id, findings, elapsed(), summary, wheel_sha256=wheel_sha,
                      behaviour=record, **details)  # fmt: skip

    @staticmethod
    def _rebuild(
        context: CheckContext, work: Path, root: str
    ) -> tuple[Path | None, str, Behaviour | None]:
        wheel, _ = context.built_plugin()
        refused = unpack(context.sdist, work / "src") if context.sdist else "no sdist"
        if refused is not None:
            return None, f"the sdist could not be unpacked: {refused}", None
        try:
            timeout = context.policy.tool_timeout_s
            observed = jailed_build(
                work / "src" / root, work / "dist", work, "wheel", timeout=timeout,
                cache_dir=cache_root(),
            )  # fmt: skip
        except ToolkitError as exc:
            return None, str(exc), None
        run, rebuilt = observed.completed, work / "dist" / wheel.name
        if run.timed_out or run.returncode != 0 or not rebuilt.is_file():
            return None, run.tail(3), observed.behaviour
        return rebuilt, "", observed.behaviour

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        # Not the sdist's bytes: its gzip header carries the build time.  The project's
        # files decide the sdist (any of them may be in it, and each of its files is
        # compared with them), and the wheel's bytes are reproducible.
        if context.wheel is None:
            return None
        return [context.wheel, *_project_files(context.workdir)]


def _project_files(project: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(project):
        dirs.sort()
        found += [Path(folder, name) for name in sorted(files)]
    return [path for path in found if path.is_file() and not path.is_symlink()]
