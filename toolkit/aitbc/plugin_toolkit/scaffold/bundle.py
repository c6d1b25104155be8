"""The template release bundle: one git commit and PEP 440 tag per template version."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..errors import ToolkitError
from ..files import write_atomic
from .git import FALLBACK_IDENTITY, git

IGNORED = shutil.ignore_patterns("__pycache__", "*.py[co]", ".mypy_cache", ".pytest_cache",
                                 ".ruff_cache", ".DS_Store")  # fmt: skip


def bundle_versions(bundle: Path) -> list[Version]:
    """The PEP 440 tags in a bundle, oldest first."""
    if not bundle.is_file():
        return []
    versions = []
    for line in git(bundle.parent, "bundle", "list-heads", str(bundle)).splitlines():
        ref = line.split()[-1]
        if ref.startswith("refs/tags/"):
            try:
                versions.append(Version(ref.removeprefix("refs/tags/")))
            except InvalidVersion:
                continue
    return sorted(versions)


def release(template_dir: Path, bundle: Path, version: str) -> str:
    """Commit ``template_dir`` as ``version`` on top of the bundle's history; rewrite the
    bundle atomically.  Returns the tag."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        raise ToolkitError(f"{version!r} is not a PEP 440 version") from None
    existing = bundle_versions(bundle)
    if existing and wanted <= existing[-1]:
        raise ToolkitError(f"{version} is not newer than the newest release {existing[-1]}")
    with tempfile.TemporaryDirectory(prefix="aitbc-template-release-") as scratch:
        repo = Path(scratch) / "repo"
        repo.mkdir()
        git(repo, "init", "--quiet", "--initial-branch", "main")
        if existing:
            git(repo, "fetch", "--quiet", str(bundle), "refs/heads/main:refs/remotes/bundle/main",
                "refs/tags/*:refs/tags/*")  # fmt: skip
            git(repo, "checkout", "--quiet", "-B", "main", "refs/remotes/bundle/main")
            for child in repo.iterdir():
                if child.name != ".git":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(template_dir, repo, dirs_exist_ok=True, ignore=IGNORED)
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "--allow-empty", "-m", f"Template {wanted}",
            env=FALLBACK_IDENTITY)  # fmt: skip
        git(repo, "tag", str(wanted))
        out = Path(scratch) / "out.bundle"
        git(repo, "bundle", "create", "--quiet", str(out), "--all")
        write_atomic(bundle, out.read_bytes())
    return str(wanted)
