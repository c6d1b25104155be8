"""The SDK as plugin environments get it: no index has it, so the installed
`aitbc.plugins` is packed into a wheel (in memory, the same bytes every time), kept in
the user cache only as long as it is still those bytes, and compared, once installed,
with what it holds."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import aitbc.plugins

from ..errors import ToolkitError
from ..files import write_atomic


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


def sdk_wheel_bytes() -> tuple[str, bytes]:
    """A wheel of the running SDK only (not the toolkit): its file name and its bytes,
    made in memory from the installed files, the same bytes every time."""
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
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return f"{content_id}/aitbc_plugins-{version}-py3-none-any.whl", buffer.getvalue()


def pack_sdk_wheel(out_dir: Path) -> Path:
    """The SDK's wheel in ``out_dir``, checked before each use: a cached file whose
    sha256 is not that of the wheel the installed SDK makes (plugin code, in a run
    without the jail, may have rewritten it) is replaced, atomically, before use."""
    return checked_wheel(out_dir)[0]


def checked_wheel(out_dir: Path) -> tuple[Path, bytes]:
    name, data = sdk_wheel_bytes()
    wheel = out_dir / name
    try:
        cached = hashlib.sha256(wheel.read_bytes()).digest()
    except OSError:
        cached = None  # absent (or not a file): written below
    if cached != hashlib.sha256(data).digest():
        wheel.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(wheel, data)
    return wheel, data


def check_installed(site_packages: Path, sdk_wheel: bytes) -> None:
    """The SDK installed is the one in its wheel, file for file (the checks rely on it)."""
    differs = installed_difference(site_packages, sdk_wheel)
    if differs is not None:
        raise ToolkitError(f"the plugin environment holds a changed SDK: {differs} differs")


def installed_difference(site_packages: Path, sdk_wheel: bytes) -> str | None:
    """The first of the wheel's files (its package and its metadata: the entry points
    say what pytest loads) that the installed SDK does not hold byte for byte; the
    RECORD excepted, which the installer rewrites."""
    with zipfile.ZipFile(io.BytesIO(sdk_wheel)) as archive:
        for name in (n for n in archive.namelist() if not n.endswith(".dist-info/RECORD")):
            try:
                same = (site_packages / name).read_bytes() == archive.read(name)
            except OSError:
                same = False
            if not same:
                return name
    return None
