"""The sandbox's own cost, per phase: each phase that runs plugin code (build, import =
the metadata probe, lifecycle, tests) for a generated plugin, in the kernel jail and
followed by strace from outside, against the very same command run bare, rounds
interleaved, in one process."""

from __future__ import annotations

import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aitbc.plugin_toolkit.certify.build_env import build_python, build_requirements
from aitbc.plugin_toolkit.certify.distributions import build_environment, jailed_build, plugin_info
from aitbc.plugin_toolkit.certify.environment import environment_for
from aitbc.plugin_toolkit.data import data_dir
from aitbc.plugin_toolkit.scaffold.new import NewRequest, create_project
from aitbc.plugins.process import run
from aitbc.plugins.sandbox import Limits, run_conformance
from aitbc.plugins.sandbox.jail import interpreter_paths, isolation, run_observed
from build import ProjectBuilder
from pyproject_hooks import quiet_subprocess_runner

Phase = Callable[[bool, Path], None]  # (in the sandbox?, a fresh scratch folder)


def _bare_hook(cmd: Sequence[str], cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:  # fmt: skip
    # Output captured, as the jailed side's is (and kept off the benchmark's table).
    quiet_subprocess_runner(cmd, cwd, {**build_environment(), **(extra_environ or {})})


def _phases(folder: Path) -> dict[str, Phase]:
    """The four phases of a certification of a fresh `base` plugin, each runnable both
    ways; the environments are made once, first (as a warm certify finds them)."""
    request = NewRequest(name="bench-phases", kind="base", output_dir=folder / "bench-phases",
                         git=False)  # fmt: skip
    project = create_project(request).path
    cache = folder / "cache"
    python = build_python(build_requirements(project), cache, 600)
    built = folder / "built"
    ProjectBuilder(project, str(python), runner=_bare_hook).build("wheel", built)
    wheel = next(built.glob("*.whl"))
    environment = environment_for(wheel, cache)
    plugin, _ = plugin_info(wheel)
    assert plugin is not None
    checks = data_dir("checks")

    def jailed_or_bare(
        argv: list[str], scratch: Path, cwd: Path, env: dict[str, str], readable: list[Path],
        sandbox: bool, stdin: str | None = None,
    ) -> None:  # fmt: skip
        if sandbox:
            done = run_observed(argv, scratch=scratch, cwd=cwd, timeout=600, env=env,
                                readable=readable, input=stdin).completed  # fmt: skip
        else:
            done = run(argv, cwd=cwd, timeout=600, env=env, input=stdin)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed (sandbox={sandbox}): {done.tail(3)}")

    def build(sandbox: bool, scratch: Path) -> None:
        # certify's own build (its hook jailed and watched), against pypa `build`'s
        # ProjectBuilder calling the same hook bare.
        source = scratch / "src"
        shutil.copytree(project, source)
        if not sandbox:
            ProjectBuilder(source, str(python), runner=_bare_hook).build("wheel", scratch / "dist")
            return
        done = jailed_build(source, scratch / "dist", scratch, "wheel", timeout=600,
                            cache_dir=cache).completed  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the jailed build failed: {done.tail(3)}")

    def probe(sandbox: bool, scratch: Path) -> None:
        script = checks / "metadata_probe.py"
        jailed_or_bare([str(environment.python), str(script), "bench-phases"], scratch, scratch,
                       {}, [*interpreter_paths(environment.python), script], sandbox,
                       stdin=secrets.token_hex(8) + "\n")  # fmt: skip

    def lifecycle(sandbox: bool, scratch: Path) -> None:
        outcome = run_conformance(
            environment.python, checks / "conformance" / "lifecycle.py",
            params={"name": plugin.name, "entry_point": plugin.entry_point},
            limits=Limits(), workdir=scratch, isolate=sandbox, readable=[checks],
        )  # fmt: skip
        if not outcome.passed:
            raise RuntimeError(f"the lifecycle failed (sandbox={sandbox}): {outcome.problems}")

    def tests(sandbox: bool, scratch: Path) -> None:
        (scratch / "tests").mkdir()
        for item in (project / "tests").iterdir():
            (scratch / "tests" / item.name).write_bytes(item.read_bytes())
        jailed_or_bare([str(environment.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(scratch), "tests"], scratch, scratch,
                       {"PYTHONDONTWRITEBYTECODE": "1"},
                       list(interpreter_paths(environment.python)), sandbox)  # fmt: skip

    return {"build": build, "import": probe, "lifecycle": lifecycle, "tests": tests}


def bench_jail(repeat: int) -> list[dict[str, Any]]:
    found = isolation()
    if found.level != "full":
        raise RuntimeError(f"no full sandbox to measure: {found.describe()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aitbc-bench-phases-") as name:
        folder = Path(name)
        for phase, step in _phases(folder).items():
            samples: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(repeat * 2 + 1):
                for sandbox in (round_ % 2 == 0, round_ % 2 == 1):  # who goes first alternates
                    scratch = folder / f"{phase}-{round_}-{sandbox}"
                    scratch.mkdir()
                    began = time.perf_counter()
                    step(sandbox, scratch)
                    samples[sandbox].append(time.perf_counter() - began)
            jailed, bare = (statistics.median(samples[k][1:]) for k in (True, False))
            rows.append({
                "benchmark": f"{phase} phase in the sandbox",
                "ours_s": jailed,
                "naive_s": bare,
                "goal": None,
                "naive": f"the same phase bare ({found.mechanism})",
            })  # fmt: skip
    return rows


if __name__ == "__main__":  # pragma: no cover - run through benchmarks/run.py
    for found_row in bench_jail(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(found_row["benchmark"], f"{found_row['ours_s'] / found_row['naive_s']:.2f}x")
