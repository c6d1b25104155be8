"""The isolated environment the `lifecycle` and `tests` checks share.

It holds the very SDK this toolkit runs (no index has it: sdk_wheel.py packs the
installed `aitbc.plugins` into a wheel) and the plugin's wheel with its dependencies.  It is
the dominant cost of a run, so it is made with uv when available and kept in the
user cache, keyed by the two wheels' hashes: an unchanged plugin reuses it, once it
is shown to hold exactly what it held when it was made (integrity.py).

Installing runs outside the jail (it needs the package index), so it runs no package's
code: wheels only (`--no-build`), never a dependency's `setup.py`; and nothing here
runs the environment's own Python, whose start-up runs the installed packages' `.pth`
files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aitbc.plugins.process import run
from filelock import FileLock, Timeout

from ..errors import ToolkitError
from . import bases, integrity
from .sdk_wheel import check_installed, checked_wheel, installed_difference

# sysconfig's first call is not thread-safe (two threads at once, as the sdist's and the
# wheel's builds are, can read None for a variable): it is made here, on import, once.
sysconfig.get_config_vars()
KEEP_ENVIRONMENTS = 8  # older ones are pruned
KEEP_BASES = 4  # the dependencies of the plugins certified most recently
PRUNE_TIMEOUT_S = 60.0
# Tools the environment needs beside the plugin: the tests check runs pytest in it.
ENVIRONMENT_TOOLS = ("pytest", "pytest-timeout>=2.3", "coverage>=7.4")
#: Every install: wheels only (building an sdist runs its setup.py, here, unjailed);
#: and copies, not uv's default hard links into its cache, through which a write into
#: one environment would change uv's cache, and so every environment made from it later,
#: this one rebuilt included.
UV_INSTALL = ("--no-build", "--link-mode=copy")
PIP_INSTALL = ("--only-binary", ":all:")


@dataclass(frozen=True)
class IsolatedEnvironment:
    root: Path
    python: Path
    site_packages: Path
    reused: bool
    #: Why the cached environment was rebuilt rather than reused: what had changed in
    #: it since it was made ("lib/python3.12/site-packages/evil.pth added").  None when
    #: it was reused, or made for the first time.
    rebuilt_because: str | None = None


def uv_command() -> list[str] | None:
    try:
        from uv import find_uv_bin

        return [find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        return [found] if found else None


def run_step(
    command: list[str], what: str, timeout: float, cwd: Path | None = None, *,
    installs: str | None = None,
) -> str:  # fmt: skip
    """A set-up step of the toolkit's own: its output, or a ToolkitError saying what failed.
    ``installs`` ("dependency"...) marks a uv install, whose refusal to build is said so."""
    done = run(command, timeout=timeout, cwd=cwd)
    if done.timed_out:
        raise ToolkitError(f"{what} took longer than {timeout:g}s")
    if done.returncode != 0:
        refused = installs and source_only_error(done.stderr + done.stdout, installs)
        raise ToolkitError(refused or f"{what} failed: {done.tail(3)}")
    return done.stdout


# uv's words (0.4 to 0.13) when --no-build meets a package with no usable wheel.
_NO_WHEEL = (
    re.compile(r"Wheels are required for `([^`]+)` because building from source is disabled"),
    re.compile(
        r"Building source distributions (?:is disabled, but attempted to build|for) `([^`]+)`"
    ),
)
_PINNED = re.compile(r"Because (?:only )?(\S+) has no usable wheels")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def source_only_error(output: str, which: str = "dependency") -> str | None:
    """One line naming the package (a ``which``) an install refused to build, from uv's
    output; None when that is not why it failed."""
    text = _ANSI.sub("", output)
    for pattern in _NO_WHEEL:
        if found := pattern.search(text):
            name = found.group(1).split(" @ ")[0]
            pinned = _PINNED.search(text)
            if pinned and pinned.group(1).lower().startswith(name.lower()):
                name = pinned.group(1)
            return (f"{which} {name} is published only as source; certify installs wheels only, "
                    "because building a dependency runs its code outside the sandbox")  # fmt: skip
    return None


def site_packages_of(root: Path) -> Path:
    """The venv's site-packages, from its layout: asking its Python would run the `.pth`
    files of what is installed there, outside the jail.  The venv was made with this
    Python (its version is in every cache key), so the layout is this Python's."""
    names = sysconfig.get_scheme_names()
    scheme = "posix_venv" if "posix_venv" in names else "posix_prefix"  # 3.10: no venv scheme
    place = Path(
        sysconfig.get_path("purelib", scheme, vars={"base": str(root), "platbase": str(root)})
    )
    if not place.is_dir():
        raise ToolkitError(f"the environment {root} has no {place.relative_to(root)}")
    return place


def reuse_or_make(
    root: Path, make: Callable[[], list[Path] | None], *, reuse: bool, timeout: float
) -> tuple[bool, str | None]:
    """(reused, why it was rebuilt) for the environment at ``root``, made by ``make``
    where it is absent, half-built or changed (the caller holds its lock).  The record
    of its files is taken after the install (bytecode compiled first: the modules
    ``make`` names, or all) and written last, as the marker that makes it usable."""
    rebuilt_because = None
    if reuse and integrity.is_marked(root):
        rebuilt_because = integrity.verify(root)
        if rebuilt_because is None:
            integrity.touch(root)
            return True, None
    # A venv records its own path, so it is built where it will live.
    remove_tree(root, timeout)
    modules = make()
    integrity.compile_bytecode(site_packages_of(root), timeout, modules)
    integrity.record(root)
    return False, rebuilt_because


def environment_for(
    plugin_wheel: Path, cache_dir: Path, *, reuse: bool = True, timeout: float = 600
) -> IsolatedEnvironment:
    """Create (or reuse) the environment holding the SDK and ``plugin_wheel``.

    One per plugin wheel, never changed once made.  A new wheel whose requirements
    are those of one seen before (the plugin edited, not its dependencies) starts from
    a copy of the *base* made for them (the SDK, the tools and the dependencies, with
    their bytecode) and only the plugin itself is installed into it: a copy is a tenth
    of a second, a fresh install and compile a second or more."""
    sdk_wheel, sdk_bytes = checked_wheel(cache_dir / "sdk-wheels")
    key = _key(sdk_bytes, plugin_wheel.read_bytes())
    envs = cache_dir / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    root = envs / key[:24]
    base = Base(cache_dir / "bases", sdk_wheel, sdk_bytes, plugin_wheel, reuse, timeout)
    with FileLock(str(root) + ".lock"):
        reused, rebuilt_because = reuse_or_make(
            root, lambda: _create(root, base), reuse=reuse, timeout=timeout
        )
        site_packages = site_packages_of(root)
    if not reused:
        _prune(envs, KEEP_ENVIRONMENTS)
    return IsolatedEnvironment(root, root / "bin" / "python", site_packages, reused,
                               rebuilt_because)  # fmt: skip


def _key(*parts: bytes) -> str:
    parts += (sys.version.encode(), " ".join(ENVIRONMENT_TOOLS).encode())
    return hashlib.sha256(b"\0".join(hashlib.sha256(p).digest() for p in parts)).hexdigest()


@dataclass(frozen=True)
class Base:
    """Where the bases live, and what a plugin environment is made with."""

    folder: Path
    sdk_wheel: Path
    sdk_bytes: bytes
    plugin_wheel: Path  # what the environment is for (the project, for a base made early)
    reuse: bool
    timeout: float


def _create(root: Path, base: Base) -> list[Path] | None:
    """Make the environment; the modules that need bytecode (None: all of them)."""
    requirements = bases.wheel_requirements(base.plugin_wheel)
    modules = bases.modules_of(base.plugin_wheel)
    if requirements is None or modules is None or uv_command() is None:
        _install(root, base, [str(base.sdk_wheel), str(base.plugin_wheel), *ENVIRONMENT_TOOLS])
        return None
    with _base_made(base, requirements) as made:  # held while linked: never rebuilt mid-way
        _link_tree(made, root, base.timeout)
    site_packages = site_packages_of(root)
    written = bases.installed_paths(base.plugin_wheel, site_packages.relative_to(root).as_posix())
    _own_copies(root, [*(written or []), *(f"bin/{p.name}" for p in (root / "bin").iterdir())])
    uv = uv_command() or []
    run_step([*uv, "pip", "install", "--quiet", *UV_INSTALL, "--no-deps", "--python",
              str(root / "bin" / "python"), str(base.plugin_wheel)],
             "installing the plugin", base.timeout, root.parent)  # fmt: skip
    check_installed(site_packages, base.sdk_bytes)
    return [site_packages / name for name in modules]  # the copy's bytecode is valid


@contextmanager
def _base_made(
    base: Base, requirements: list[str], when_installed: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """The base for ``requirements``, made or verified, locked while the caller uses it."""
    base.folder.mkdir(parents=True, exist_ok=True)
    made = base.folder / _key(base.sdk_bytes, "\n".join(requirements).encode())[:24]
    packages = [str(base.sdk_wheel), *requirements, *ENVIRONMENT_TOOLS]

    def make() -> None:
        _install(made, base, packages)
        if when_installed is not None:
            when_installed(made)

    with FileLock(str(made) + ".lock"):
        reused, _ = reuse_or_make(made, make, reuse=base.reuse, timeout=base.timeout)
        yield made
    if not reused:
        _prune(base.folder, KEEP_BASES)


def prepare_base(
    project: Path, cache_dir: Path, *, reuse: bool = True, timeout: float = 600,
    when_installed: Callable[[Path], None] | None = None,
) -> Path | None:  # fmt: skip
    """Make the base the project's wheel will most likely need, from the dependencies its
    ``pyproject.toml`` declares, while the wheel is built (the build takes seconds, and
    so does the base); None when they are not declared there statically.
    ``when_installed(root)``: a base made now has its packages, not yet their bytecode
    (what reads only sources, as mypy does, can start; called under the base's lock)."""
    requirements = bases.project_requirements(project)
    if requirements is None or uv_command() is None:
        return None
    sdk_wheel, sdk_bytes = checked_wheel(cache_dir / "sdk-wheels")
    base = Base(cache_dir / "bases", sdk_wheel, sdk_bytes, project, reuse, timeout)
    with _base_made(base, requirements, when_installed) as made:
        return made


def _link_tree(source: Path, target: Path, timeout: float) -> None:
    """``source``'s tree at ``target``, its files hard links (``cp -al``: a twentieth of
    the time of copying 27 MB on a slow disk), the marker left out.

    Why sharing is safe: in the jail every environment is read-only, so plugin code
    writes none; where there is no jail it can write all of them anyway, linked or not.
    Either way each environment's content is hashed against its manifest before every
    use, and the base's before every link, so a change made through any link is found
    and rebuilt.  What the toolkit itself writes never goes through a link: the files
    the plugin's install may write get their own copy first (:func:`_own_copies`), and
    bytecode and the manifest are written to a new file and renamed."""
    cp = shutil.which("cp")
    if cp is None:
        shutil.copytree(source, target, symlinks=True, copy_function=os.link)
    else:
        run_step([cp, "-al", "--", str(source), str(target)], "linking the base environment",
                 timeout)  # fmt: skip
    (target / integrity.MARKER).unlink(missing_ok=True)


def _own_copies(root: Path, relatives: list[str]) -> None:
    """Each of these files that is a link shared with the base becomes the environment's
    own copy, so an installer writing into it in place changes no other environment."""
    for relative in relatives:
        path = root / relative
        if not path.resolve().is_relative_to(root.resolve()):
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and not path.is_symlink() and path.stat().st_nlink > 1:
                private = path.with_name(f".{path.name}.own")
                shutil.copy2(path, private)
                private.replace(path)


def _install(root: Path, base: Base, packages: list[str]) -> list[Path] | None:
    uv = uv_command()
    python = root / "bin" / "python"
    what = "installing the plugin and its dependencies"
    timeout = base.timeout
    # From the cache, not the user's folder: uv reads the [tool.uv] of a pyproject.toml
    # there, and that may be the plugin's own (its index, its settings).
    where = root.parent
    if uv:
        run_step([*uv, "venv", "--quiet", "--python", sys.executable, str(root)],
                 "creating the plugin environment", timeout, where)  # fmt: skip
        run_step([*uv, "pip", "install", "--quiet", *UV_INSTALL, "--python", str(python),
                  *packages], what, timeout, where, installs="dependency")  # fmt: skip
        # uv installed the SDK from its cache, where a copy may have been changed through
        # a link an older toolkit made: if any file differs from the checked wheel's, the
        # SDK once more, from that wheel and not the cache (0.3 s, so only then).
        if installed_difference(site_packages_of(root), base.sdk_bytes) is not None:
            run_step([*uv, "pip", "install", "--quiet", *UV_INSTALL, "--no-deps", "--no-cache",
                      "--reinstall-package", "aitbc-plugins", "--python", str(python),
                      str(base.sdk_wheel)], what, timeout, where)  # fmt: skip
    else:
        run_step([sys.executable, "-m", "venv", str(root)], "creating the plugin environment",
                 timeout, where)  # fmt: skip
        run_step([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *PIP_INSTALL, *packages], what, timeout, where)  # fmt: skip
    check_installed(site_packages_of(root), base.sdk_bytes)
    return None


def remove_tree(path: Path, timeout: float) -> None:
    """``rm -rf``: a pruned environment is 1,500 entries, which shutil.rmtree takes
    0.13 s to remove and rm 0.02 s.  Best effort, as ``ignore_errors`` is: what is
    left is removed next time."""
    rm = shutil.which("rm")
    if rm is not None and path.is_dir() and not path.is_symlink():
        with contextlib.suppress(OSError):
            run([rm, "-rf", "--one-file-system", "--", str(path)], timeout=timeout)
    shutil.rmtree(path, ignore_errors=True)  # no rm, or what it left: a no-op otherwise


def _prune(envs: Path, keep: int) -> None:
    complete = sorted(
        (p for p in envs.iterdir() if integrity.is_marked(p)), key=integrity.marked_at,
        reverse=True,
    )  # fmt: skip
    for stale in complete[keep:]:
        try:
            with FileLock(str(stale) + ".lock", timeout=0):
                remove_tree(stale, PRUNE_TIMEOUT_S)
        except Timeout:
            continue  # in use by another run
