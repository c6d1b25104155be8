"""A plugin environment whose dependency ships a `.pth` file, which Python runs whenever
that environment's interpreter starts (`-I` or not): the `interface` check (mypy asks
an interpreter for its import path) and the `audit` check (the installed versions) must
not start it outside the jail.  The hostile code writes a marker and calls a listener
on the host's loopback; after both checks there is neither, and both give the verdict
they give any good plugin.  Real wheels, a real venv, real mypy and pip-audit."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mypy.pyinfo
import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy
from aitbc.plugin_toolkit.certify.checks._mypy import python_stand_in
from aitbc.plugin_toolkit.certify.checks._site import search_dirs
from aitbc.plugin_toolkit.certify.checks.audit import AuditCheck
from aitbc.plugin_toolkit.certify.checks.interface import InterfaceCheck
from aitbc.plugin_toolkit.certify.distributions import plugin_info
from aitbc.plugin_toolkit.certify.model import CheckStatus
from aitbc.plugin_toolkit.certify.policy import load_policy
from aitbc.plugin_toolkit.certify.runner import run_check
from certify_support import make_project
from conftest import REPO, make_venv, run_checked
from test_jail import listener

pytestmark = pytest.mark.integration
CHECKS_DIR = REPO / "checks"
ADVISORY_DB = REPO.parent / "shared" / "advisory-db"
# What the hostile package does at interpreter start: its orders (where the marker
# goes, the listener's port) are written beside it once the listener is up.
BOOT = """
import json, os, socket
from pathlib import Path
orders = json.loads((Path(__file__).parent / "orders.json").read_text())
try:
    with open(orders["marker"], "a") as marker:
        marker.write(f"{os.getpid()} {os.getcwd()}\\n")
except OSError:
    pass
try:
    with socket.create_connection(("127.0.0.1", orders["port"]), 2) as conn:
        conn.sendall(b"the .pth ran")
except OSError:
    pass
"""


@dataclass(frozen=True)
class Env:
    python: Path
    site_packages: Path


@dataclass(frozen=True)
class Hostile:
    project: Path
    wheel: Path
    env: Env


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def hostile_wheel(out: Path) -> Path:
    """evil-dep 1.0.0: a package and a .pth that imports it, as any wheel may ship."""
    info = "evil_dep-1.0.0.dist-info"
    files = {
        "evil_dep/__init__.py": "",
        "evil_dep/_boot.py": BOOT,
        "evil_dep.pth": "import evil_dep._boot\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: evil-dep\nVersion: 1.0.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = [f"{n},sha256={_digest(t.encode())},{len(t.encode())}" for n, t in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,", ""])
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / "evil_dep-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, sdk_wheel: Path) -> Hostile:
    """A good generated plugin that depends on evil-dep, installed in a venv of its own
    (the shared session venvs stay clean)."""
    where = tmp_path_factory.mktemp("hostile-pth")
    project = make_project("hostile-pth", "base", where / "src")
    for name, old, new in (
        ("pyproject.toml", '"aitbc-plugins>=1.0.0",', '"aitbc-plugins>=1.0.0", "evil-dep==1.0.0",'),
        ("requirements.txt", "aitbc-plugins>=1.0.0", "aitbc-plugins>=1.0.0\nevil-dep==1.0.0"),
    ):
        text = (project / name).read_text()
        assert old in text
        (project / name).write_text(text.replace(old, new))
    run_checked([sys.executable, "-m", "uv", "build", "--wheel", "--out-dir",
                 str(where / "dist"), str(project)])  # fmt: skip
    (wheel,) = (where / "dist").glob("*.whl")
    python = make_venv(where / "venv", str(sdk_wheel), str(wheel), str(hostile_wheel(where)))
    (site,) = (where / "venv" / "lib").glob("python3*/site-packages")
    return Hostile(project, wheel, Env(python, site))


def _context(hostile: Hostile, scratch: Path, vuln_db: Path | None = None) -> CheckContext:
    info, problem = plugin_info(hostile.wheel)
    assert info is not None, problem
    scratch.mkdir(parents=True)
    return CheckContext(
        project=hostile.project, workdir=hostile.project, scratch=scratch,
        policy=load_policy(CHECKS_DIR), wheel=hostile.wheel, plugin=info,
        checks_dir=CHECKS_DIR, plugin_environment=Lazy(lambda: hostile.env), vuln_db=vuln_db,
    )  # fmt: skip


def _wait_for(received: list[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)


def test_checks_do_not_start_the_environments_python(hostile: Hostile, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with listener() as (port, received):
        orders = {"marker": str(marker), "port": port}
        (hostile.env.site_packages / "evil_dep" / "orders.json").write_text(json.dumps(orders))
        # The trap works: the interpreter, even isolated (-I), runs the .pth at start.
        subprocess.run([str(hostile.env.python), "-I", "-c", "pass"], check=True)
        _wait_for(received, 5)
        assert marker.is_file() and received == [b"the .pth ran"]
        marker.unlink()
        received.clear()

        interface = run_check(InterfaceCheck(), _context(hostile, tmp_path / "interface"))
        audit = run_check(AuditCheck(), _context(hostile, tmp_path / "audit", vuln_db=ADVISORY_DB))
        _wait_for(received, 1)  # a connection made late would still be seen
    assert not marker.exists()
    assert received == []
    assert interface.status is CheckStatus.PASSED, interface
    assert "implements its kind's interface" in interface.summary
    assert interface.details["other_type_errors"] == 0
    assert audit.status is CheckStatus.PASSED, audit
    assert audit.summary.startswith("no known vulnerabilities in 1 dependency")
    assert audit.details["audited"] == ["evil-dep==1.0.0"]


def test_the_stand_in_answers_as_the_interpreter_would(sdk_venv: Path, tmp_path: Path) -> None:
    """mypy gets the import path the environment's Python reports (a clean venv here)."""
    pyinfo = Path(mypy.pyinfo.__file__)
    # As mypy runs it, less the caller's PYTHONPATH: the certifier's, not the environment's.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONSAFEPATH": "1"}
    real = run_checked([str(sdk_venv), str(pyinfo), "getsearchdirs"], env=env).stdout
    (site,) = (sdk_venv.parent.parent / "lib").glob("python3*/site-packages")
    stand_in = python_stand_in(tmp_path, site)
    answer = run_checked([str(stand_in), str(pyinfo), "getsearchdirs"]).stdout
    assert ast.literal_eval(answer) == ast.literal_eval(real)


def test_search_dirs_follow_pth_paths_and_skip_code(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "sub").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    (site / "a.pth").write_text("# a comment\n\nsub\n../project\nmissing\nimport os\nsub\n")
    (site / ".hidden.pth").write_text("../hidden\n")
    (tmp_path / "hidden").mkdir()
    (site / "b.pth").write_text(f"import sys; sys.path.append('x')\n{tmp_path / 'project'}\n")
    assert search_dirs(site) == [site, site / "sub", tmp_path / "project"]
