"""`aitbc-plugin new` and `aitbc-plugin --help`, each against the naive alternative run
as a subprocess in the same run, rounds interleaved; ratios of medians."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _proc
from aitbc.plugin_toolkit.ci.release import workflow_release
from aitbc.plugin_toolkit.scaffold.sources import builtin_bundle

BIN = Path(sys.executable).parent
NAME, MODULE, KIND = "bench-plugin", "bench_plugin", "base"
#: Modules `--help` must not import: each belongs to one command, not to the CLI.
HEAVY = ("copier", "mypy", "bandit", "pip_audit", "build", "cookiecutter", "rich")
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip


def new_command(target: Path, *, git: bool) -> list[str | Path]:
    command: list[str | Path] = [BIN / "aitbc-plugin", "new", NAME, "--kind", KIND, "--defaults"]
    return [*command, *([] if git else ["--no-git"]), "-o", target]


def copier_command(target: Path) -> list[str | Path]:
    """What `new` does, by hand: the same template source (the built-in template's git
    bundle, whose newest tag copier picks, as `new` lets it) and the same answers."""
    release = workflow_release()  # what `new` passes for the workflow's pin
    answers = [f"plugin_name={NAME}", f"module_name={MODULE}", f"kind={KIND}",
               f"toolkit_ref={release.tag}", f"toolkit_commit={release.commit}"]  # fmt: skip
    data = [part for answer in answers for part in ("-d", answer)]
    return [BIN / "copier", "copy", "--defaults", *data, builtin_bundle(), target]


def naive_new(target: Path, *, git: bool) -> float:
    wall = _proc.run(copier_command(target)).check().wall_s
    if git:
        for step in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "init"]):
            wall += _proc.run(["git", *step], cwd=target, env=GIT_ENV).check().wall_s
    return wall


def same_files(ours: Path, naive: Path) -> None:
    """Both sides must produce the same project (only the recorded source differs)."""

    def listing(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(root).parts}  # fmt: skip

    if listing(ours) != listing(naive):
        raise AssertionError(
            f"new and copier made different files: {listing(ours) ^ listing(naive)}"
        )


def bench_new(repeat: int) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="aitbc-bench-new-"))
    results = []
    for git in (False, True):
        ours, naive = [], []
        for i in range(repeat):  # interleaved, and the order alternates
            first_ours = i % 2 == 0
            for side in (True, False) if first_ours else (False, True):
                target = root / f"{'ours' if side else 'naive'}-{git}-{i}"
                if side:
                    ours.append(_proc.run(new_command(target, git=git)).check().wall_s)
                else:
                    naive.append(naive_new(target, git=git))
            same_files(root / f"ours-{git}-{i}", root / f"naive-{git}-{i}")
        label = "+ git init/commit" if git else "--no-git"
        naive_label = ("copier copy (same bundle, answers) + git init/add/commit" if git
                       else "copier copy (same bundle, answers)")  # fmt: skip
        results.append({"benchmark": f"aitbc-plugin new {label}",
                        "ours_s": statistics.median(ours), "naive_s": statistics.median(naive),
                        "naive": naive_label, "goal": 1.2})  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return results


def help_imports() -> tuple[list[str], list[tuple[int, str]]]:
    """The heavy top-level packages `--help` imports, and its ten slowest imports
    (cumulative microseconds, module), from ``python -X importtime``."""
    run = _proc.run([sys.executable, "-X", "importtime", "-m", "aitbc.plugin_toolkit", "--help"])
    run.check()
    imported, timings = set(), []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        imported.add(name.split(".")[0])
        timings.append((int(cumulative), name))
    return sorted(m for m in HEAVY if m in imported), sorted(timings, reverse=True)[:10]


def bench_help(repeat: int) -> list[dict[str, Any]]:
    ours, naive = [], []
    for _ in range(repeat):
        naive.append(_proc.run([sys.executable, "-c", "pass"]).check().wall_s)
        ours.append(_proc.run([BIN / "aitbc-plugin", "--help"]).check().wall_s)
    heavy, slowest = help_imports()
    print("aitbc-plugin --help: slowest imports (cumulative, nested ones included):")
    for us, name in slowest:
        print(f"  {us / 1000:7.1f} ms  {name}")
    return [
        {"benchmark": "aitbc-plugin --help", "ours_s": statistics.median(ours),
         "naive_s": statistics.median(naive), "naive": "python -c pass", "goal": None},
        {"benchmark": "heavy modules imported by --help", "value": float(len(heavy)),
         "unit": "", "goal": 0.0, "naive": f"of {', '.join(HEAVY)}",
         "note": ", ".join(heavy) or "none"},
    ]  # fmt: skip
