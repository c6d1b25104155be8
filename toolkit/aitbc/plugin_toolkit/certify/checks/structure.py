"""`structure`: the spec's Plugin Structure is there, and the project builds."""

from __future__ import annotations

from pathlib import Path

from ..base import CheckContext, result, timed
from ..model import CheckResult, Finding, Severity

#: The spec's Plugin Structure, at the project root.
SPEC_FILES = (
    "__init__.py",
    "plugin.py",
    "config_schema.json",
    "tests/__init__.py",
    "tests/test_plugin.py",
    "docs/README.md",
    "docs/configuration.md",
    "requirements.txt",
    "setup.py",
)


class StructureCheck:
    id = "structure"
    title = "The spec's files are present and the project builds"
    needs_wheel = False

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            findings = [
                Finding("structure.missing-file", Severity.HIGH, f"{name} is missing", name)
                for name in SPEC_FILES
                if not (context.workdir / name).is_file()
            ]
            if context.build_error:
                findings.append(Finding("structure.build", Severity.HIGH, context.build_error))
        missing = len(findings) - bool(context.build_error)
        summary = (
            "all of the spec's files are present and the project builds"
            if not findings
            else f"{missing} spec file(s) missing"
            + ("; the build fails" if context.build_error else "")
        )
        return result(self.id, findings, elapsed(), summary)

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return None  # cheaper to run than to hash
