"""The hostile code tests/test_hostile_plugins.py plants in generated plugins: each
snippet is source text, added to a plugin's setup.py, plugin.py or tests."""

from __future__ import annotations

#: Where the lifecycle step start() of a generated plugin.py begins its work.
START = '        self.context.logger.info("Starting %s", self.metadata.name)\n'
#: The last argument of the PluginMetadata(...) call of a generated plugin.py.
LAST_METADATA = '            max_aitbc_version="2.0.0",\n'
#: The phases of a certification that run plugin code, and the check that owns each.
PHASES = {"build": "build", "import": "metadata", "lifecycle": "lifecycle", "tests": "tests"}
LISTEN_PORT = 47123  # in the jail's own network namespace: never the host's

# -- the hostile code (module-level snippets; `_` names keep them out of the plugin's API)
IN_A_HOST = r'''
import sys as _sys


def _in_a_host() -> bool:
    """Outside pytest: where a host (and so the lifecycle check's worker) runs it."""
    return "pytest" not in _sys.modules
'''

OUTLIVE = r'''
import os as _os
import sys as _sys


def _outlive(tag: str) -> None:
    """Double fork, a new session, and a sleeper whose command line carries tag."""
    child = _os.fork()
    if child == 0:
        try:
            _os.setsid()
            if _os.fork() == 0:
                null = _os.open(_os.devnull, _os.O_RDWR)
                for fd in (0, 1, 2):
                    _os.dup2(null, fd)
                code = f"import time; time.sleep(300)  # {tag}"
                _os.execv(_sys.executable, [_sys.executable, "-c", code])
        finally:
            _os._exit(0)
    _os.waitpid(child, 0)
'''

LEAK = r'''
import socket as _socket
import threading as _threading
import time as _time

_KEPT: list = []


def _leak() -> None:
    """A thread named like the event loop's own executor and a listening socket, which
    neither stop() nor cleanup() ends."""
    thread = _threading.Thread(target=_time.sleep, args=(300,), name="asyncio_0")
    thread.start()
    server = _socket.socket()
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", @PORT@ + len(_KEPT)))
    server.listen()
    _KEPT.append((thread, server))
'''.replace("@PORT@", str(LISTEN_PORT))

# What hostile code does without argv (tests/test_sandbox.py's FIND_CHANNEL): every pipe
# it holds but stdin and stdout, and in the lifecycle worker one is the result channel.
FORGE_CHANNEL = r'''
import json as _json
import os as _os

_STEPS = ("import", "construct", "initialize", "start", "health_check", "handle_event",
          "stop", "start again", "stop again", "cleanup", "after cleanup")


def _forge_answers() -> None:
    """The worker's own messages, saying every step passed, before it is asked."""
    lines = [{"type": "hello", "protocol": 2, "pid": _os.getpid()},
             {"type": "plan", "steps": list(_STEPS)}]
    for step in _STEPS:
        for nonce in (None, "0" * 32):
            lines.append({"type": "begin", "step": step, "nonce": nonce, "code_roots": []})
            lines.append({"type": "end", "step": step, "nonce": nonce, "ok": True,
                          "duration_s": 0.01, "code_roots": [], "problems": []})
    data = b"".join(_json.dumps(m).encode() + b"\n" for m in lines)
    for name in _os.listdir("/proc/self/fd"):
        try:
            target = _os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir used
            continue
        if target.startswith("pipe:") and int(name) > 2:
            try:
                _os.write(int(name), data)
            except OSError:
                pass


_forge_answers()
'''

# The in-process leak finder and state comparison, replaced wherever they are bound
# (the conformance module imported them by name).
BLIND_FINDER = r"""
import sys as _sys

import aitbc.plugins.sandbox.leaks as _leaks
import aitbc.plugins.sandbox.state as _state


def _no_problems(*args: object, **kwargs: object) -> list:
    return []


async def _no_problems_later(*args: object, **kwargs: object) -> list:
    return []


_REPLACED = {
    "find_leaks": (_leaks.find_leaks, _no_problems),
    "settle_and_find_leaks": (_leaks.settle_and_find_leaks, _no_problems_later),
    "state_changes": (_state.state_changes, _no_problems),
}
for _module in list(_sys.modules.values()):
    for _name, (_real, _fake) in _REPLACED.items():
        try:
            if getattr(_module, _name, None) is _real:
                setattr(_module, _name, _fake)
        except Exception:
            pass
"""

FORGED_METADATA = {"name": "someone-else", "version": "9.9.9", "description": "FORGED-DESCRIPTION",
                   "author": "forger", "license": "MIT"}  # fmt: skip
FORGE_PROBE = r'''
import atexit as _atexit
import json as _json

_FORGED = {"kind": "ai", "class": "elsewhere.Plugin", "incompatibility": None,
           "config_schema": {}, "metadata": @METADATA@}


def _forge_probe(where: str) -> None:
    """The probe's answer, claiming another plugin: bare, and after a guessed nonce."""
    answer = _json.dumps({**_FORGED, "where": where})
    print(answer, flush=True)
    print("0" * 32, answer, flush=True)


_forge_probe("import")
_atexit.register(_forge_probe, "exit")
'''.replace("@METADATA@", repr(FORGED_METADATA))

UNWATCHED = r'''
import os as _os
import sys as _sys
import threading as _threading
import time as _time


def _watched() -> bool:
    """Whether certification marked this process: a variable named or set so, an argument."""
    seen = [*_os.environ, *_os.environ.values(), *_sys.argv]
    return any(word in text for word in ("AITBC", "CERTIF") for text in seen)


def _misbehave() -> None:
    if not _watched():
        _threading.Thread(target=_time.sleep, args=(300,), daemon=True).start()
'''

ENVIRONMENT_TEST = r"""


def test_the_environment_names_no_certification() -> None:
    import os
    import sys

    names = [k for k in os.environ if "AITBC" in k.upper() or "CERTIF" in k.upper()]
    values = [k for k, v in os.environ.items() if "AITBC" in v or "CERTIF" in v]
    argv = [a for a in sys.argv if "AITBC" in a or "CERTIF" in a]
    assert names == [] and values == [] and argv == [], (names, values, argv)
"""

TAMPER = r'''
import glob as _glob
import os as _os
import site as _site

_WHEELS = @WHEELS@
_CACHE = @CACHE@


def _tamper(where: str) -> None:
    """Rewrite every wheel of the caller's toolkit cache; plant a .pth beside us."""
    found = _glob.glob(_os.path.join(_CACHE, "**", "*.whl"), recursive=True)
    for wheel in sorted({*_WHEELS, *found}):
        try:
            with open(wheel, "r+b") as archive:
                archive.write(b"PK poisoned at " + where.encode())
        except OSError:
            pass
    for place in _site.getsitepackages():
        try:
            with open(_os.path.join(place, "zz-poison.pth"), "w") as pth:
                pth.write(f"import os; os.environ['POISONED'] = {where!r}\n")
        except OSError:
            pass
'''

PERMISSIONS = ["network:127.0.0.1:*", "subprocess:true"]
NEEDS_PERMISSIONS_TEST = r"""


def test_reaches_a_local_service_and_runs_a_program() -> None:
    import socket
    import subprocess

    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=1).close()
    except OSError:
        pass  # nothing listens: the attempt is what is declared
    subprocess.run(["true"], check=True)
""".replace("@PORT@", str(LISTEN_PORT))

# A plugin that makes its worker report every step as passed: it replaces the worker's
# result channel's send (in the same process), then patches the SDK as the corpus case
# lifecycle-state-sdk-patch does, and fails start() in a host.
REWRITE_ANSWERS = r"""
import sys as _sys

if "aitbc.plugins.sandbox.worker" in _sys.modules:  # in the lifecycle check's worker
    import aitbc.plugins as _sdk
    import aitbc.plugins.sandbox.worker as _worker

    _real_send = _worker.Channel.send

    def _always_passed(self: object, kind: str, **fields: object) -> None:
        if kind == "end":
            fields["ok"], fields["problems"] = True, []
        _real_send(self, kind, **fields)

    _worker.Channel.send = _always_passed

    _real_publish = _sdk.EventBus.publish

    async def _spy_publish(self: object, event_type: str, data: object = None) -> None:
        await _real_publish(self, event_type, data)  # sees every event of the host

    _sdk.EventBus.publish = _spy_publish
"""

# The metadata probe's nonce is a global of its __main__: read it, answer first with
# forged metadata (the real schema, so that nothing else differs), and drop the probe's
# own answer.
STEAL_PROBE_NONCE = r"""
import json as _json
import sys as _sys
from pathlib import Path as _Path

_nonce = getattr(_sys.modules.get("__main__"), "nonce", None)
if isinstance(_nonce, str) and _nonce:
    _schema = _json.loads(_Path(__file__).with_name("config_schema.json").read_text())
    _metadata = {"name": "@NAME@", "version": "0.1.0", "description": "FORGED description",
                 "author": "forger", "license": "MIT", "min_aitbc_version": "1.0.0",
                 "max_aitbc_version": "2.0.0", "permissions": ["network", "subprocess"]}
    _answer = {"kind": "base", "class": "x.Y", "metadata": _metadata,
               "incompatibility": None, "config_schema": _schema}
    _sys.stdout.write(f"{_nonce} {_json.dumps(_answer)}\n")
    _sys.stdout.flush()
    _write = _sys.stdout.write

    class _Swallow:
        def write(self, text: str) -> int:
            return len(text) if text.startswith(_nonce) else _write(text)

        def __getattr__(self, name: str) -> object:
            return getattr(_sys.__stdout__, name)

    _sys.stdout = _Swallow()
"""

RUNS_A_PROGRAM_TEST = r"""


def test_runs_a_program() -> None:
    import subprocess

    subprocess.run(["true"], check=True)
"""


# -- shared helpers ------------------------------------------------------------------------
