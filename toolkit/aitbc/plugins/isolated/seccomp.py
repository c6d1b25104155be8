"""Refusing program execution to a worker whose plugin declares no ``subprocess``
permission: a seccomp filter, made with libseccomp (the library systemd and
container runtimes use, loaded through ctypes), under which ``execve`` and
``execveat`` fail with EPERM.  Installed by the worker on itself before any plugin
code runs; the kernel keeps it for the worker's life and for every child it forks."""

from __future__ import annotations

import ctypes
import errno

_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
_ERRNO = 0x00050000  # SCMP_ACT_ERRNO(n) is this | n
_CALLS = (b"execve", b"execveat")


def deny_exec() -> str | None:
    """Install the filter; None when it holds, else why it could not be installed."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        return f"libseccomp is not available ({exc})"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.restype = ctypes.c_int
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_ALLOW)
    if not context:
        return "seccomp_init failed"
    try:
        for call in _CALLS:
            number = lib.seccomp_syscall_resolve_name(call)
            if number < 0 or lib.seccomp_rule_add(context, _ERRNO | errno.EPERM, number, 0):
                return f"seccomp cannot filter {call.decode()}"
        # libseccomp sets no_new_privs first (its default), so no privilege is needed.
        if lib.seccomp_load(context) != 0:
            return "the kernel refused the seccomp filter"
    finally:
        lib.seccomp_release(context)
    return None
