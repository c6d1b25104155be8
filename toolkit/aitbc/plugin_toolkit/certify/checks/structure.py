"""The `structure` check."""

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
    """The spec's Plugin Structure is there, and the project builds.

    The project root must hold `__init__.py`, `plugin.py`, `config_schema.json`,
    `tests/__init__.py`, `tests/test_plugin.py`, `docs/README.md`,
    `docs/configuration.md`, `requirements.txt` and `setup.py`; each missing file is
    a finding.  The project must also build a wheel and an sdist with pypa `build`:
    when it does not, the build's own last lines are the finding, and every check
    that needs the wheel reports an error instead of a verdict."""

    id = "structure"
    title = "The spec's files are present and the project builds"
    security = False
    needs_wheel = False
    uses_environment = False
    typical_s = 0.0

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
