"""Capabilities a plugin declares in ``PluginMetadata.permissions``, and how an observed
action (a connect, an execve, a write) is matched against them.

One string per entry, no whitespace anywhere:

==============================  ===========================================================
``network``                     any connection, unix sockets included
``network:<host>:<port>``       host: a name, an IPv4 address or ``[IPv6]``; port: 1..65535
                                or ``*``.  Names are case-insensitive.
``subprocess``                  any program
``subprocess:<program>``        a bare name (``git``: matched against the basename of the
                                executed path) or an absolute path (``/usr/bin/git``)
``filesystem``                  writes anywhere
``filesystem:<absolute path>``  writes at or below that path (beyond the plugin's own data
                                and temp dirs, which need no permission)
==============================  ===========================================================

Hosts, programs and paths may hold the wildcards ``*`` (any run of characters, ``.`` and
``/`` included, as in :mod:`fnmatch`) and ``?`` (one character).  ``[`` and ``]`` are not
character classes: in a host they bracket an IPv6 address, in a path they are literal.
Paths are POSIX and absolute: ``~`` is not expanded, and ``.``/``..`` components, ``//``
and a trailing ``/`` are refused, so that what is declared is what is matched.

:meth:`Permissions.parse` also puts each entry in canonical form (names lowercase, IPv6
addresses compressed, ports without leading zeros); :meth:`Permissions.as_list` gives
those strings back, and they parse to the same value.
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from .errors import MetadataError

PermissionKind = Literal["network", "subprocess", "filesystem"]

#: The kinds, in the order the docs list them.
PERMISSION_KINDS: tuple[PermissionKind, ...] = ("network", "subprocess", "filesystem")
_KIND_BY_NAME: dict[str, PermissionKind] = {kind: kind for kind in PERMISSION_KINDS}

#: Longer entries are refused before any parsing (no legitimate one comes close).
ENTRY_MAX_LENGTH = 1024

# re.ASCII: without it \w-ish classes and case folding admit look-alikes (the Kelvin sign
# lowercases to "k"); a host name must be plain ASCII.
_HOST_NAME = re.compile(r"[A-Za-z0-9_.*?-]+", re.ASCII)
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.*?]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_HOST_MAX_LENGTH = 253  # the DNS limit


class _Refused(ValueError):
    """Why one entry is invalid; :meth:`Permissions.parse` adds the field and the entry."""


@dataclass(frozen=True)
class Permission:
    """One declared capability; ``target`` None means any.  Build these with
    :meth:`Permissions.parse`, which validates and canonicalises them."""

    kind: PermissionKind
    target: str | None = None

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class Permissions:
    """A plugin's declared capabilities, in declaration order."""

    entries: tuple[Permission, ...] = ()

    @classmethod
    def parse(cls, value: object, field_name: str = "permissions") -> Permissions:
        """Validate a list of entry strings (None: none); raise :class:`MetadataError`
        on ``field_name`` with a one-line reason naming the first bad entry."""
        if value is None:
            return cls()
        if isinstance(value, Permissions):
            return value
        if not isinstance(value, (list, tuple)):
            raise MetadataError(
                field_name, f"must be a list of strings, not {type(value).__name__}"
            )
        entries: list[Permission] = []
        seen: dict[str, str] = {}
        for raw in value:
            if not isinstance(raw, str):
                raise MetadataError(
                    field_name, f"entries must be strings, not {type(raw).__name__}"
                )
            try:
                permission = _parse_entry(raw)
            except _Refused as exc:
                raise MetadataError(field_name, f"{_shown(raw)}: {exc}") from None
            canonical = str(permission)
            if canonical in seen:
                same = "" if seen[canonical] == raw else f" (the same as {_shown(seen[canonical])})"
                raise MetadataError(field_name, f"{_shown(raw)}: duplicate entry{same}")
            seen[canonical] = raw
            entries.append(permission)
        return cls(tuple(entries))

    def as_list(self) -> list[str]:
        """The canonical entry strings; ``parse(p.as_list()) == p``."""
        return [str(entry) for entry in self.entries]

    def _targets(self, kind: PermissionKind) -> list[str | None]:
        return [entry.target for entry in self.entries if entry.kind == kind]

    def allows_connect(self, host: str, port: int | None) -> bool:
        """Whether a connection to ``host`` (an address as observed: ``"127.0.0.1"``,
        ``"::1"`` or ``"[::1]"``, or a unix socket: a path, or ``@name`` for the abstract
        namespace) on ``port`` is declared.

        No DNS is done: a name pattern (``api.example.com``, ``*.example.com``) matches
        only when the observed host is that literal text, so it never allows a connect
        observed as an IP address; declare the address (or ``*``) for those.  IP addresses
        compare by value (``0:0::1`` is ``[::1]``; an IPv4-mapped IPv6 address is also its
        IPv4 address; a ``%zone`` is ignored).  A unix socket, or an empty host, is allowed
        only by bare ``network``; ``port`` None is allowed only by a ``*`` port.
        """
        targets = self._targets("network")
        if None in targets:
            return True
        if not host or host.startswith(("/", "@")):
            return False
        forms = _address_forms(host)
        for target in targets:
            assert target is not None  # bare entries returned above
            host_pattern, _, port_pattern = target.rpartition(":")
            if port_pattern != "*" and (port is None or int(port_pattern) != port):
                continue
            if host_pattern.startswith("["):
                # A bracketed pattern is an IPv6 one: it never matches a name or an IPv4.
                ipv6 = [form for form in forms if ":" in form]
                if any(_matches(host_pattern[1:-1], form) for form in ipv6):
                    return True
            elif any(_matches(host_pattern, form) for form in forms):
                return True
        return False

    def allows_exec(self, program: str) -> bool:
        """Whether executing ``program`` (the path passed to execve, absolute) is declared.
        A bare-name entry matches its basename; an absolute entry the whole path, folded
        lexically (``..`` resolved, no symlinks followed: the observer resolves those)."""
        targets = self._targets("subprocess")
        if None in targets:
            return True
        if not program:
            return False
        path = _normalise(program) if program.startswith("/") else None
        name = posixpath.basename(path if path is not None else program)
        for target in targets:
            assert target is not None
            if target.startswith("/"):
                if path is not None and _matches(target, path):
                    return True
            elif name and _matches(target, name):
                return True
        return False

    def allows_write(self, path: str) -> bool:
        """Whether writing ``path`` (absolute) is declared: an entry allows its path and
        everything below it (``/var/lib/x`` allows ``/var/lib/x/y``, not ``/var/lib/xy``).
        The path is folded lexically, so ``/var/lib/x/../../etc`` is ``/etc``."""
        targets = self._targets("filesystem")
        if None in targets:
            return True
        if not path.startswith("/"):
            return False
        folded = _normalise(path)
        candidates = [folded, *(str(parent) for parent in PurePosixPath(folded).parents)]
        return any(
            _matches(target, candidate)
            for target in targets
            if target is not None
            for candidate in candidates
        )


# -- parsing ----------------------------------------------------------------------------------
def _shown(entry: str) -> str:
    """The entry as a one-line repr (newlines escaped), cut when very long."""
    text = repr(entry)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_entry(entry: str) -> Permission:
    if len(entry) > ENTRY_MAX_LENGTH:
        raise _Refused(f"longer than {ENTRY_MAX_LENGTH} characters")
    if not entry:
        raise _Refused("empty entry")
    if any(char.isspace() for char in entry):
        raise _Refused("contains whitespace")
    if not entry.isprintable():
        raise _Refused("contains a control character")
    name, colon, target = entry.partition(":")
    kind = _KIND_BY_NAME.get(name)
    if kind is None:
        raise _Refused(f"unknown kind {name!r} (the kinds: {', '.join(PERMISSION_KINDS)})")
    if not colon:
        return Permission(kind)
    if not target:
        raise _Refused(f"empty target (write bare {kind!r} to allow any)")
    if kind == "network":
        return Permission(kind, _network_target(target))
    if kind == "subprocess":
        return Permission(kind, _program_target(target))
    return Permission(kind, _absolute_path(target, "the path"))


def _network_target(target: str) -> str:
    if target.startswith("["):
        close = target.find("]")
        if close < 0:
            raise _Refused("an IPv6 address opened with [ is not closed with ]")
        host = f"[{_ipv6_pattern(target[1:close])}]"
        rest = target[close + 1 :]
        if not rest.startswith(":"):
            raise _Refused("needs :<port> after the host (a number or *)")
        port = rest[1:]
    else:
        host, colon, port = target.rpartition(":")
        if not colon:
            raise _Refused("needs <host>:<port> (the port a number or *), or bare 'network'")
        if ":" in host:
            raise _Refused("write an IPv6 address in brackets, as [::1]")
        host = _host_name(host)
    return f"{host}:{_port(port)}"


def _host_name(text: str) -> str:
    if not text:
        raise _Refused("empty host")
    if len(text) > _HOST_MAX_LENGTH:
        raise _Refused(f"the host is longer than {_HOST_MAX_LENGTH} characters")
    if not _HOST_NAME.fullmatch(text):
        raise _Refused(
            f"the host {text!r} may hold only ASCII letters, digits, '-', '_', '.' "
            "and the wildcards * and ?"
        )
    return text.lower()


def _ipv6_pattern(inner: str) -> str:
    if not inner:
        raise _Refused("empty host")
    if not _IPV6_TEXT.fullmatch(inner):
        raise _Refused(f"[{inner}] must hold an IPv6 address (hex digits, ':', '.', * and ?)")
    if "*" in inner or "?" in inner:
        return inner.lower()
    try:
        return _ipv6_text(ipaddress.IPv6Address(inner))
    except ValueError:
        raise _Refused(f"[{inner}] is not an IPv6 address") from None


def _port(text: str) -> str:
    if not text:
        raise _Refused("empty port (a number or *)")
    if text == "*":
        return text
    if not _DIGITS.fullmatch(text):
        raise _Refused(f"the port {text!r} is not a number or *")
    digits = text.lstrip("0")
    # The length test first: int() of a huge digit string is slow (and refused at 4300).
    if len(digits) > 5 or not 1 <= int(digits or "0") <= 65535:
        raise _Refused(f"the port {text} is outside 1..65535")
    return digits


def _program_target(target: str) -> str:
    if target.startswith("/"):
        return _absolute_path(target, "the program")
    if target.startswith("~"):
        raise _Refused("~ is not expanded: write an absolute path or a bare program name")
    if "/" in target:
        raise _Refused("a program is a bare name (git) or an absolute path, not a relative path")
    if target in {".", ".."}:
        raise _Refused(f"{target!r} is not a program name")
    return target


def _absolute_path(target: str, what: str) -> str:
    if target.startswith("~"):
        raise _Refused("~ is not expanded: write an absolute path")
    if not target.startswith("/"):
        raise _Refused(f"{what} must be an absolute path")
    if target == "/":
        return target
    if target.endswith("/"):
        raise _Refused(f"write {what} without a trailing /")
    parts = target[1:].split("/")
    if "" in parts:
        raise _Refused(f"{what} has an empty component (//)")
    if "." in parts or ".." in parts:
        raise _Refused(f"{what} has a . or .. component")
    return target


# -- matching ---------------------------------------------------------------------------------
def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    # Python 3.13 spells IPv4-mapped addresses ::ffff:1.2.3.4, older ones ::ffff:102:304:
    # fix one spelling so that canonical entries do not depend on the Python version.
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else address.compressed


def _address_forms(host: str) -> set[str]:
    """The spellings of an observed host a pattern may match."""
    text = host.lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    forms = {text}
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return forms
    if isinstance(address, ipaddress.IPv6Address):
        forms.add(_ipv6_text(address))
        if address.ipv4_mapped is not None:
            forms.add(str(address.ipv4_mapped))
    else:
        forms.add(str(address))
    return forms


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _matches(pattern: str, text: str) -> bool:
    return _compiled(pattern).fullmatch(text) is not None


def _normalise(path: str) -> str:
    folded = posixpath.normpath(path)
    # POSIX keeps a leading // as implementation-defined; Linux treats it as /.
    return "/" + folded.lstrip("/") if folded.startswith("//") else folded
