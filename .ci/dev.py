#!/usr/bin/env python3
"""The project's two set-up commands, needing only Python 3.10+:

    python3 .ci/dev.py demo    # isolated env, install, run the main job, show the report
    python3 .ci/dev.py test    # isolated env, install everything, run the whole test suite
    python3 .ci/dev.py bench   # the benchmarks in benchmarks/ (figures for the README)

Everything goes into ./.venv (created on first use); uv, installed there from
PyPI, does the installing because it is several times faster than pip.
"""

from __future__ import annotations

import os
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


def demo() -> int:
    ensure_env("-e", f"{REPO}[toolkit]", str(REPO / "examples" / "bitcoin-integration"))
    return run(PYTHON, REPO / "examples" / "host_demo.py", cwd=REPO / "examples")


def test(args: list[str]) -> int:
    ensure_env("-e", f"{REPO}[toolkit,test]")
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
