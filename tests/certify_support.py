"""Helpers for the certification tests: corpus cases made into real projects."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from aitbc.plugin_toolkit.scaffold.new import NewRequest, create_project

CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    fails: str
    status: str
    reason: str
    collateral: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    replace: tuple[dict[str, str], ...] = field(default_factory=tuple)
    #: Misbehave only under the lifecycle check: plugin.py gets `under_lifecycle_check()`.
    lifecycle_guard: bool = False
    #: The check every collateral one must say it is "blocked by" (the root cause, once).
    blocked_by: str | None = None
    #: More the target check must say, and where its first finding must be (file:line).
    also: tuple[str, ...] = ()
    at: str | None = None

    @property
    def folder(self) -> Path:
        return CORPUS / self.name


def load_cases() -> list[Case]:
    cases = []
    for case_file in sorted(CORPUS.glob("*/case.toml")):
        data = tomllib.loads(case_file.read_text(encoding="utf-8"))
        cases.append(Case(
            name=case_file.parent.name, kind=data["kind"], fails=data["fails"],
            status=data["status"], reason=data["reason"],
            collateral=tuple(data.get("collateral", ())), delete=tuple(data.get("delete", ())),
            replace=tuple(data.get("replace", ())),
            lifecycle_guard=bool(data.get("lifecycle_guard", False)),
            blocked_by=data.get("blocked_by"), also=tuple(data.get("also", ())),
            at=data.get("at"),
        ))  # fmt: skip
    return cases


# A case that must fail the lifecycle check alone misbehaves wherever it is not under
# its own tests (in a host, and so in the lifecycle check's worker, which looks like one:
# certification sets no marker a plugin could read), so its tests and other checks pass.
LIFECYCLE_GUARD = '''

def under_lifecycle_check() -> bool:
    """True outside pytest: this certification corpus case misbehaves where a host runs
    it, as careless plugins do, while its own tests (which never see it) pass."""
    return "pytest" not in sys.modules
'''
SDK_IMPORT = "from aitbc.plugins import BasePlugin, PluginContext, PluginMetadata\n"


def add_lifecycle_guard(source: str) -> str:
    assert SDK_IMPORT in source and "import copy\n" in source
    source = source.replace("import copy\n", "import copy\nimport os\nimport sys\n", 1)
    return source.replace(SDK_IMPORT, SDK_IMPORT + LIFECYCLE_GUARD, 1)


def make_project(name: str, kind: str, where: Path) -> Path:
    return create_project(NewRequest(name=name, kind=kind, output_dir=where / name, git=False)).path


def materialize(case: Case, where: Path) -> Path:
    """Generate the case's plugin with `new`, then apply the case's changes."""
    project = make_project(case.name, case.kind, where)
    for relative in case.delete:
        (project / relative).unlink()
    for change in case.replace:
        target = project / change["file"]
        text = target.read_text(encoding="utf-8")
        assert change["old"] in text, f"{case.name}: {change['old']!r} not in {change['file']}"
        target.write_text(text.replace(change["old"], change["new"]), encoding="utf-8")
    if case.lifecycle_guard:
        plugin = project / "plugin.py"
        plugin.write_text(add_lifecycle_guard(plugin.read_text(encoding="utf-8")), encoding="utf-8")
    files = case.folder / "files"
    if files.is_dir():
        shutil.copytree(files, project, dirs_exist_ok=True)
    return project
