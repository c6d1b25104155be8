"""The fast strace log parser reads every log exactly as the character-walking one it
replaced (tests/strace_reference.py, the oracle): generated lines shaped like strace's
(hex strings, nested brackets, unfinished and resumed halves, ``...`` truncation, padded
pids), garbage, and real logs (tests/data/strace)."""

from __future__ import annotations

import lzma
import os
import posixpath
import re
from pathlib import Path
from unittest import mock

import pytest
import strace_reference as reference
from aitbc.plugins.sandbox import strace_log, trace
from aitbc.plugins.sandbox.leaks import within
from aitbc.plugins.sandbox.strace_log import (
    decode,
    fd_path,
    parse,
    split_args,
    string_arg,
    string_args,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

LOGS = sorted((Path(__file__).parent / "data" / "strace").glob("*.strace.xz"))
STRUCTURE = '"()[]{}<>,'


def hexed(raw: bytes) -> str:
    return "".join("\\x%02x" % b for b in raw)  # noqa: UP031 - no backslash in f-strings


# What strace writes inside a call's parentheses, built up from its pieces.
strings = st.builds(lambda raw, cut: f'"{hexed(raw)}"{"..." if cut else ""}',
                    st.binary(max_size=40), st.booleans())  # fmt: skip
fds = st.builds(lambda fd, raw: f"{fd}<{hexed(raw)}>",
                st.sampled_from(["3", "AT_FDCWD", "-1", "17"]), st.binary(max_size=30))  # fmt: skip
words = st.sampled_from(["O_RDONLY|O_CLOEXEC", "0666", "NULL", "0x7ffd1234", "88", "-1",
                         "sa_family=AF_INET", "/* 30 vars */", "=>", "...", "", " "])  # fmt: skip
junk = st.text(alphabet=STRUCTURE + "\\x09af =.", max_size=6)
atoms = strings | fds | words | junk


def _group(items: list[str], shape: str) -> str:
    return shape[0] + ", ".join(items) + shape[1]


args = st.recursive(
    atoms,
    lambda inner: st.builds(_group, st.lists(inner, max_size=4),
                            st.sampled_from(["[]", "{}", "()", "<>", "htons()", "[}"])),
    max_leaves=12,
)  # fmt: skip
returns = st.sampled_from([
    " = 0", " = -1 ENOENT (No such file or directory)", f" = 3<{hexed(b'/tmp/x')}>",
    " = 5 /* 200 in strace's PID NS */", " = ?", "= 0x7f00", " = 2<socket:[1]>", "",
    " = -1 EINPROGRESS (Operation now in progress)", ") = 0", " <unfinished ...>",
])  # fmt: skip
names = st.sampled_from(["openat", "execve", "connect", "clone", "clone3", "mkdir", "x y"])
calls = st.builds(lambda name, items, ret: f"{name}({', '.join(items)}){ret}",
                  names, st.lists(args, max_size=5), returns)  # fmt: skip
exits = st.sampled_from([
    "+++ exited with 0 +++", "+++ killed by SIGKILL (core dumped) +++",
    "+++ exited with -1 +++", "--- SIGCHLD {si_signo=SIGCHLD} ---",
])  # fmt: skip
pids = st.builds(lambda pid, pad: f"{pid}{pad}", st.integers(1, 99999),
                 st.sampled_from([" ", "  ", "   ", "", "\t"]))  # fmt: skip


@st.composite
def logs(draw: st.DrawFn) -> list[str]:
    """Lines of several processes, some calls cut into unfinished and resumed halves."""
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        pid = draw(pids)
        kind = draw(st.sampled_from(["call", "split", "exit", "garbage"]))
        if kind == "garbage":
            lines.append(draw(st.text(max_size=60) | st.text(alphabet=STRUCTURE, max_size=20)))
            continue
        body = draw(exits) if kind == "exit" else draw(calls)
        if kind == "split":
            name, _, rest = body.partition("(")
            at = draw(st.integers(0, len(rest)))
            other = draw(pids)  # another process's line may come in between
            lines += [f"{pid}{name}({rest[:at]} <unfinished ...>",
                      f"{other}+++ exited with 0 +++",
                      f"{pid}<... {name} resumed>{rest[at:]}"]  # fmt: skip
        else:
            lines.append(pid + body)
    return [line + draw(st.sampled_from(["", "\n", "\n\n", "\r\n"])) for line in lines]


@given(logs())
@settings(max_examples=400)
def test_generated_logs_read_as_the_reference_reads_them(lines: list[str]) -> None:
    assert list(parse(lines)) == list(reference.parse(lines))


@given(st.lists(args, max_size=6), returns)
@settings(max_examples=300)
def test_arguments_split_as_the_reference_splits_them(items: list[str], ret: str) -> None:
    text = ", ".join(items) + ")" + ret
    assert split_args(text) == reference.split_args(text)
    for item in items:
        assert string_arg(item) == reference.string_arg(item)
        assert string_args(item) == reference.string_args(item)
        assert fd_path(item) == reference.fd_path(item)


@given(st.text(alphabet=STRUCTURE + "\\x0f a\n", max_size=80) | st.text(max_size=80))
@settings(max_examples=400)
def test_any_text_splits_as_the_reference_splits_it(text: str) -> None:
    assert split_args(text) == reference.split_args(text)


ESCAPY = ["\\x", "\\", "x", "0", "f", "A", "g", "é", "\\x4", "\\x41", "\\xff", "\\xc3\\xa9",
          " ", "\n", "x41", "\\\\"]  # fmt: skip


@given(st.lists(st.sampled_from(ESCAPY), max_size=12).map("".join) | st.text(max_size=20))
@example("\\xx1\\x1\\")  # shaped like escapes, but a backslash or x where a digit goes
@example("\\x\\x4141")
@settings(max_examples=400)
def test_any_text_decodes_as_the_reference_decodes_it(text: str) -> None:
    assert decode(text) == reference.decode(text)


def test_the_plain_class_is_every_character_but_the_structure() -> None:
    plain = strace_log._PLAIN
    for code in (*range(0x300), 0xD800, 0xFFFF, 0x10000, 0x10FFFF):
        assert bool(re.fullmatch(plain, chr(code))) == (chr(code) not in STRUCTURE), code


def test_a_long_line_of_brackets_is_read_in_linear_time() -> None:
    """No backtracking blow-up: unclosed groups and strings, 100,000 characters."""
    for text in ("[" * 50_000 + '"' * 3, '{"' * 50_000, "(a, " * 25_000, "<" + "a" * 99_999):
        assert split_args(text) == reference.split_args(text)


def _real(log: Path) -> list[str]:
    with lzma.open(log, "rt", encoding="utf-8") as file:
        return file.readlines()


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_real_logs_read_as_the_reference_reads_them(log: Path) -> None:
    lines = _real(log)
    assert list(parse(lines)) == list(reference.parse(lines))
    behaviour = trace.read_behaviour(lines, scratch=["/tmp/work"], cwd="/tmp/work")
    with (
        mock.patch.multiple(trace, parse=reference.parse, string_arg=reference.string_arg,
                            string_args=reference.string_args, fd_path=reference.fd_path),
        mock.patch.object(strace_log, "string_args", reference.string_args),
    ):  # fmt: skip
        assert trace.read_behaviour(lines, scratch=["/tmp/work"], cwd="/tmp/work") == behaviour


def test_the_real_logs_hold_every_shape() -> None:
    text = "".join(line for log in LOGS for line in _real(log))
    for shape in (" <unfinished ...>", " resumed>", "+++ exited with", '"...', "{sa_family="):
        assert shape in text, shape


segments = st.lists(st.sampled_from(["tmp", "work", "dev", "null", "shm", "pts", "..", ".",
                                     "", "x", "workx"]), max_size=5).map("/".join)  # fmt: skip


@given(segments, st.lists(segments.map(lambda s: "/" + s), min_size=1, max_size=3))
def test_a_write_is_kept_as_leaks_within_would_keep_it(path: str, scratch: list[str]) -> None:
    """The reader's own test of the scratch and the private places, set up once."""
    target = "/" + path
    line = f'5 mkdir("{hexed(target.encode())}", 0700) = 0'
    log = ['1 execve("", [], 0x1) = 0', "2 clone(SIGCHLD) = 5", "3 clone(SIGCHLD) = 5", line]
    found = trace.read_behaviour(log, scratch=scratch, cwd="/").of("write")
    normal = posixpath.normpath(target)
    roots = [p for s in scratch for p in (s, os.path.realpath(s))]
    kept = not within(normal, roots) and not within(normal, list(trace._PRIVATE_WRITABLE))
    assert [a.target for a in found] == ([normal] if kept else [])
