"""`aitbc-plugin update`: copier's three-way update, made safe.

The update runs in a throw-away clone of the project; the user's directory only
changes at the end, when every new file is already written beside its target and
the renames happen with Ctrl-C held back.  Each file is classified against the
old and new template renders, so conflicts are listed instead of silently left.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from packaging.version import InvalidVersion, Version

from ..errors import ToolkitError
from ..files import interrupts_deferred
from .bundle import bundle_versions
from .git import (
    CONFLICT_MARKER,
    FALLBACK_IDENTITY,
    dirty_files,
    files_with_conflict_markers,
    git,
    is_work_tree,
)
from .new import ANSWERS_FILE, release_context
from .sources import BUILTIN_TEMPLATE_SOURCE, builtin_bundle

FileState = Literal[
    "unchanged", "updated", "merged", "conflict", "added", "removed", "deleted by the author"
]


@dataclass(frozen=True)
class FileChange:
    path: str
    state: FileState


@dataclass(frozen=True)
class UpdateResult:
    project: Path
    from_version: str
    to_version: str
    changes: list[FileChange] = field(default_factory=list)
    applied: bool = False

    @property
    def conflicts(self) -> list[str]:
        return [c.path for c in self.changes if c.state == "conflict"]

    @property
    def up_to_date(self) -> bool:
        return self.from_version == self.to_version

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "up_to_date": self.up_to_date,
            "applied": self.applied,
            "conflicts": self.conflicts,
            "files": [{"path": c.path, "state": c.state} for c in self.changes],
        }


@dataclass(frozen=True)
class _Project:
    path: Path
    answers: dict[str, Any]
    source: str  # what copier can clone
    recorded_source: str  # what the answers file says

    @property
    def version(self) -> str:
        return str(self.answers.get("_commit", ""))


def _load_project(path: Path) -> _Project:
    project = path.resolve()
    answers_file = project / ANSWERS_FILE
    if not answers_file.is_file():
        raise ToolkitError(f"{project} has no {ANSWERS_FILE}: it was not generated from a template")
    try:
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ToolkitError(f"{answers_file} is not valid YAML") from None
    if not isinstance(answers, dict) or "_src_path" not in answers or "_commit" not in answers:
        raise ToolkitError(f"{answers_file} does not say which template version made the project")
    recorded = str(answers["_src_path"])
    source = str(builtin_bundle()) if recorded == BUILTIN_TEMPLATE_SOURCE else recorded
    return _Project(project, answers, source, recorded)


def latest_version(project: _Project) -> str:
    if project.recorded_source == BUILTIN_TEMPLATE_SOURCE:
        versions = bundle_versions(Path(project.source))
        if not versions:
            raise ToolkitError(f"the template bundle {project.source} holds no released version")
        return str(versions[-1])
    from copier._template import Template

    template = Template(url=project.source)
    try:
        return str(template.version or template.commit or "")
    finally:
        template._cleanup()


def _newer(latest: str, current: str) -> bool:
    try:
        return Version(latest) > Version(current)
    except InvalidVersion:
        return latest != current


def check_for_update(path: Path) -> UpdateResult:
    project = _load_project(path)
    latest = latest_version(project)
    return UpdateResult(project.path, project.version, latest if _newer(latest, project.version)
                        else project.version)  # fmt: skip


def update_project(path: Path, *, pretend: bool = False, trust: bool = False) -> UpdateResult:
    project = _load_project(path)
    if not is_work_tree(project.path):
        raise ToolkitError(
            f"{project.path} is not a git repository; updating needs the project's history "
            "(git init && git add -A && git commit)"
        )
    dirty = dirty_files(project.path)
    if dirty and not pretend:  # --pretend writes nothing, so it may look at a dirty tree
        raise ToolkitError(
            f"{project.path} has uncommitted changes ({', '.join(dirty[:5])}"
            f"{', ...' if len(dirty) > 5 else ''}); commit or stash them first"
        )
    marked = files_with_conflict_markers(project.path)
    if marked:
        raise ToolkitError(
            f"conflict markers from an earlier update remain in {', '.join(marked)}; "
            "resolve them and commit first"
        )
    latest = latest_version(project)
    if not _newer(latest, project.version):
        return UpdateResult(project.path, project.version, project.version)
    with tempfile.TemporaryDirectory(prefix="aitbc-plugin-update-") as scratch_dir:
        scratch = Path(scratch_dir)
        work = scratch / "work"
        git(scratch, "clone", "--quiet", "--no-hardlinks", str(project.path), str(work))
        if dirty:
            _take_working_tree(project.path, work)
        _point_answers_at(work, project.source, commit=True)
        _copier_update(work, trust)
        _point_answers_at(work, project.recorded_source, commit=False)
        base = _render(project, project.version, scratch / "base", trust)
        new = _render(project, latest, scratch / "new", trust)
        changes = _classify(project.path, base, new, work)
        if not pretend:
            _apply(project.path, work, changes)
    return UpdateResult(project.path, project.version, latest, changes, applied=not pretend)


def _take_working_tree(project: Path, work: Path) -> None:
    """The clone gets the working tree's files, uncommitted edits and deletions too, so
    ``--pretend`` on a dirty tree classifies what the author has, not the last commit."""
    listed = git(project, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source, target = project / name, work / name
        if source.is_file() or source.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        elif not source.exists():
            target.unlink(missing_ok=True)
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", "working tree",
        env=FALLBACK_IDENTITY)  # fmt: skip


def _point_answers_at(project: Path, source: str, *, commit: bool) -> None:
    answers_file = project / ANSWERS_FILE
    lines = answers_file.read_text(encoding="utf-8").splitlines()
    lines = [f"_src_path: {source}" if ln.startswith("_src_path:") else ln for ln in lines]
    answers_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if commit:
        git(project, "commit", "--quiet", "--no-verify", "--allow-empty", "-am", "update source",
            env=FALLBACK_IDENTITY)  # fmt: skip


def _copier_update(work: Path, trust: bool) -> None:
    import copier
    from copier.errors import CopierError, UnsafeTemplateError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_update(work, data=release_context(), defaults=True, overwrite=True,
                              unsafe=trust, quiet=True, skip_answered=True,
                              conflict="inline")  # fmt: skip
    except UnsafeTemplateError as exc:
        raise ToolkitError(f"the template runs its own code ({exc}); pass --trust") from None
    except CopierError as exc:
        raise ToolkitError(f"copier could not update: {' '.join(str(exc).split())}") from None


def _render(project: _Project, version: str, target: Path, trust: bool) -> Path:
    import copier

    data = {k: v for k, v in project.answers.items() if not k.startswith("_")}
    data.update(release_context())  # as `new` and the update above render
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(project.source, target, data=data, vcs_ref=version, defaults=True,
                        quiet=True, unsafe=trust)  # fmt: skip
    _point_answers_at(target, project.recorded_source, commit=False)  # compare like with like
    return target


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _classify(
    ours_root: Path, base_root: Path, new_root: Path, result_root: Path
) -> list[FileChange]:
    tracked = set(filter(None, git(ours_root, "ls-files", "-z").split("\0")))
    ours = {k: v for k, v in _files(ours_root).items() if k in tracked}
    base, new, result = _files(base_root), _files(new_root), _files(result_root)
    changes = []
    for name in sorted(set(base) | set(new)):
        mine, merged = ours.get(name), result.get(name)
        state: FileState
        if name in base and mine is None:
            state = "deleted by the author"
        elif merged is None:
            state = "removed"
        elif CONFLICT_MARKER.search(merged) and not (mine and CONFLICT_MARKER.search(mine)):
            state = "conflict"
        elif merged == mine:
            state = "unchanged"
        elif mine is None:
            state = "added"
        elif mine == base.get(name):
            state = "updated"
        else:
            state = "merged"
        changes.append(FileChange(name, state))
    return changes


def _apply(project: Path, work: Path, changes: list[FileChange]) -> None:
    """Write every changed file beside its target first, then rename them all at once."""
    staged: list[tuple[Path, Path]] = []
    removals: list[Path] = []
    try:
        for change in changes:
            target = project / change.path
            if change.state == "removed":
                removals.append(target)
            elif change.state in ("updated", "merged", "conflict", "added"):
                source = work / change.path
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.with_name(f".{target.name}.aitbc-update")
                temp.write_bytes(source.read_bytes())
                temp.chmod(source.stat().st_mode & 0o777)
                staged.append((temp, target))
        with interrupts_deferred():
            for temp, target in staged:
                temp.replace(target)
            for target in removals:
                target.unlink(missing_ok=True)
            staged.clear()
    finally:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
