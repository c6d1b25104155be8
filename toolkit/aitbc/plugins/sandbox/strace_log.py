"""strace's log, written with ``-xx -y``, read back: calls (with their unfinished and
resumed halves joined), their arguments, strings, descriptors and socket addresses.
Every string is hex in such a log, so no name a traced program chooses can pass for
strace's own syntax.  Standard library only."""

from __future__ import annotations

import binascii
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: glibc asks the name service cache daemon before it resolves a name: not the plugin's.
_GLIBC_SOCKETS = ("/var/run/nscd/socket", "/run/nscd/socket")
_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")
_LINE = re.compile(r"^(\d+) +(.*)$")  # strace pads short pids
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RETURN = re.compile(
    r"^\s*=\s*(?P<ret>-?\d+|\?|0x[0-9a-fA-F]+)(?:<(?P<path>[^>]*)>)?"
    r"(?:\s*/\* (?P<host>\d+) in strace's PID NS \*/)?(?:\s+(?P<errno>E[A-Z0-9]+))?"
)
_EXIT = re.compile(r"^\+\+\+ (exited with -?\d+|killed by \w+(?: \(core dumped\))?) \+\+\+$")
_STRING = re.compile(r'"((?:\\x[0-9a-fA-F]{2})*)"(\.\.\.)?')
_ONLY_HEX = re.compile(r"(?:\\x[0-9a-fA-F]{2})*")
_FD_PATH = re.compile(r"^(?:-?\d+|AT_FDCWD)<((?:\\x[0-9a-fA-F]{2})*)>$")


def _other_than(chars: str) -> str:
    """A class of every character but ``chars``, as ranges: sre tests those about twice
    as fast as a negated list, and most of a log is such text (hex)."""
    cut = sorted(map(ord, chars))
    spans = zip([0, *(c + 1 for c in cut)], [*(c - 1 for c in cut), sys.maxunicode], strict=True)
    return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in spans if a <= b) + "]"


#: From one character that shapes a call's arguments to the next, jumping over what
#: cannot change them: quoted strings (``"`` ends one: with -xx none holds one), other
#: text, and bracketed groups with no bracket inside (an opener, then text, commas and
#: strings, then a closer: depth up, nothing, depth down).  Group 1 is the character (an
#: unclosed ``"`` too), None at the text's end.  Unrolled (no two ways to match a text),
#: and a group's try stops at the next bracket, so the scan stays linear.
_PLAIN = _other_than('"()[]{}<>,')
_INNER = _other_than('"()[]{}<>')  # a group's text: commas are nothing inside one
_STR = '"[^"]*"'
_GROUP = rf"[(\[{{<]{_INNER}*(?:{_STR}{_INNER}*)*[)\]}}>]"
_NEXT = re.compile(rf'{_PLAIN}*(?:(?:{_STR}|{_GROUP}){_PLAIN}*)*(?:(["()\[\]{{}}<>,])|\Z)')
_OPENING = frozenset("([{<")
_CLOSING = frozenset(")]}>")


def _unhex(text: str) -> str:
    """Text that is only ``\\xNN`` escapes, decoded (the fast path of :func:`decode`)."""
    raw = binascii.unhexlify(text.encode("ascii").translate(None, b"\\x"))
    return raw.decode("utf-8", "backslashreplace")


def decode(text: str) -> str:
    """A string as strace printed it with -xx (hex escapes) back to text; anything
    between the escapes is ignored."""
    if _ONLY_HEX.fullmatch(text):  # as strace writes them: the fast path
        return _unhex(text)
    return binascii.unhexlify("".join(_HEX.findall(text))).decode("utf-8", "backslashreplace")


@dataclass
class Call:
    pid: int
    name: str
    args: list[str]
    ret: str
    errno: str | None
    ret_path: str | None  # -y: what a returned descriptor points to
    child: int | None  # clone/fork: the new process's (host) pid


def split_args(text: str) -> tuple[list[str], str] | None:
    """The top-level arguments of ``name(...)`` text after the ``(``, and the rest after
    the closing ``)``; None when the call is cut short (unfinished)."""
    depth, start = 0, 0
    args: list[str] = []  # not list[str](): making the alias costs more than the rest
    # Any closer closes any opener (strace's brackets nest properly); one with nothing
    # open is text, but for the call's own ``)``.
    for match in _NEXT.finditer(text):
        char = match[1]
        if char is None or char == '"':  # the end, or a string never closed: cut short
            return None
        if char in _OPENING:
            depth += 1
        elif depth:
            depth -= char in _CLOSING
        elif char == ",":
            i = match.end() - 1
            args.append(text[start:i].strip())
            start = i + 1
        elif char == ")":  # the call's own closing parenthesis
            i = match.end() - 1
            last = text[start:i].strip()
            if last or args:
                args.append(last)
            return args, text[i + 1 :]
    return None  # pragma: no cover - _NEXT matches at the end of any text


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
    """Each finished call (joined from its unfinished and resumed halves) or exit line
    (``"exited with 0"``), with the pid that made it, in the log's order."""
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
    return _unhex(match[1]) if match else ""


def string_args(arg: str) -> list[str]:
    return [_unhex(m[1]) for m in _STRING.finditer(arg)]


def fd_path(arg: str) -> str | None:
    match = _FD_PATH.match(arg.strip())
    return _unhex(match[1]) if match else None


_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")


def socket_address(arg: str) -> tuple[str, int | None] | None:
    """``(host, port)``, or ``(<path> or @<name>, None)`` for a unix socket, from a
    sockaddr struct."""
    family = _FAMILY.search(arg)
    if family is None:
        return None
    port = _PORT.search(arg)
    found = string_args(arg)
    if family[1] in ("AF_INET", "AF_INET6") and port and found:
        return found[-1], int(port[1])
    if family[1] == "AF_UNIX":
        path = found[0] if found else ""
        abstract = "sun_path=@" in arg
        if not abstract and path in _GLIBC_SOCKETS:
            return None
        return f"{'@' if abstract else ''}{path}", None
    return None  # netlink and the like: the jail's own plumbing, not a connection
