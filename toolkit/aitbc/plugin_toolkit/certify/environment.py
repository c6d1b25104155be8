"""The isolated environment the `lifecycle` and `tests` checks share.

It holds the very SDK this toolkit runs (no index has it: we pack the installed
`aitbc.plugins` into a wheel) and the plugin's wheel with its dependencies.  It is
the dominant cost of a run, so it is made with uv when available and kept in the
user cache, keyed by the two wheels' hashes: an unchanged plugin reuses it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import aitbc.plugins
from aitbc.plugins.process import run
from filelock import FileLock, Timeout

from ..errors import ToolkitError

KEEP_ENVIRONMENTS = 8  # older ones are pruned
# Tools the environment needs beside the plugin: the tests check runs pytest in it.
ENVIRONMENT_TOOLS = ("pytest",)
PROBE_TIMEOUT_S = 60  # asking the environment's Python where its packages go


@dataclass(frozen=True)
class IsolatedEnvironment:
    root: Path
    python: Path
    site_packages: Path
    reused: bool


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def sdk_files() -> dict[str, bytes]:
    """The installed SDK's files (``aitbc/plugins/**``), as a wheel would hold them."""
    package = Path(aitbc.plugins.__file__).parent
    files = {}
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[f"aitbc/plugins/{path.relative_to(package).as_posix()}"] = path.read_bytes()
    return files


def pack_sdk_wheel(out_dir: Path) -> Path:
    """A wheel of the running SDK only (not the toolkit), reproducible from its content."""
    dist = metadata.distribution("aitbc-plugins")
    version = dist.version
    info = f"aitbc_plugins-{version}.dist-info"
    # Keep only the pytest plugin: the console script belongs to the toolkit, not the SDK.
    pytest_plugins = [ep for ep in dist.entry_points if ep.group == "pytest11"]
    entry_points = "".join(f"{ep.name} = {ep.value}\n" for ep in pytest_plugins)
    meta_lines = [
        line
        for line in (dist.read_text("METADATA") or "").splitlines()
        if not line.startswith("Provides-Extra") and "extra ==" not in line
    ]
    files = sdk_files()
    files[f"{info}/METADATA"] = ("\n".join(meta_lines) + "\n").encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: aitbc-plugin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        files[f"{info}/entry_points.txt"] = f"[pytest11]\n{entry_points}".encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    content_id = hashlib.sha256(record.encode()).hexdigest()[:16]
    wheel = out_dir / content_id / f"aitbc_plugins-{version}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    wheel.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=wheel.parent, suffix=".tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, zipfile.ZIP_DEFLATED)
    Path(tmp).replace(wheel)
    return wheel


def uv_command() -> list[str] | None:
    try:
        from uv import find_uv_bin

        return [find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        return [found] if found else None


def run_step(command: list[str], what: str, timeout: float) -> str:
    """A set-up step of the toolkit's own: its output, or a ToolkitError saying what failed."""
    done = run(command, timeout=timeout)
    if done.timed_out:
        raise ToolkitError(f"{what} took longer than {timeout:g}s")
    if done.returncode != 0:
        raise ToolkitError(f"{what} failed: {done.tail(3)}")
    return done.stdout


def _site_packages(python: Path) -> Path:
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = run_step([str(python), "-c", where], "asking the plugin environment", PROBE_TIMEOUT_S)
    return Path(out.strip())


def environment_for(
    plugin_wheel: Path, cache_dir: Path, *, reuse: bool = True, timeout: float = 600
) -> IsolatedEnvironment:
    """Create (or reuse) the environment holding the SDK and ``plugin_wheel``."""
    sdk_wheel = pack_sdk_wheel(cache_dir / "sdk-wheels")
    key_parts = [
        sdk_wheel.read_bytes(),
        plugin_wheel.read_bytes(),
        sys.version.encode(),
        " ".join(ENVIRONMENT_TOOLS).encode(),
    ]
    key = hashlib.sha256(b"\0".join(hashlib.sha256(p).digest() for p in key_parts)).hexdigest()
    envs = cache_dir / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    root = envs / key[:24]
    python = root / "bin" / "python"
    with FileLock(str(root) + ".lock"):
        if reuse and (root / ".complete").is_file() and python.exists():
            (root / ".complete").touch()  # recently used: pruned last
            return IsolatedEnvironment(root, python, _site_packages(python), reused=True)
        # A venv records its own path, so it is built where it will live; the .complete
        # marker, written last, is what makes it usable (a half-built one is rebuilt).
        shutil.rmtree(root, ignore_errors=True)
        _create(root, sdk_wheel, plugin_wheel, timeout)
        (root / ".complete").touch()
    _prune(envs)
    return IsolatedEnvironment(root, python, _site_packages(python), reused=False)


def _create(root: Path, sdk_wheel: Path, plugin_wheel: Path, timeout: float) -> None:
    uv = uv_command()
    python = root / "bin" / "python"
    packages = [str(sdk_wheel), str(plugin_wheel), *ENVIRONMENT_TOOLS]
    if uv:
        run_step(
            [*uv, "venv", "--quiet", "--python", sys.executable, str(root)],
            "creating the plugin environment",
            timeout,
        )
        run_step(
            [*uv, "pip", "install", "--quiet", "--python", str(python), *packages],
            "installing the plugin and its dependencies",
            timeout,
        )
    else:
        run_step(
            [sys.executable, "-m", "venv", str(root)], "creating the plugin environment", timeout
        )
        run_step(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *packages,
            ],
            "installing the plugin and its dependencies",
            timeout,
        )


def _prune(envs: Path) -> None:
    complete = sorted(
        (p for p in envs.iterdir() if (p / ".complete").is_file()),
        key=lambda p: (p / ".complete").stat().st_mtime,
        reverse=True,
    )
    for stale in complete[KEEP_ENVIRONMENTS:]:
        try:
            with FileLock(str(stale) + ".lock", timeout=0):
                shutil.rmtree(stale, ignore_errors=True)
        except Timeout:
            continue  # in use by another run
