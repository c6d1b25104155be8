"""Per-check result cache, keyed by the content of what the check reads plus the
toolkit and tool versions and the policy.  Lives in the user cache directory
(XDG_CACHE_HOME is respected); `--no-cache` bypasses it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib import metadata as importlib_metadata
from pathlib import Path

from filelock import FileLock
from platformdirs import user_cache_dir

from ..files import write_atomic
from .model import CheckResult, CheckStatus, check_result_from_dict

#: Only verdicts are cached; an error or an incomplete audit may be transient.
CACHEABLE = frozenset({CheckStatus.PASSED, CheckStatus.FAILED})


def cache_root() -> Path:
    return Path(user_cache_dir("aitbc-plugin"))


@contextmanager
def mypy_cache(project: Path) -> Iterator[Path]:
    """mypy's incremental cache for one plugin project, kept between runs and held by one
    run at a time: after a one-line edit mypy re-analyses the changed module and what
    depends on it, not the SDK and the standard library (seconds of every run).

    Trusting it is safe because mypy trusts no entry blindly: each is checked against
    the size and hash of the file it came from, and a module with errors is never cached,
    so its errors are found again every run.  Keyed by the project's path and this
    Python: several plugins' caches never mix, and a cache never outlives its Python."""
    root = cache_root() / "mypy"
    key = hashlib.sha256(f"{project.resolve()}\0{sys.version}".encode()).hexdigest()[:24]
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        yield folder


def _seed() -> Path:
    """Where the shared start of every project's mypy cache is kept: what the probe's
    own imports need (the SDK, the standard library, click), no plugin's code."""
    key = hashlib.sha256(f"{sys.version}\0{_version('mypy')}".encode()).hexdigest()[:24]
    return cache_root() / "mypy" / f"seed-{key}"


def seed_mypy_cache(cache_dir: Path) -> bool:
    """Start an empty project cache from the seed; False when there is none yet.
    Safe to share: mypy checks each entry against the file it came from."""
    seed = _seed()
    if not seed.is_dir():
        return False
    shutil.copytree(seed, cache_dir, dirs_exist_ok=True)
    return True


def publish_mypy_seed(cache_dir: Path) -> None:
    """Make ``cache_dir`` (just warmed, before any plugin code was analysed) the seed,
    whole or not at all; a seed once made is never changed (a racing run's is kept)."""
    seed = _seed()
    if seed.exists():
        return
    staging = Path(tempfile.mkdtemp(prefix=".seed-", dir=seed.parent))
    try:
        shutil.copytree(cache_dir, staging, dirs_exist_ok=True)
        staging.rename(seed)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def _version(distribution: str) -> str:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return "none"


def fingerprint(paths: list[Path], base: Path) -> str:
    """Content of files; for a directory, the names, sizes and mtimes of what it holds
    (a large vulnerability database is cheaper to stat than to read)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = os.path.relpath(path, base) if path.is_relative_to(base) else str(path)
        digest.update(name.encode() + b"\0")
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    stat = child.stat()
                    digest.update(
                        f"{child.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
                    )
        elif path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(b"<missing>")
    return digest.hexdigest()


class ResultCache:
    def __init__(self, root: Path | None, salt: str) -> None:
        self.root = root / "results" if root else None
        self.salt = salt  # toolkit and tool versions, policy

    def key(self, check_id: str, inputs: list[Path], base: Path) -> str:
        return hashlib.sha256(
            f"{check_id}\0{self.salt}\0{fingerprint(inputs, base)}".encode()
        ).hexdigest()

    def get(self, key: str) -> CheckResult | None:
        if self.root is None:
            return None
        try:
            data = json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
            return replace(check_result_from_dict(data), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: run the check

    def put(self, key: str, result: CheckResult) -> None:
        if self.root is None or result.status not in CACHEABLE:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / f"{key}.json", json.dumps(result.as_dict()).encode())


class AnswerCache:
    """The metadata probe's answer for a wheel asked before, under the same salt (toolkit,
    tools, policy, Python) and the same probe script.  Only a quiet answer is kept: a
    probe whose import did anything of note (or that failed) is asked again next time,
    and watched again, as a build is."""

    def __init__(self, root: Path | None, salt: str) -> None:
        self.root = root / "answers" if root else None
        self.salt = salt

    def key(self, inputs: list[Path], base: Path) -> str:
        digest = hashlib.sha256(f"probe\0{self.salt}\0{fingerprint(inputs, base)}".encode())
        return digest.hexdigest()

    def get(self, key: str) -> object | None:
        if self.root is None:
            return None
        try:
            answer: object = json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent or damaged: ask the plugin
        return answer

    def put(self, key: str, answer: object) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / f"{key}.json", json.dumps(answer).encode())


class BuildCache:
    """The wheel and sdist of a source tree seen before.  Builds are reproducible
    (SOURCE_DATE_EPOCH is fixed, and the `build` check proves it for every wheel it
    admits), so the same files give the same wheel: an unchanged plugin is not built
    again.  Only complete builds are kept."""

    def __init__(self, root: Path | None, salt: str) -> None:
        self.root = root / "builds" if root else None
        self.salt = salt

    def key(self, source: Path) -> str:
        files = [p for p in source.rglob("*") if p.is_file() or p.is_symlink()]
        return hashlib.sha256(f"{self.salt}\0{fingerprint(files, source)}".encode()).hexdigest()

    def get(self, key: str, out_dir: Path) -> tuple[Path, Path] | None:
        if self.root is None:
            return None
        folder = self.root / key
        wheels, sdists = sorted(folder.glob("*.whl")), sorted(folder.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            return None
        out_dir.mkdir(parents=True, exist_ok=True)
        return (
            Path(shutil.copy2(wheels[0], out_dir / wheels[0].name)),
            Path(shutil.copy2(sdists[0], out_dir / sdists[0].name)),
        )

    def put(self, key: str, wheel: Path, sdist: Path) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        try:
            for artifact in (wheel, sdist):
                shutil.copy2(artifact, staging / artifact.name)
            staging.rename(self.root / key)  # whole or not at all; a racing run won
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)


class Durations:
    """How long each check took the last time it ran (not from the cache), kept in the
    user cache so that the runner starts the longest first: the slowest check is then
    never the last to start.  Only a schedule: a damaged file reads as an empty one."""

    def __init__(self, root: Path | None) -> None:
        self.path = root / "durations.json" if root else None
        self.seconds: dict[str, float] = {}
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                data = json.loads(self.path.read_bytes())
                self.seconds = {str(k): float(v) for k, v in data.items()}

    def update(self, results: Iterable[CheckResult]) -> None:
        fresh = {r.id: r.duration_s for r in results if not r.cached}
        if self.path is None or not fresh:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps({**self.seconds, **fresh}).encode())
