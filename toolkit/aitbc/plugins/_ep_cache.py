"""The entry-point listing kept on disk, so that a host started anew (a CLI that runs
once per command) does not scan every installed distribution again, as stevedore's
cache does.  One file per interpreter, in ``$XDG_CACHE_HOME/aitbc-plugins`` (else
``~/.cache/aitbc-plugins``; ``AITBC_PLUGINS_CACHE_DIR`` overrides, ``off`` disables),
holding the installation fingerprint it was made under: a different fingerprint (a
distribution installed or removed on ``sys.path``) makes it stale.  Written to a
temporary name, then renamed: a reader sees a whole file or none; a damaged one is
ignored."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

_VERSION = 2  # rows: name, version, source, location, distribution


def _file() -> Path | None:
    chosen = os.environ.get("AITBC_PLUGINS_CACHE_DIR")
    if chosen == "off":
        return None
    if chosen:
        folder = Path(chosen)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base) / "aitbc-plugins"
    interpreter = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode()).hexdigest()[:16]
    return folder / f"entry-points-{interpreter}.json"


def load(fingerprint: list[Any]) -> list[list[Any]] | None:
    """The plugins listed under ``fingerprint``, or None (absent, stale or damaged)."""
    path = _file()
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
        if data["version"] != _VERSION or data["fingerprint"] != fingerprint:
            return None
        plugins = data["plugins"]
        return plugins if isinstance(plugins, list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(fingerprint: list[Any], plugins: list[list[Any]]) -> None:
    path = _file()
    if path is None:
        return
    with contextlib.suppress(OSError):  # a read-only home: the listing just is not kept
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": _VERSION, "fingerprint": fingerprint, "plugins": plugins}
        data = json.dumps(payload, separators=(",", ":")).encode()
        handle, temporary = tempfile.mkstemp(prefix=".entry-points-", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            Path(temporary).replace(path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            raise
