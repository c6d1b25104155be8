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
    real = time.time_ns
    monkeypatch.setattr(integrity.time, "time_ns", lambda: real() + 10 * integrity.SETTLED_NS)


def _module(root: Path) -> Path:
    module = root / "lib" / "sdk.py"
    module.parent.mkdir()
    module.write_text("TRUSTED = True\n")
    time.sleep(0.05)  # past the coarse clock's tick: the next write moves ctime
    return module


def test_a_rewrite_keeping_size_and_mtime_is_found_after_a_remembered_digest(
    tmp_path: Path, settled: None
) -> None:
    module = _module(tmp_path)
    integrity.record(tmp_path)  # digests remembered
    assert integrity.verify(tmp_path) is None
    kept = module.stat()
    with module.open("r+b") as stream:  # in place: same inode, same size
        stream.write(b"TRUSTED = 0   \n")
    os.utime(module, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert module.stat().st_size == kept.st_size
    assert integrity.verify(tmp_path) == "lib/sdk.py changed"


def test_a_remembered_digest_is_not_read_again(
    tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path)
    integrity.record(tmp_path)
    monkeypatch.setattr(integrity.os, "read", lambda *_: pytest.fail("read again"))
    assert integrity.verify(tmp_path) is None


def test_a_file_written_just_now_is_always_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module(tmp_path)
    integrity.record(tmp_path)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(integrity.os, "read", lambda fd, n: reads.append(fd) or real_read(fd, n))
    assert integrity.verify(tmp_path) is None and reads, f"{module} not read again"
