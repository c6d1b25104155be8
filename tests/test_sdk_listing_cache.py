"""The entry-point listing a process leaves on disk, as the next process sees it: real
fresh interpreters, a real site folder of installed distributions, counting the scans
of importlib.metadata each one makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIST = r"""
import json, sys
from aitbc.plugins import discovery

scans = []
real = discovery.importlib_metadata.entry_points
def counting(**kw):
    scans.append(kw)
    return real(**kw)
discovery.importlib_metadata.entry_points = counting
# Only this test's distributions: the interpreter may have others installed.
names = sorted(p.name for p in discovery.discover_entry_points() if p.name.endswith("-plugin"))
print(json.dumps({"names": names, "scans": len(scans)}))
"""


def install(site: Path, name: str) -> None:
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text("from aitbc.plugins import BasePlugin\n")
    info = site / f"{module}-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(f"[aitbc.plugins]\n{name} = {module}:Plugin\n")


@pytest.fixture
def listing(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "AITBC_PLUGINS_CACHE_DIR": str(cache)}
    # `python -c` puts the working directory on sys.path, so its mtime is part of the
    # fingerprint: run where no other test writes (the suite's own folder changes).
    (tmp_path / "work").mkdir()
    env["LISTING_TEST_CWD"] = str(tmp_path / "work")
    return site, cache, env


def fresh_process(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", LIST], env=env, capture_output=True, text=True,
                          cwd=env["LISTING_TEST_CWD"], timeout=120, check=True)  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_fresh_process_lists_from_the_file_the_last_one_left(
    listing: tuple[Path, Path, dict[str, str]],
) -> None:
    site, cache, env = listing
    install(site, "alpha-plugin")
    assert fresh_process(env) == {"names": ["alpha-plugin"], "scans": 1}
    assert fresh_process(env) == {"names": ["alpha-plugin"], "scans": 0}  # from the file
    install(site, "beta-plugin")  # a new distribution: the folder's mtime changes
    assert fresh_process(env) == {"names": ["alpha-plugin", "beta-plugin"], "scans": 1}
    assert fresh_process(env) == {"names": ["alpha-plugin", "beta-plugin"], "scans": 0}
    assert len(list(cache.iterdir())) == 1  # one file, no temporary left beside it


DAMAGED = ["", "{not json", '{"version": 2}', "[]", '{"version": 1, "plugins": []}',
           '{"version": 2, "fingerprint": [], "plugins": [["too", "few"]]}']  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_file_is_ignored_and_replaced(
    listing: tuple[Path, Path, dict[str, str]], damage: str
) -> None:
    site, cache, env = listing
    install(site, "alpha-plugin")
    fresh_process(env)
    (kept,) = cache.iterdir()
    kept.write_text(damage)
    assert fresh_process(env) == {"names": ["alpha-plugin"], "scans": 1}
    assert fresh_process(env)["scans"] == 0


def test_off_keeps_nothing(listing: tuple[Path, Path, dict[str, str]]) -> None:
    site, cache, env = listing
    install(site, "alpha-plugin")
    env["AITBC_PLUGINS_CACHE_DIR"] = "off"
    assert fresh_process(env)["scans"] == 1
    assert fresh_process(env)["scans"] == 1
    assert not cache.exists()


def test_rows_of_another_shape_under_the_right_fingerprint_are_ignored(
    listing: tuple[Path, Path, dict[str, str]],
) -> None:
    site, cache, env = listing
    install(site, "alpha-plugin")
    fresh_process(env)
    (kept,) = cache.iterdir()
    data = json.loads(kept.read_text())
    data["plugins"] = [["too", "few"]]  # the fingerprint still matches
    kept.write_text(json.dumps(data))
    assert fresh_process(env) == {"names": ["alpha-plugin"], "scans": 1}
