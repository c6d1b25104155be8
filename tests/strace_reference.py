"""The strace log parser as it was before it was made fast, kept as the oracle the fast
one is checked against (tests/test_strace_log.py) and timed against
(benchmarks/bench_strace.py): it walks every character, so it is easy to trust."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from aitbc.plugins.sandbox.strace_log import Call

_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")
_LINE = re.compile(r"^(\d+) +(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RETURN = re.compile(
    r"^\s*=\s*(?P<ret>-?\d+|\?|0x[0-9a-fA-F]+)(?:<(?P<path>[^>]*)>)?"
    r"(?:\s*/\* (?P<host>\d+) in strace's PID NS \*/)?(?:\s+(?P<errno>E[A-Z0-9]+))?"
)
_EXIT = re.compile(r"^\+\+\+ (exited with -?\d+|killed by \w+(?: \(core dumped\))?) \+\+\+$")
_STRING = re.compile(r'"((?:\\x[0-9a-fA-F]{2})*)"(\.\.\.)?')
_FD_PATH = re.compile(r"^(?:-?\d+|AT_FDCWD)<((?:\\x[0-9a-fA-F]{2})*)>$")


def decode(text: str) -> str:
    raw = bytes(int(h, 16) for h in _HEX.findall(text))
    return raw.decode("utf-8", "backslashreplace")


def split_args(text: str) -> tuple[list[str], str] | None:
    depth, start, args = 0, 0, list[str]()
    i, quoted = 0, False
    closing = {")": "(", "]": "[", "}": "{", ">": "<"}
    while i < len(text):
        char = text[i]
        if quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char in "([{<":
            depth += 1
        elif char in closing and depth > 0:
            depth -= 1
        elif char == ")":
            last = text[start:i].strip()
            if last or args:
                args.append(last)
            return args, text[i + 1 :]
        elif char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    return None


def parse_call(pid: int, text: str) -> Call | None:
    name, paren, rest = text.partition("(")
    if not paren or not name.isidentifier():
        return None
    split = split_args(rest)
    if split is None:
        return None
    args, after = split
    match = _RETURN.match(after)
    if match is None:
        return None
    child = None
    if name in ("clone", "clone3", "fork", "vfork") and match["ret"].isdigit():
        child = int(match["host"] or match["ret"])
    path = decode(match["path"]) if match["path"] is not None else None
    return Call(pid, name, args, match["ret"], match["errno"], path, child)


def parse(lines: Iterable[str]) -> Iterator[tuple[int, Call | str]]:
    pending: dict[int, str] = {}
    for raw in lines:
        match = _LINE.match(raw.rstrip("\n"))
        if match is None:
            continue
        pid, body = int(match[1]), match[2]
        if body.endswith(" <unfinished ...>"):
            pending[pid] = body[: -len(" <unfinished ...>")]
            continue
        resumed = _RESUMED.match(body)
        if resumed is not None:
            body = pending.pop(pid, f"{resumed[1]}(") + resumed[2]
        exited = _EXIT.match(body)
        if exited is not None:
            yield pid, exited[1]
            continue
        call = parse_call(pid, body)
        if call is not None:
            yield pid, call


def string_arg(arg: str) -> str:
    match = _STRING.match(arg.strip())
    return decode(match[1]) if match else ""


def string_args(arg: str) -> list[str]:
    return [decode(m[1]) for m in _STRING.finditer(arg)]


def fd_path(arg: str) -> str | None:
    match = _FD_PATH.match(arg.strip())
    return decode(match[1]) if match else None
