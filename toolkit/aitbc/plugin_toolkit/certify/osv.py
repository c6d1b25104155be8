"""A local OSV service for pip-audit: advisories read from a directory, served on loopback.

pip-audit has no offline database and its Python API is private (pypa/pip-audit#130),
but ``pip-audit -s osv --osv-url URL`` sends each pinned dependency to URL as
``POST {"package": {"name": <canonical>, "ecosystem": "PyPI"}, "version": <v>}`` and
reads ``{"vulns": [<OSV record>, ...]}`` back (``{}`` when there are none).  This module
answers exactly that from a directory of OSV records (``*.json``, ``*.yaml``, ``*.yml``,
e.g. the PyPA advisory-database), read in place.  It also answers ``GET /v1/vulns/<id>``.

The index reads every record file's text but parses (:mod:`.osv_records`) only the
files a question can concern: for a package, those whose text, in canonical form, holds
its name as a word, and every file holding a backslash (an escape can spell a name
otherwise) or that is not UTF-8: a typical plugin's 17 packages parse 176 of the PyPA
database's 2,661 files, and every query and id is answered as parsing every file would.
A file that cannot be evaluated is left out but remembered, under the packages it seems
to name (if it names none: under those its text names, or every package if it is not
text or holds a backslash), so the audit can report those packages as not audited
instead of silently "not vulnerable".
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .osv_records import (
    OsvRecord,
    OsvRecordError,
    is_affected,
    load_record_file,
    parse_record,
)

# what the audit and its tests use of the records, beside the index
__all__ = [
    "OsvIndex", "OsvRecord", "OsvRecordError", "OsvServer", "fingerprint", "is_affected",
    "load_index", "load_record_file", "parse_record",
]  # fmt: skip

SUFFIXES = (".json", ".yaml", ".yml")
# A canonical name is found by its text as a word (no letter or digit either side) when
# it is only letters, digits and "-": its spelling in a record then differs by case and
# separators alone (canonical form), or holds a backslash.  Other names: every file.
_WORD = re.compile(r"[a-z0-9-]+")
Unusable = tuple[Path, str, frozenset[str]]  # a record file, why, the packages it names


# -- the index: every record file's text, a file parsed when a question needs it -------
def _record_files(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(SUFFIXES):
                yield Path(root, name)


def fingerprint(directory: Path) -> str:
    """Cheap identity of a database: its path, record count, total size, newest mtime
    (directories included, so a deleted record shows too)."""
    count = size = 0
    newest = directory.stat().st_mtime_ns
    for root, _dirs, files in os.walk(directory):
        newest = max(newest, Path(root).stat().st_mtime_ns)
        for name in files:
            if name.endswith(SUFFIXES):
                stat = Path(root, name).stat()
                count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
    return f"{directory.resolve()} records={count} bytes={size} newest_mtime_ns={newest}"


def _named_packages(data: object) -> set[str]:
    """The packages an unusable record seems to be about (best effort)."""
    names: set[str] = set()
    entries = data.get("affected") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if isinstance(package, dict) and isinstance(package.get("name"), str):
            names.add(canonicalize_name(package["name"]))
    return names


class OsvIndex:
    """The records of a directory, each file parsed once, when a question needs it."""

    def __init__(self, directory: Path, key: str | None = None) -> None:
        self.directory = directory
        self.fingerprint = key or fingerprint(directory)
        self._paths = list(_record_files(directory))
        self._texts: list[str] = []  # each file's text in canonical form
        self._always: set[int] = set()  # files any question may concern (see _WORD)
        for number, path in enumerate(self._paths):
            try:
                raw = path.read_bytes()
                self._texts.append(canonicalize_name(raw.decode("utf-8")))
            except (OSError, ValueError):  # unreadable: parsing says why, for every package
                self._texts.append("")
                self._always.add(number)
                continue
            if b"\\" in raw:
                self._always.add(number)
        self._parsed: dict[int, OsvRecord | Unusable] = {}
        self._about: dict[str, list[OsvRecord | Unusable]] = {}  # by canonical name
        self._lock = threading.Lock()  # held while parsing: each file is parsed once

    def _parse(self, number: int) -> OsvRecord | Unusable:
        if number not in self._parsed:
            path, data = self._paths[number], None
            try:
                data = load_record_file(path)
                self._parsed[number] = parse_record(data, path)
            except OsvRecordError as exc:
                self._parsed[number] = (path, str(exc), frozenset(_named_packages(data)))
        return self._parsed[number]

    def _every(self) -> list[OsvRecord | Unusable]:
        with self._lock:
            return [self._parse(number) for number in range(len(self._paths))]

    def _concerning(self, name: str) -> list[OsvRecord | Unusable]:
        """What the files that may be about canonical ``name`` hold, in file order."""
        with self._lock:
            if name not in self._about:
                numbers: Iterable[int] = range(len(self._paths))
                if _WORD.fullmatch(name):
                    word = re.compile(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])")
                    numbers = {n for n, text in enumerate(self._texts)
                               if name in text and word.search(text)} | self._always  # fmt: skip
                self._about[name] = [self._parse(number) for number in sorted(numbers)]
            return self._about[name]

    def query(self, package: str, version: str | None) -> list[OsvRecord]:
        name = canonicalize_name(package)
        return [
            r
            for r in self._concerning(name)
            if isinstance(r, OsvRecord)
            and name in r.packages
            and not r.withdrawn
            and (version is None or is_affected(r, package, version))
        ]

    def problems(self, package: str) -> list[str]:
        """Why records about ``package`` (or naming no package, in a file that may be
        about it) could not be used."""
        name = canonicalize_name(package)
        return [f"{path}: {why}" for path, why, names in _unusable(self._concerning(name))
                if not names or name in names]  # fmt: skip

    def record(self, key: str) -> OsvRecord | None:
        """The first record (in file order) with ``key`` as its id or an alias."""
        numbers: Iterable[int] = range(len(self._paths))
        if key.isascii() and not any(c.isspace() or c == "'" for c in key):
            text = canonicalize_name(key)  # as it shows in a file's text in canonical form
            numbers = sorted({n for n, t in enumerate(self._texts) if text in t} | self._always)
        with self._lock:
            for number in numbers:
                found = self._parse(number)
                if isinstance(found, OsvRecord) and key in (found.id, *found.aliases):
                    return found
        return None

    def has_records(self) -> bool:
        """Whether any file is a usable record (the first usable one ends the search)."""
        with self._lock:
            return any(isinstance(self._parse(n), OsvRecord) for n in range(len(self._paths)))

    @property
    def records(self) -> int:
        """How many usable records the directory holds (every file parsed)."""
        return sum(isinstance(r, OsvRecord) for r in self._every())

    @property
    def invalid(self) -> list[Unusable]:
        """Every unusable record file (every file parsed)."""
        return _unusable(self._every())

    @property
    def parsed(self) -> int:
        """How many record files have been parsed so far."""
        return len(self._parsed)


def _unusable(found: Iterable[OsvRecord | Unusable]) -> list[Unusable]:
    return [r for r in found if not isinstance(r, OsvRecord)]


_CACHE: dict[str, OsvIndex] = {}
_CACHE_LOCK = threading.Lock()


def load_index(directory: Path) -> OsvIndex:
    """The index of ``directory``, read once per process while it is unchanged."""
    key = fingerprint(directory)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = OsvIndex(directory, key)
        return _CACHE[key]


# -- the server ----------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    index: OsvIndex


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # checks never print
        pass

    def _send(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        prefix = "/v1/vulns/"
        found = self.path.startswith(prefix)
        record = self.server.index.record(self.path[len(prefix) :]) if found else None
        if record is None:
            self._send(404, {"code": 5, "message": "Bug not found."})
        else:
            self._send(200, record.served)

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/query":
            self._send(404, {"code": 5, "message": "Not found."})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            query = json.loads(self.rfile.read(length) or b"null")
            package, version = query["package"], query.get("version")
            name, ecosystem = package["name"], package.get("ecosystem", "PyPI")
            if not isinstance(name, str) or not isinstance(version, (str, type(None))):
                raise TypeError("name and version must be strings")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._send(400, {"code": 3, "message": f"Invalid query: {exc}"})
            return
        found = self.server.index.query(name, version) if ecosystem == "PyPI" else []
        self._send(200, {"vulns": [r.served for r in found]} if found else {})


class OsvServer:
    """``with OsvServer(index) as url:`` an OSV query endpoint on 127.0.0.1 (any port)."""

    def __init__(self, index: OsvIndex) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.index = index
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/query"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
