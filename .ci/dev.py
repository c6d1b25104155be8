#!/usr/bin/env python3
"""The project's two set-up commands, needing only Python 3.10+:

    python3 .ci/dev.py demo    # isolated env, install, new + certify a plugin, show the report
    python3 .ci/dev.py test    # isolated env, install everything, run the whole test suite
    python3 .ci/dev.py bench   # the benchmarks in benchmarks/ (figures for the README)

Everything goes into ./.venv (created on first use); uv, installed there from
PyPI, does the installing because it is several times faster than pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str | Path, **kwargs: object) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], **kwargs)  # type: ignore[arg-type]


def must(*cmd: str | Path, **kwargs: object) -> None:
    code = run(*cmd, **kwargs)
    if code != 0:
        sys.exit(code)


def ensure_env(*requirements: str) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script must say so, not crash
        sys.exit(f"Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not (BIN / "uv").exists():
        must(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv")
    must(BIN / "uv", "pip", "install", "--quiet", "--python", PYTHON, *requirements)
    # Bytecode for everything installed, and for the toolkit: with PYTHONDONTWRITEBYTECODE
    # set (as some CI images do) every command would compile its imports afresh, 1 s or
    # more of each `aitbc-plugin` run.  After the first time this only looks at mtimes.
    must(PYTHON, "-m", "compileall", "-q", "-j", "0", VENV / "lib", REPO / "toolkit",
         stdout=subprocess.DEVNULL)  # fmt: skip


def ensure_bubblewrap() -> None:
    """The kernel jail certification runs plugin code in (bubblewrap) and the tracer that
    watches it from outside (strace).  As root (CI) they are installed from Debian's
    packages; otherwise we say how, and go on without them (isolation: partial)."""
    missing = [pkg for pkg, tool in (("bubblewrap", "bwrap"), ("strace", "strace"))
               if shutil.which(tool) is None]  # fmt: skip
    if not missing or sys.platform != "linux":
        return
    if os.geteuid() == 0 and shutil.which("apt-get") is not None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        must("apt-get", "update", "-qq", env=env)
        must("apt-get", "install", "-y", "-qq", *missing, env=env)
        return
    print(f"note: {' and '.join(missing)} not installed, so certification is only partly "
          f"isolated; install (sudo apt-get install {' '.join(missing)}) and run again",
          file=sys.stderr)  # fmt: skip


def vulnerability_db() -> list[str]:
    """Offline OSV records for the audit: $AITBC_VULN_DB (which certify reads itself),
    else the PyPA advisory-db snapshot beside this checkout.  Without either the audit
    asks PyPI, which on a machine that reaches only a package index cannot answer: the
    audit is then incomplete and the plugin not certified, as it must be."""
    if os.environ.get("AITBC_VULN_DB"):
        return []
    snapshot = REPO.parent / "shared" / "advisory-db"
    if snapshot.is_dir():
        return ["--vuln-db", str(snapshot)]
    print(f"note: no OSV records: AITBC_VULN_DB is not set and {snapshot} does not exist; "
          "the audit asks PyPI online, and where it cannot answer the plugin is not "
          "certified and the host demo is skipped", file=sys.stderr)  # fmt: skip
    return []


def skipped_host_demo(code: int) -> str:
    return (
        f"skipped the host demo (examples/host_demo.py): certify exited {code}, so the "
        "plugin was not certified (see the report above)"
    )


def demo() -> int:
    """A plugin author's day (new, certify, the report), then a host running plugins."""
    ensure_bubblewrap()
    ensure_env("-e", f"{REPO}[toolkit,monitoring]", str(REPO / "examples" / "bitcoin-integration"))
    out = REPO / ".demo"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    tool = BIN / "aitbc-plugin"
    must(tool, "new", "hello-plugin", "--kind", "cli", "--defaults", cwd=out)
    certify = [tool, "certify", "hello-plugin", *vulnerability_db(), "--report-dir", "report"]
    for fmt in ("text", "json", "markdown", "sarif", "junit"):
        certify += ["--format", fmt]
    code = run(*certify, "--dist-dir", "dist", cwd=out)
    reports = sorted(str(p.relative_to(REPO)) for p in (out / "report").glob("*"))
    dist = sorted(str(p.relative_to(REPO)) for p in (out / "dist").glob("*"))
    print(f"\nreports: {', '.join(reports)}\nartifacts: {', '.join(dist)}\n", flush=True)
    if code != 0:
        print(skipped_host_demo(code), file=sys.stderr)
        return code
    return run(PYTHON, REPO / "examples" / "host_demo.py", cwd=REPO / "examples")


def test(args: list[str]) -> int:
    ensure_bubblewrap()
    ensure_env("-e", f"{REPO}[toolkit,test,monitoring]")
    # One worker per CPU ("auto"): twice as many was slower on the 2-core machine
    # (README, "Two commands", has both figures).
    workers = os.environ.get("AITBC_TEST_WORKERS", "auto")
    code = run(PYTHON, "-m", "pytest", "-n", workers, *args, cwd=REPO)
    if code == 5:  # pytest's "no tests collected" must never read as a pass
        print("no tests were collected", file=sys.stderr)
        return 1
    return code


def bench(args: list[str]) -> int:
    ensure_env("-e", f"{REPO}[toolkit,test]")
    return run(PYTHON, REPO / "benchmarks" / "run.py", *args, cwd=REPO)


def main(argv: list[str]) -> int:
    commands = {"demo": lambda a: demo(), "test": test, "bench": bench}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
