"""`aitbc-plugin certify` on a freshly generated plugin, cold (empty cache), warm
(same cache, unchanged plugin) and after a one-line edit of plugin.py (same cache, as
an author certifies again dozens of times a day), against the same tools run by hand, one subprocess
after another, in the same run with rounds interleaved.  Also the peak memory of
certify's whole process tree, and a per-check breakdown of the cold run.

The naive sequence, on its own copy of the plugin so that nothing it writes (egg-info,
caches) reaches the project certify reads:

    uv venv --python <this python> VENV
    uv pip install --python VENV/bin/python <SDK wheel> <plugin dir> pytest
    mypy --strict --python-executable VENV/bin/python --cache-dir C/mypy .
    bandit -r . -q
    pip-audit --path VENV/.../site-packages -s osv --osv-url URL --cache-dir C/pip-audit
    VENV/bin/python -m pytest -q -p no:cacheprovider
    python -m build --installer uv --outdir DIST .
    sha256sum DIST/*

uv (what certify uses) installs for both sides, and `build --installer uv` builds for
both: the naive side gets the same fast installer, not pip.  The SDK is on no index, so
both sides install the same SDK wheel, packed once before timing (it stands for the
index's copy).  pip-audit has no offline mode, so the naive side queries certify's
loopback OSV service over the same advisory directory, started (and the directory
read) once before timing: it stands for api.osv.dev.  The tools are this
environment's (like pipx-installed tools), as certify's are.  Every subprocess of both
sides sees the same XDG_CACHE_HOME: a fresh one for "cold" (uv downloads pytest and
setuptools from PyPI on both sides), the one the cold run left for "warm".
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import _proc
from aitbc.plugin_toolkit.certify.osv import OsvServer, load_index
from aitbc.plugin_toolkit.certify.sdk_wheel import pack_sdk_wheel
from aitbc.plugin_toolkit.cli.main import available_cpus
from bench_cli import new_command

BIN = Path(sys.executable).parent
VULN_DB = Path("/work/shared/advisory-db")
MiB = 1024 * 1024
FINDS = ("mypy --strict", "bandit -r", "pip-audit (local OSV)")  # exit 1: found something
LOCALHOST = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def certify_once(plugin: Path, cache_home: Path, out: Path) -> tuple[_proc.Run, dict[str, Any]]:
    run = _proc.run(
        [BIN / "aitbc-plugin", "certify", plugin, "--vuln-db", VULN_DB,
         "--format", "json", "--output", out],
        env={"XDG_CACHE_HOME": str(cache_home)},
        sample_memory=True,
    )  # fmt: skip
    try:
        report: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        raise RuntimeError(
            f"certify exited {run.returncode} without a report: {run.tail()}"
        ) from None
    if run.returncode != 0 or not report.get("certified"):
        failed = [f"{c['id']}: {c['status']} ({c.get('summary', '')})"
                  for c in report.get("checks", []) if c.get("status") != "passed"]  # fmt: skip
        raise RuntimeError(f"certify exited {run.returncode}; not passed: {'; '.join(failed)}")
    return run, report


def edit_one_line(module: Path) -> None:
    """An author's edit: one line of the plugin's code changed (a constant appended,
    so the plugin still certifies)."""
    with module.open("a", encoding="utf-8") as stream:
        stream.write(f"EDITED_AT = {time.time_ns()}\n")


def naive_once(
    source: Path, work: Path, cache_home: Path, sdk_wheel: Path, osv_url: str
) -> tuple[float, dict[str, float], int]:
    """The sequence by hand: total wall time, time per step, peak tree memory."""
    plugin, venv, dist = work / "plugin", work / "venv", work / "dist"
    if not plugin.exists():
        shutil.copytree(source, plugin)
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(dist, ignore_errors=True)
    python = venv / "bin" / "python"
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    env = {"XDG_CACHE_HOME": str(cache_home), **LOCALHOST}
    steps: list[tuple[str, list[str | Path], Path | None]] = [
        ("uv venv", [BIN / "uv", "venv", "--quiet", "--python", sys.executable, venv], None),
        ("uv pip install SDK + plugin + pytest", [BIN / "uv", "pip", "install", "--quiet",
         "--python", python, sdk_wheel, plugin, "pytest"], None),
        ("mypy --strict", [sys.executable, "-m", "mypy", "--strict", "--python-executable",
         python, "--cache-dir", cache_home / "mypy", "."], plugin),
        ("bandit -r", [sys.executable, "-m", "bandit", "-r", ".", "-q"], plugin),
        ("pip-audit (local OSV)", [sys.executable, "-m", "pip_audit", "--path", site, "-s",
         "osv", "--osv-url", osv_url, "--progress-spinner", "off", "--cache-dir",
         cache_home / "pip-audit"], None),
        ("pytest", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], plugin),
        ("python -m build", [sys.executable, "-m", "build", "--installer", "uv",
         "--outdir", dist, "."], plugin),
    ]  # fmt: skip
    times: dict[str, float] = {}
    peak = 0
    for name, command, cwd in steps:
        # Exit 1 from a checker is a finding, not a failed step: on the generated plugin
        # mypy --strict flags its tests' import of the plugin (no py.typed) and bandit
        # -r the tests' asserts.
        run = _proc.run(command, cwd=cwd, env=env, sample_memory=True)
        if run.returncode not in ((0, 1) if name in FINDS else (0,)):
            raise RuntimeError(f"naive step {name} exited {run.returncode}: {run.tail()}")
        times[name], peak = run.wall_s, max(peak, run.peak_rss)
    shasum = _proc.run(["sha256sum", *sorted(dist.iterdir())], env=env).check()
    times["sha256sum"] = shasum.wall_s
    return sum(times.values()), times, peak


def _checks(report: dict[str, Any]) -> dict[str, tuple[str, float, bool]]:
    return {c["id"]: (c["status"], float(c.get("duration_s") or 0.0), bool(c.get("cached")))
            for c in report.get("checks", [])}  # fmt: skip


def _print_breakdown(title: str, rows: dict[str, list[float]], extra: dict[str, str]) -> None:
    print(f"{title} (median s over rounds):")
    for name, values in sorted(rows.items(), key=lambda i: -statistics.median(i[1])):
        print(f"  {statistics.median(values):7.2f}  {name} {extra.get(name, '')}")


def bench_certify(rounds: int) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="aitbc-bench-certify-"))
    plugin = root / "bench-plugin"
    _proc.run(new_command(plugin, git=False)).check()
    sdk_wheel = pack_sdk_wheel(root / "sdk-wheel")
    samples: dict[str, list[float]] = {
        k: [] for k in ("cold", "warm", "edit", "naive", "naive_warm")
    }
    peaks: dict[str, list[int]] = {"cold": [], "warm": [], "naive": []}
    checks_cold: dict[str, list[float]] = {}
    steps_naive: dict[str, list[float]] = {}
    busy_cold: dict[str, list[float]] = {}
    checks_warm: dict[str, list[float]] = {}
    checks_edit: dict[str, list[float]] = {}
    busy_warm: dict[str, list[float]] = {}
    statuses: dict[str, str] = {}
    uncached: list[str] = []  # per round: the warm run's checks that missed the cache
    with ExitStack() as stack:
        osv_url = stack.enter_context(OsvServer(load_index(VULN_DB)))
        for i in range(rounds):
            r = root / f"round-{i}"

            def ours(r: Path = r) -> None:
                cache, mine = r / "certify-cache", r / "ours" / plugin.name
                shutil.copytree(plugin, mine)
                cold, report = certify_once(mine, cache, r / "cold.json")
                warm, warm_report = certify_once(mine, cache, r / "warm.json")
                edit_one_line(mine / "plugin.py")
                edit, edit_report = certify_once(mine, cache, r / "edit.json")
                samples["cold"].append(cold.wall_s)
                samples["warm"].append(warm.wall_s)
                samples["edit"].append(edit.wall_s)
                for cid, (_, seconds, hit) in _checks(edit_report).items():
                    checks_edit.setdefault(f"{cid}{' (cached)' if hit else ''}", []).append(seconds)
                peaks["cold"].append(cold.peak_rss)
                peaks["warm"].append(warm.peak_rss)
                for cid, (status, seconds, _) in _checks(report).items():
                    checks_cold.setdefault(cid, []).append(seconds)
                    statuses[cid] = status
                for name, seconds in cold.busy.items():
                    busy_cold.setdefault(name, []).append(seconds)
                for cid, (_, seconds, hit) in _checks(warm_report).items():
                    checks_warm.setdefault(
                        f"{cid}{' (cached; the duration it had when run)' if hit else ''}", []
                    ).append(seconds)
                for name, seconds in warm.busy.items():
                    busy_warm.setdefault(name, []).append(seconds)
                not_cached = [c for c, (_, _, hit) in _checks(warm_report).items() if not hit]
                uncached.append(", ".join(not_cached) or "none")

            def naive(r: Path = r) -> None:
                cache = r / "naive-cache"
                total, times, peak = naive_once(plugin, r / "naive", cache, sdk_wheel, osv_url)
                warm_total, *_ = naive_once(plugin, r / "naive", cache, sdk_wheel, osv_url)
                samples["naive"].append(total)
                samples["naive_warm"].append(warm_total)
                peaks["naive"].append(peak)
                for name, seconds in times.items():
                    steps_naive.setdefault(name, []).append(seconds)

            for side in (ours, naive) if i % 2 == 0 else (naive, ours):
                side()
    at_once = f"checks run {available_cpus()} at once, certify's default --jobs"
    _print_breakdown(f"certify cold, per check (duration_s; {at_once})", checks_cold, statuses)
    _print_breakdown("certify cold, wall time each tool's process was alive (sampled)",
                     busy_cold, {})  # fmt: skip
    _print_breakdown("certify warm, per check (duration_s)", checks_warm, {})
    _print_breakdown("certify warm, wall time each tool's process was alive (sampled)",
                     busy_warm, {})  # fmt: skip
    _print_breakdown("certify after a one-line edit, per check (duration_s)", checks_edit, {})
    _print_breakdown("naive sequence, cold caches, per step", steps_naive, {})
    for i, missed in enumerate(uncached):
        print(f"certify warm, round {i + 1}: checks not from cache: {missed}")
    shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    naive_text = "venv+install (uv), mypy --strict, bandit, pip-audit, pytest, build, sha256sum"
    return [
        {"benchmark": "certify, cold cache", "ours_s": med["cold"], "naive_s": med["naive"],
         "naive": f"by hand, cold caches: {naive_text}", "goal": 0.6},
        {"benchmark": "certify after a one-line edit of plugin.py", "ours_s": med["edit"],
         "naive_s": med["naive"], "naive": "the same, cold caches", "goal": 0.3},
        {"benchmark": "certify, warm cache (unchanged plugin)", "ours_s": med["warm"],
         "naive_s": med["naive"], "naive": "the same, cold caches", "goal": 0.1},
        {"benchmark": "certify, warm cache vs naive with warm caches", "ours_s": med["warm"],
         "naive_s": med["naive_warm"], "naive": "the same, warm uv/mypy/pip-audit caches",
         "goal": None},
        {"benchmark": "certify cold, peak RSS of its process tree", "unit": "MiB",
         "value": max(peaks["cold"]) / MiB, "goal": 500.0,
         "naive": f"naive sequence's peak: {max(peaks['naive']) / MiB:.0f} MiB",
         "note": f"warm: {max(peaks['warm']) / MiB:.0f} MiB"},
    ]  # fmt: skip
