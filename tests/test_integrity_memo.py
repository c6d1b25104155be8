"""The digests one process remembers while it verifies the same environments again:
remembered only for files whose ctime had settled, and never trusted past a write,
even one that keeps the size and sets the mtime back (as a hostile writer would)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify import integrity


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file counts as written long ago, so its digest is remembered."""
    monkeypatch.setattr(integrity, "SETTLED_NS", -10 * 10**9)


def _module(root: Path) -> Path:
    module = root / "lib" / "sdk.py"
    module.parent.mkdir()
    module.write_text("TRUSTED = True\n")
    time.sleep(0.05)  # past the coarse clock's tick: the next write moves ctime
    return module


def _remembered(path: Path) -> bool:
    found = path.stat()
    identity = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
    return identity in integrity._DIGESTS


def test_a_rewrite_keeping_size_and_mtime_is_found_after_a_remembered_digest(
    tmp_path: Path, settled: None
) -> None:
    module = _module(tmp_path)
    integrity.record(tmp_path)
    assert _remembered(module) and integrity.verify(tmp_path) is None
    kept = module.stat()
    with module.open("r+b") as stream:  # in place: same inode, same size
        stream.write(b"TRUSTED = 0   \n")
    os.utime(module, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert module.stat().st_size == kept.st_size
    assert integrity.verify(tmp_path) == "lib/sdk.py changed"


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path) -> None:
    module = _module(tmp_path)
    integrity.record(tmp_path)
    assert not _remembered(module) and integrity.verify(tmp_path) is None
