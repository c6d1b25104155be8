"""The few git operations the toolkit needs, through the git command line."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from aitbc.plugins.process import run

from ..errors import ToolkitError

# Who commits when the user has no git identity configured (the initial commit of `new`).
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "aitbc-plugin",
    "GIT_AUTHOR_EMAIL": "aitbc-plugin@localhost",
    "GIT_COMMITTER_NAME": "aitbc-plugin",
    "GIT_COMMITTER_EMAIL": "aitbc-plugin@localhost",
}
CONFLICT_MARKER = re.compile(rb"^(<{7}|>{7})( |$)", re.MULTILINE)
GIT_TIMEOUT_S = 120.0  # local operations; a clone over the network may pass a longer one


def git_executable() -> str:
    found = shutil.which("git")
    if found is None:
        raise ToolkitError("git is not installed; aitbc-plugin needs it for templates and updates")
    return found


def git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = GIT_TIMEOUT_S
) -> str:
    """Run git; its output, or ToolkitError when it fails or takes over ``timeout``."""
    # Never wait for a password prompt no one can answer (unless the user asked for it).
    prompt = {"GIT_TERMINAL_PROMPT": os.environ.get("GIT_TERMINAL_PROMPT", "0")}
    result = run([git_executable(), *args], cwd=cwd, env={**prompt, **(env or {})}, timeout=timeout)
    if result.timed_out:
        raise ToolkitError(f"git {args[0]} took longer than {timeout:g}s in {cwd}")
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ToolkitError(f"git {args[0]} failed in {cwd}: {detail[-1] if detail else '?'}")
    return result.stdout


def init_and_commit(project: Path, message: str) -> None:
    """``git init`` and one commit of everything, as the user when git knows them, else
    as the toolkit (so a machine without a git identity still gets a clean repository)."""
    git(project, "init", "--quiet")
    git(project, "add", "--all")
    commit = ("commit", "--quiet", "--no-verify", "-m", message)
    try:
        git(project, *commit)
    except ToolkitError:
        fallback = {k: os.environ.get(k) or v for k, v in FALLBACK_IDENTITY.items()}
        git(project, *commit, env=fallback)


def is_work_tree(path: Path) -> bool:
    command = [git_executable(), "rev-parse", "--is-inside-work-tree"]
    result = run(command, cwd=path, timeout=GIT_TIMEOUT_S)
    if result.timed_out:
        raise ToolkitError(f"git rev-parse took longer than {GIT_TIMEOUT_S:g}s in {path}")
    return result.returncode == 0 and result.stdout.strip() == "true"


def dirty_files(project: Path) -> list[str]:
    """Modified, staged and untracked (not ignored) files."""
    return [line[3:] for line in git(project, "status", "--porcelain").splitlines() if line]


def files_with_conflict_markers(project: Path) -> list[str]:
    tracked = git(project, "ls-files", "-z").split("\0")
    marked = []
    for name in filter(None, tracked):
        path = project / name
        try:
            if path.is_file() and CONFLICT_MARKER.search(path.read_bytes()):
                marked.append(name)
        except OSError:
            continue
    return marked
