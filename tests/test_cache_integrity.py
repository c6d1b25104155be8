"""What certify keeps in the user cache is checked before each use, on real files and
real venvs: a tampered SDK wheel is replaced, a changed environment is rebuilt and says
why, an untouched one is reused; and installs never build (so never run) a package."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify import bases, environment, integrity, sdk_wheel
from aitbc.plugin_toolkit.certify.build_env import build_environment_for
from aitbc.plugin_toolkit.certify.environment import (
    environment_for,
    site_packages_of,
    source_only_error,
)
from aitbc.plugin_toolkit.certify.sdk_wheel import pack_sdk_wheel, sdk_wheel_bytes
from aitbc.plugin_toolkit.errors import ToolkitError

pytestmark = pytest.mark.integration
SOURCE_ONLY = "aitbc-test-source-only"  # on no index: found through UV_FIND_LINKS alone
REFUSED = (
    "{which} aitbc-test-source-only==1.0 is published only as source; certify installs "
    "wheels only, because building a dependency runs its code outside the sandbox"
)


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    folder: Path, name: str, files: dict[str, bytes], requires: tuple[str, ...] = ()
) -> Path:
    """A minimal valid wheel of ``name`` 0.1.0 holding ``files``."""
    module = name.replace("-", "_")
    info = f"{module}-0.1.0.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    content = {
        **files,
        f"{info}/METADATA": meta.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = (
        "".join(f"{n},{_hash(d)},{len(d)}\n" for n, d in content.items()) + f"{info}/RECORD,,\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for n, d in {**content, f"{info}/RECORD": record.encode()}.items():
            archive.writestr(n, d)
    return wheel


@pytest.fixture(scope="module", autouse=True)
def sdk() -> Iterator[dict[str, bytes]]:
    """The SDK's files as they are now, for the whole module: the SDK is the working
    tree, which may change while the tests run, and with it every environment's key."""
    snapshot = sdk_wheel.sdk_files()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sdk_wheel, "sdk_files", lambda: dict(snapshot))
        yield snapshot


@dataclass(frozen=True)
class Cached:
    wheel: Path
    cache: Path


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, sdk: dict[str, bytes]) -> Cached:
    """A plugin environment (pytest + the SDK + a plugin) made once in a cache of this
    worker's own; each test starts from whatever state the last one left, whole."""
    where = tmp_path_factory.mktemp("integrity")
    wheel = make_wheel(
        where / "dist", "integrity-probe", {"integrity_probe/__init__.py": b"X = 1\n"}
    )
    environment_for(wheel, where / "cache")
    return Cached(wheel, where / "cache")


def test_an_untouched_environment_is_reused_and_stays_verified(cached: Cached) -> None:
    environment_for(cached.wheel, cached.cache)
    again = environment_for(cached.wheel, cached.cache)
    assert again.reused and again.rebuilt_because is None
    assert integrity.verify(again.root) is None  # the check itself changed nothing
    assert again.site_packages == site_packages_of(again.root)
    assert again.site_packages.name == "site-packages" and again.site_packages.is_dir()


def test_running_the_environment_outside_the_jail_writes_no_bytecode(cached: Cached) -> None:
    """Every module was compiled before the record was taken: a Python that imports
    them unjailed (and may write bytecode) finds it there, and the record holds."""
    env = environment_for(cached.wheel, cached.cache)
    subprocess.run([str(env.python), "-c", "import aitbc.plugins, pytest, integrity_probe"],
                   check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # fmt: skip
    assert integrity.verify(env.root) is None
    assert environment_for(cached.wheel, cached.cache).reused


def test_pygments_on_demand_modules_get_no_bytecode_and_pytest_needs_none(
    cached: Cached, tmp_path: Path
) -> None:
    """Where there is a jail, a base leaves pygments' lexers, styles and formatters
    uncompiled but for those pytest imports: a failing test's report, highlighted
    (what imports the most of pygments), run where bytecode may be written, writes none
    for pygments."""
    env = environment_for(cached.wheel, cached.cache)
    pygments = env.site_packages / "pygments"
    lexers = {p.name.split(".")[0] for p in (pygments / "lexers" / "__pycache__").glob("*.pyc")}
    assert lexers == {"__init__", "_mapping", "diff", "python"}
    before = sorted(pygments.rglob("*.pyc"))
    test = "def test_it():\n    assert [1, {'a': 2}] == [1, {'a': 3}]\n"
    (tmp_path / "test_fails.py").write_text(test)
    done = subprocess.run(
        [str(env.python), "-m", "pytest", "-p", "no:cacheprovider", "--color=yes",
         "--code-highlight=yes", "-vv", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )  # fmt: skip
    assert done.returncode == 1 and "\x1b[" in done.stdout  # failed, and in colour
    assert sorted(pygments.rglob("*.pyc")) == before


def test_without_a_jail_every_module_is_compiled(tmp_path: Path) -> None:
    """No bubblewrap on PATH (a real probe, in a fresh process): pygments' on-demand
    modules too, since a Python run unjailed there would write their bytecode."""
    site = tmp_path / "site" / "pygments" / "lexers"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    (site / "rust.py").write_text("NAME = 'rust'\n")
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    for tool in ("strace", "cp", "rm"):  # what else the run may ask PATH for
        found = shutil.which(tool)
        if found:
            (no_bwrap / tool).symlink_to(found)
    code = ("import sys; from pathlib import Path; "
            "from aitbc.plugin_toolkit.certify.integrity import compile_bytecode; "
            "from aitbc.plugins.sandbox.jail import isolation; "
            "assert not isolation().jailed; compile_bytecode(Path(sys.argv[1]), 60)")  # fmt: skip
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], check=True,
                   env={**os.environ, "PATH": str(no_bwrap)})  # fmt: skip
    assert [p.name.split(".")[0] for p in (site / "__pycache__").glob("*.pyc")] != []
    assert any(p.name.startswith("rust.") for p in (site / "__pycache__").glob("*.pyc"))


def _sdk_module(site: Path) -> Path:
    return site / "aitbc" / "plugins" / "__init__.py"


def _add_pth(site: Path, ran: Path) -> str:
    # ``ran`` is written if anything runs the environment's Python before the check.
    (site / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(ran)!r}).touch()\n")
    return "site-packages/evil.pth added"


def _rewrite_sdk_module(site: Path, ran: Path) -> str:
    module = _sdk_module(site)
    before = module.stat()
    module.write_text(module.read_text() + "\nLEAKS_ARE_FINE = True\n")
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime proves nothing
    return "site-packages/aitbc/plugins/__init__.py changed"


def _rewrite_bytecode(site: Path, ran: Path) -> str:
    (pyc,) = (site / "integrity_probe" / "__pycache__").glob("__init__.*.pyc")
    before, data = pyc.stat(), bytearray(pyc.read_bytes())
    data[-1] ^= 1  # same size, same mtime
    pyc.write_bytes(bytes(data))
    os.utime(pyc, ns=(before.st_atime_ns, before.st_mtime_ns))
    return f"site-packages/integrity_probe/__pycache__/{pyc.name} changed"


def _remove_file(site: Path, ran: Path) -> str:
    (site / "integrity_probe" / "__init__.py").unlink()
    return "site-packages/integrity_probe/__init__.py removed"


def _add_conftest(site: Path, ran: Path) -> str:
    (site / "conftest.py").write_text("def pytest_collection_modifyitems(items): items.clear()\n")
    return "site-packages/conftest.py added"


def _relink_python(site: Path, ran: Path) -> str:
    python = site.parents[2] / "bin" / "python"
    python.unlink()
    python.symlink_to("/bin/sh")
    return "bin/python changed"


@pytest.mark.parametrize(
    "tamper",
    [_add_pth, _rewrite_sdk_module, _rewrite_bytecode, _remove_file, _add_conftest, _relink_python],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_changed_environment_is_rebuilt_and_says_why(
    cached: Cached, tamper: Callable[[Path, Path], str], tmp_path: Path, sdk: dict[str, bytes]
) -> None:
    env = environment_for(cached.wheel, cached.cache)
    said = tamper(env.site_packages, tmp_path / "ran")
    rebuilt = environment_for(cached.wheel, cached.cache)
    assert not rebuilt.reused
    assert rebuilt.rebuilt_because is not None and said in rebuilt.rebuilt_because
    assert not (env.site_packages / "evil.pth").exists()
    assert not (tmp_path / "ran").exists()  # nothing ran the changed environment's Python
    assert _sdk_module(rebuilt.site_packages).read_bytes() == sdk["aitbc/plugins/__init__.py"]
    assert integrity.verify(rebuilt.root) is None
    assert environment_for(cached.wheel, cached.cache).reused


def test_an_environment_from_an_older_toolkit_is_rebuilt(cached: Cached) -> None:
    env = environment_for(cached.wheel, cached.cache)
    (env.root / integrity.MARKER).write_text("")  # the empty marker older toolkits wrote
    rebuilt = environment_for(cached.wheel, cached.cache)
    assert not rebuilt.reused and "no record of its files" in (rebuilt.rebuilt_because or "")


def test_many_changes_are_counted(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    integrity.record(tmp_path)
    for n in range(5):
        (tmp_path / "a" / f"{n}.pth").write_text("")
    assert integrity.verify(tmp_path) == "a/0.pth added; a/1.pth added; a/2.pth added; and 2 more"


def test_links_are_recorded_not_followed_and_fifos_not_read(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("one")
    (tmp_path / "link").symlink_to("target")
    os.mkfifo(tmp_path / "fifo")
    found = integrity.manifest(tmp_path)
    assert found["link"] == "link:target" and found["fifo"].startswith("other:")
    assert found["target"] == "sha256:" + hashlib.sha256(b"one").hexdigest()


def test_a_tampered_sdk_wheel_is_replaced_before_use(tmp_path: Path) -> None:
    name, good = sdk_wheel_bytes()
    wheel = pack_sdk_wheel(tmp_path / "sdk-wheels")
    assert wheel == tmp_path / "sdk-wheels" / name and wheel.read_bytes() == good
    stat = wheel.stat()
    assert pack_sdk_wheel(tmp_path / "sdk-wheels").stat().st_ino == stat.st_ino  # not rewritten
    # A wheel of the same name and size whose SDK finds no leak, mtime kept.
    evil = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(evil, "w") as out:
        for item in src.infolist():
            out.writestr(item, src.read(item).replace(b"def ", b"def _", 1))
    wheel.write_bytes(evil.getvalue())
    os.utime(wheel, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert pack_sdk_wheel(tmp_path / "sdk-wheels").read_bytes() == good


def test_a_plugin_environment_gets_the_real_sdk_whatever_the_cached_wheel(
    tmp_path: Path, sdk: dict[str, bytes]
) -> None:
    name, good = sdk_wheel_bytes()
    planted = tmp_path / "cache" / "sdk-wheels" / name
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"PK not this")
    wheel = make_wheel(tmp_path / "dist", "integrity-probe", {"integrity_probe/__init__.py": b""})
    env = environment_for(wheel, tmp_path / "cache")
    assert planted.read_bytes() == good
    for relative, data in sdk.items():
        assert (env.site_packages / relative).read_bytes() == data, relative


@pytest.mark.parametrize(
    "changed", ["aitbc/plugins/__init__.py", "aitbc_plugins-1.0.0.dist-info/entry_points.txt"]
)
def test_an_sdk_changed_in_uvs_cache_is_installed_from_its_wheel(
    tmp_path: Path, sdk: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    """What a write into an environment an older toolkit had hard-linked to uv's cache
    did: uv's unpacked copy of the SDK changed, which its next install copies."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    first = make_wheel(tmp_path / "one", "uv-cache-one", {"uv_cache_one/__init__.py": b""})
    environment_for(first, tmp_path / "cache")
    (unpacked,) = (tmp_path / "uv").glob("archive-v*/*/aitbc/plugins/__init__.py")
    copy = unpacked.parents[2] / changed
    copy.write_bytes(copy.read_bytes().replace(b"aitbc", b"evil") + b"\nCHANGED = 1\n")
    # Another base (another requirement): made anew, with the SDK from uv's cache.
    second = make_wheel(tmp_path / "two", "uv-cache-two", {"uv_cache_two/__init__.py": b""},
                        requires=("iniconfig",))  # fmt: skip
    env = environment_for(second, tmp_path / "cache")
    assert b"CHANGED" not in (env.site_packages / changed).read_bytes()
    for relative, data in sdk.items():
        assert (env.site_packages / relative).read_bytes() == data, relative


# -- the build environment ------------------------------------------------------------
def test_the_build_environment_is_reused_untouched_and_rebuilt_changed(tmp_path: Path) -> None:
    made = build_environment_for([], tmp_path, 600)
    assert not made.reused and made.rebuilt_because is None
    again = build_environment_for([], tmp_path, 600)
    assert again.reused and again.rebuilt_because is None
    site = site_packages_of(again.root)
    (site / "build" / "__main__.py").write_text("raise SystemExit(0)\n")
    rebuilt = build_environment_for([], tmp_path, 600)
    assert not rebuilt.reused
    assert rebuilt.rebuilt_because == f"{site.relative_to(again.root)}/build/__main__.py changed"
    assert build_environment_for([], tmp_path, 600).reused


# -- wheels only ----------------------------------------------------------------------
def source_only_package(folder: Path, marker: Path) -> Path:
    """An sdist (PKG-INFO, pyproject.toml, setup.py) whose setup.py, if it ever ran,
    would write ``marker``; packed by hand, so nothing ran to make it."""
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {SOURCE_ONLY}\nVersion: 1.0\n",
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n',
        "setup.py": f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        f"from setuptools import setup\nsetup(name={SOURCE_ONLY!r}, version='1.0')\n",
    }
    folder.mkdir(parents=True)
    sdist = folder / f"{SOURCE_ONLY.replace('-', '_')}-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, text in files.items():
            entry = tarfile.TarInfo(f"{SOURCE_ONLY.replace('-', '_')}-1.0/{name}")
            entry.size = len(text.encode())
            archive.addfile(entry, io.BytesIO(text.encode()))
    return folder


def test_a_source_only_dependency_is_refused_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "setup-py-ran"
    monkeypatch.setenv("UV_FIND_LINKS", str(source_only_package(tmp_path / "links", marker)))
    wheel = make_wheel(tmp_path / "dist", "needs-source", {"needs_source/__init__.py": b""},
                       requires=(f"{SOURCE_ONLY}==1.0",))  # fmt: skip
    with pytest.raises(ToolkitError) as raised:
        environment_for(wheel, tmp_path / "cache")
    assert str(raised.value) == REFUSED.format(which="dependency")
    with pytest.raises(ToolkitError) as raised:
        build_environment_for([f"{SOURCE_ONLY}==1.0"], tmp_path / "cache", 600)
    assert str(raised.value) == REFUSED.format(which="build requirement")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("output", "named"),
    [
        ("error: No solution found when resolving dependencies\n  cause: Because "
         "aitbc-test-source-only==1.0 has no usable wheels and you require it\n\nhint: Wheels "
         "are required for `aitbc-test-source-only` because building from source is disabled",
         "aitbc-test-source-only==1.0"),
        ("\x1b[1m\x1b[31merror\x1b[0m: Building source distributions is disabled, but "
         "attempted to build `aitbc-test-source-only`", "aitbc-test-source-only"),
        ("error: Failed to build `aitbc-test-source-only @ file:///x/s.tar.gz`\n  cause: "
         "Building source distributions for `aitbc-test-source-only` is disabled",
         "aitbc-test-source-only"),
    ],
)  # fmt: skip
def test_uvs_words_for_a_refused_build_become_one_line(output: str, named: str) -> None:
    expected = REFUSED.format(which="dependency").replace("aitbc-test-source-only==1.0", named)
    assert source_only_error(output) == expected


def test_other_failures_are_not_called_source_only() -> None:
    assert source_only_error("error: Failed to fetch: https://pypi.org/simple/foo/") is None


# -- the edit loop: a new plugin wheel, the same requirements -------------------------
def _bases(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "bases").iterdir() if integrity.is_marked(p))


def _base_of(wheel: Path, cache: Path) -> Path:
    """The base made for ``wheel``'s requirements (other tests of this module, in any
    order, may have made others in the same cache)."""
    requirements = bases.wheel_requirements(wheel)
    assert requirements is not None
    key = environment._key(sdk_wheel_bytes()[1], "\n".join(requirements).encode())
    base = cache / "bases" / key[:24]
    assert integrity.is_marked(base), f"no base for {wheel.name} in {_bases(cache)}"
    return base


def test_an_edited_plugin_gets_a_copy_of_its_base_with_only_itself_installed(
    cached: Cached, tmp_path: Path
) -> None:
    """The author's edit is a new wheel: its environment starts from a copy of the base
    made for the same requirements, and holds the new code; the old one is untouched."""
    old = environment_for(cached.wheel, cached.cache)
    edited = make_wheel(
        tmp_path / "dist", "integrity-probe", {"integrity_probe/__init__.py": b"X = 2\n"}
    )
    bases_before = _bases(cached.cache)
    new = environment_for(edited, cached.cache)
    assert not new.reused and new.root != old.root
    assert _bases(cached.cache) == bases_before  # no new base: the same requirements
    check = [str(new.python), "-c", "import integrity_probe; print(integrity_probe.X)"]
    unjailed = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
    assert subprocess.run(check, capture_output=True, text=True, check=True,
                          env=unjailed).stdout == "2\n"  # fmt: skip
    assert integrity.verify(new.root) is None  # its bytecode was compiled before the record
    assert integrity.verify(old.root) is None and environment_for(cached.wheel, cached.cache).reused


def test_a_tampered_base_is_rebuilt_before_it_is_copied(cached: Cached, tmp_path: Path) -> None:
    """A hostile write into the base (an older unjailed run) never reaches the next
    environment made from it."""
    environment_for(cached.wheel, cached.cache)
    base = _base_of(cached.wheel, cached.cache)
    ran = tmp_path / "ran"
    _add_pth(site_packages_of(base), ran)
    edited = make_wheel(
        tmp_path / "dist", "integrity-probe", {"integrity_probe/__init__.py": b"X = 3\n"}
    )
    new = environment_for(edited, cached.cache)
    assert not (new.site_packages / "evil.pth").exists()
    assert not (site_packages_of(base) / "evil.pth").exists() and integrity.verify(base) is None
    assert not ran.exists()


def test_other_requirements_get_another_base(cached: Cached, tmp_path: Path) -> None:
    environment_for(cached.wheel, cached.cache)
    before = _bases(cached.cache)
    module = {"integrity_probe/__init__.py": b"X = 4\n"}
    other = make_wheel(tmp_path / "dist", "integrity-probe", module, requires=("iniconfig",))
    new = environment_for(other, cached.cache)
    assert len(_bases(cached.cache)) == len(before) + 1
    assert (new.site_packages / "iniconfig").is_dir()


def test_a_wheel_overwriting_a_dependency_changes_no_other_environment(
    cached: Cached, tmp_path: Path
) -> None:
    """Hostile: the plugin ships a file where the base holds a dependency's module.  The
    environment's files are links to the base's, but what the install writes is the
    environment's own copy first: the base and every other environment keep theirs."""
    old = environment_for(cached.wheel, cached.cache)
    base = _base_of(cached.wheel, cached.cache)
    target = site_packages_of(base) / "iniconfig" / "__init__.py"
    before = target.read_bytes()
    hostile = make_wheel(tmp_path / "dist", "integrity-probe", {
        "integrity_probe/__init__.py": b"X = 5\n",
        "iniconfig/__init__.py": b"raise SystemExit('replaced')\n",
    })  # fmt: skip
    new = environment_for(hostile, cached.cache)
    assert (new.site_packages / "iniconfig" / "__init__.py").read_bytes().startswith(b"raise")
    assert target.read_bytes() == before and integrity.verify(base) is None
    assert (old.site_packages / "iniconfig" / "__init__.py").read_bytes() == before
    assert integrity.verify(old.root) is None
    shared = (new.site_packages / "aitbc" / "plugins" / "__init__.py").stat()
    assert shared.st_nlink > 1  # the rest is shared: linked, not copied
