"""mypy as the `interface` check runs it: on the probe, with checks/mypy.ini, a stand-in
for the plugin environment's Python (nothing of the environment runs), at a lower
priority when it only warms the cache ahead of need; and its JSON output, read."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from aitbc.plugins import process
from aitbc.plugins.process import Completed

from ..base import CheckError
from ..cache import mypy_cache, publish_mypy_seed, seed_mypy_cache
from . import _site

PROBE_MODULE = "_aitbc_interface_probe"
PROBE_FILE = f"{PROBE_MODULE}.py"


def parse_mypy_output(run: Completed) -> list[dict[str, Any]]:
    """mypy's JSON lines; anything else on stdout means it did not run as asked."""
    records = []
    for line in run.stdout.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)  # ValueError: not JSON
        if not isinstance(record, dict) or not {"file", "line", "message"} <= record.keys():
            raise ValueError(f"unexpected mypy output: {line[:200]}")
        records.append(record)
    return records


def python_stand_in(folder: Path, site_packages: Path) -> Path:
    """What mypy's ``--python-executable`` runs: a script printing what the plugin
    environment's Python would, its import folders (checks/_site.py reads them).

    mypy runs ``<python> mypy/pyinfo.py getsearchdirs`` to learn them, and that Python
    would run the ``.pth`` files of its packages: the dependencies' code, with our
    rights.  Here nothing of the environment runs, jailed or not, mypy resolves imports
    as before, and costs nothing.  (Running mypy in the jail would still run that code,
    beside the sources mypy reads; mypy_path in place of site-packages would make mypy
    check installed packages as if they were the plugin's code.)"""
    if not site_packages.is_absolute() or not site_packages.is_dir():
        raise CheckError(f"mypy failed: the plugin environment has no folder {site_packages}")
    folders = [str(path) for path in _site.search_dirs(site_packages)]
    answer = repr((folders, folders[:1]))  # (sys.path, site-packages), as pyinfo.py prints
    script = folder / "python"
    # printf is the shell's own: no program from PATH runs (which may lack coreutils).
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(answer)}\n", encoding="utf-8")
    script.chmod(0o700)
    return script


def run_mypy(checks_dir: Path, root: Path, python: Path, cache_dir: Path, timeout: float,
             *, background: bool = False) -> Completed:  # fmt: skip
    """mypy on the probe in ``root``, with our settings and ``python`` standing in for the
    plugin environment's interpreter.  ``background``: at a lower priority (``nice``),
    so that work the run waits for gets the CPU first."""
    nice = shutil.which("nice") if background else None
    return process.run(
        [
            *([nice, "-n", "10"] if nice else []),
            sys.executable, "-m", "mypy",
            "--config-file", str(checks_dir / "mypy.ini"),
            "--python-executable", str(python),
            "--output", "json",
            "--no-error-summary",
            "--cache-dir", str(cache_dir),
            PROBE_FILE,
        ],
        cwd=root,
        timeout=timeout,
        env={"MYPYPATH": "", "MYPY_FORCE_COLOR": "0"},
    )  # fmt: skip


def warm_mypy_cache(project: Path, site_packages: Path, checks_dir: Path, scratch: Path,
                    timeout: float) -> None:  # fmt: skip
    """Fill the project's empty mypy cache with what every probe imports (the SDK, the
    standard library, click), read from the plugin's base environment while the plugin
    builds: the interface check then analyses only the plugin's own code, seconds less
    on a first certification.  The first project's warm cache becomes the seed every
    later project's starts from.  Its errors are the interface check's to find."""
    with mypy_cache(project) as cache_dir:
        if any(cache_dir.iterdir()):
            return  # analysed before: incremental already
        seeded = seed_mypy_cache(cache_dir)  # another project's start: only re-validated
        template = (checks_dir / "mypy_probe.py.tmpl").read_text(encoding="utf-8")
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / PROBE_FILE).write_text(template.split("from ${module}")[0], encoding="utf-8")
        python = python_stand_in(scratch, site_packages)
        # Ahead of need (the interface check runs last): the base's bytecode, the
        # build, the checks that come first take precedence.
        done = run_mypy(checks_dir, scratch, python, cache_dir, timeout, background=True)
        if not seeded and done.returncode == 0 and not done.timed_out:
            publish_mypy_seed(cache_dir)
