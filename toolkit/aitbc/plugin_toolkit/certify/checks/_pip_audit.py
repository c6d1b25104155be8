"""pip-audit as the `audit` check runs it, on the pinned closure (``--no-deps``,
``--disable-pip``, JSON), and what its report says: findings, and every dependency it
could not look up (a skip, a missing entry, an unreadable advisory record), which
makes the audit incomplete rather than clean."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aitbc.plugins import process
from aitbc.plugins.process import Completed
from packaging.utils import canonicalize_name

from ..base import CheckContext, CheckError
from ..model import Finding, Severity
from ..osv import OsvIndex, OsvServer
from ._closure import Dependencies

ONLINE = "PyPI (online)"
_NO_ONLINE_DATA = "PyPI's online vulnerability service had no answer for it (no OSV records given)"

_UNREACHABLE = re.compile(
    r"requests\.exceptions\.(ConnectionError|ConnectTimeout|ReadTimeout|Timeout|SSLError)"
    r"|Could not connect to|your network may be blocking"
)


@dataclass
class Audited:
    """What pip-audit said: findings, what it could not audit, ids per package."""

    findings: list[tuple[str, Finding]] = field(default_factory=list)  # (package, unplaced)
    unaudited: dict[str, str] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)
    audited: list[str] = field(default_factory=list)
    service: str = "none"
    shown: dict[str, str] = field(default_factory=dict)  # name -> "idna 3.6"


def audited(
    context: CheckContext, deps: Dependencies, index: OsvIndex | None, folder: Path
) -> Audited:
    """pip-audit's judgement of ``deps``' pinned closure, against ``index`` (served on
    loopback), the OSV service the context names, or else PyPI."""
    if not deps.pinned:
        return Audited()
    pins = folder / "requirements.txt"
    pins.write_text(deps.requirements(), encoding="utf-8")
    if index is not None:
        with OsvServer(index) as url:
            run = _run(context, pins, folder, url)
        service = f"local OSV records in {context.vuln_db}"
    elif context.osv_url:
        url = context.osv_url
        run, service = _run(context, pins, folder, url), f"OSV at {url}"
    else:
        run, service = _run(context, pins, folder, None), ONLINE
    return _read(context, deps, run, index, service)


def _run(context: CheckContext, pins: Path, folder: Path, url: str | None) -> Completed:
    command = [sys.executable, "-m", "pip_audit", "-r", str(pins), "--no-deps"]
    command += ["--disable-pip", "-f", "json", "--progress-spinner", "off"]
    command += ["--cache-dir", str(folder / "cache")]  # not the user's pip cache
    if url is not None:
        command += ["-s", "osv", "--osv-url", url]
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    return process.run(
        command,
        cwd=folder,
        timeout=context.policy.tool_timeout_s,
        env={"NO_PROXY": no_proxy, "no_proxy": no_proxy},
    )


def _read(
    context: CheckContext, deps: Dependencies, run: Completed, index: OsvIndex | None,
    service: str,
) -> Audited:  # fmt: skip
    if run.timed_out:
        raise CheckError(f"pip-audit timed out after {context.policy.tool_timeout_s:g}s")
    try:
        listed = json.loads(run.stdout)["dependencies"]
        reported: dict[str, Any] = {canonicalize_name(d["name"]): d for d in listed}
        found = sum(len(d.get("vulns", [])) for d in reported.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        reported, found = {}, -1
    audited = Audited(service=service)
    audited.shown = {n: f"{dist} {version}" for n, (dist, version) in deps.pinned.items()}
    if found < 0 or run.returncode != (1 if found else 0):
        if run.returncode and _UNREACHABLE.search(run.stderr):
            reason = f"vulnerability service unreachable ({service}): {run.tail(1)}"
            audited.unaudited = {n: reason for n in deps.pinned}
            return audited
        raise CheckError(f"pip-audit failed (exit {run.returncode}): {run.tail()}")
    for name in deps.pinned:
        entry = reported.get(name)
        problems = index.problems(name) if index is not None else []
        if entry is None:
            audited.unaudited[name] = "pip-audit did not report on it"
        elif "skip_reason" in entry:
            # pip-audit's "Dependency not found on PyPI" names the wrong thing: the
            # package is there, the vulnerability data is what is missing.
            audited.unaudited[name] = (_NO_ONLINE_DATA if service == ONLINE
                                       else str(entry["skip_reason"]))  # fmt: skip
        elif problems:
            audited.unaudited[name] = "unreadable advisory record(s): " + "; ".join(problems)
        for vuln in (entry or {}).get("vulns", []):
            finding = _finding(deps, name, vuln, index)
            audited.findings.append((name, finding))
            audited.ids.setdefault(name, set()).update(
                [str(vuln.get("id")), *map(str, vuln.get("aliases", []))]
            )
    audited.audited = sorted(
        f"{deps.pinned[n][0]}=={deps.pinned[n][1]}" for n in deps.pinned
        if n not in audited.unaudited
    )  # fmt: skip
    return audited


def _finding(
    deps: Dependencies, name: str, vuln: dict[str, Any], index: OsvIndex | None
) -> Finding:
    vid = str(vuln.get("id"))
    aliases = [str(a) for a in vuln.get("aliases", [])]
    record = None
    if index is not None:
        record = next(filter(None, map(index.record, (vid, *aliases))), None)
    severity = (record.severity if record else None) or Severity.HIGH
    dist, version = deps.pinned[name]
    fixed = [str(v) for v in vuln.get("fix_versions", [])]
    message = (
        f"{dist} {version} has known vulnerability {vid}"
        + (f" ({', '.join(aliases)})" if aliases else "")
        + (f"; fixed in {', '.join(fixed)}" if fixed else "; no fixed version known")
    )
    description = " ".join(str(vuln.get("description") or "").split())
    if description:
        message += f": {description[:200]}" + ("..." if len(description) > 200 else "")
    parent = deps.via.get(name, deps.root)
    if canonicalize_name(parent) != canonicalize_name(deps.root):
        message += f" (required by {parent})"
    return Finding(f"audit.{vid}", severity, message)  # placed by _located
