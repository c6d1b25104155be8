"""`audit`: pip-audit over the plugin's declared runtime dependencies.

Which dependencies: the closure of the plugin distribution's ``Requires-Dist`` (markers
and extras evaluated for the isolated plugin environment), at the versions installed
there, read from its ``*.dist-info`` files (its Python is never started: that would run
the ``.pth`` files of its packages with our rights).  The SDK (``aitbc-plugins``, on no
public index) and what only it requires are left out and listed in
``details["excluded"]``.  They are audited with
``pip-audit -r pinned.txt --no-deps --disable-pip -f json``: with ``--vuln-db DIR``
against :mod:`..osv`, a loopback OSV service over that directory, else against PyPI.

pip-audit without ``--strict`` reports a dependency it could not look up as skipped and
still says "No known vulnerabilities found" (exit 0); the JSON names every skip, so the
check reads that instead: any dependency skipped, missing from the output, or covered
by an unreadable advisory record makes the result INCOMPLETE (never PASSED).  A service
that cannot be reached is INCOMPLETE too; any other crash, a timeout or output that
does not parse is ERROR.  With a local database, a package with no record is not
vulnerable (an OSV query answers "no vulns", as api.osv.dev does), not "unknown".
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aitbc.plugins import process
from aitbc.plugins.process import Completed
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..base import CheckContext, CheckError, result, timed
from ..model import CheckResult, CheckStatus, Finding, Severity
from ..osv import OsvIndex, OsvServer, load_index
from . import _site

SDK = "aitbc-plugins"
ONLINE = "PyPI (online)"

_UNREACHABLE = re.compile(
    r"requests\.exceptions\.(ConnectionError|ConnectTimeout|ReadTimeout|Timeout|SSLError)"
    r"|Could not connect to|your network may be blocking"
)


class AuditSetupError(CheckError):
    """The dependencies could not be worked out (no environment, inventory failed)."""


@dataclass
class Dependencies:
    root: str  # the plugin's distribution
    pinned: dict[str, tuple[str, str]] = field(default_factory=dict)  # canon -> (name, ver)
    via: dict[str, str] = field(default_factory=dict)  # canon -> who requires it
    excluded: dict[str, str] = field(default_factory=dict)  # name -> why
    missing: dict[str, str] = field(default_factory=dict)  # declared, not installed
    #: the METADATA files of the plugin and of what is audited (None: one has none)
    metadata_files: list[Path] | None = None

    def unresolved(self) -> dict[str, str]:
        return {n: f"required by {p} but not installed" for n, p in self.missing.items()}

    def requirements(self) -> str:
        return "".join(f"{n}=={v}\n" for n, v in sorted(self.pinned.values()))


def _requirements(raw: list[str], env: dict[str, str], extras: set[str]) -> list[Requirement]:
    wanted = []
    for text in raw:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise AuditSetupError(f"unreadable requirement {text!r}: {exc}") from None
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras):
            wanted.append(req)
    return wanted


def _walk(
    root: str, dists: dict[str, dict[str, Any]], env: dict[str, str], stop: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Everything ``root`` requires (name -> parent), not going through ``stop``;
    and the requirements with no installed distribution (name -> parent)."""
    seen: dict[str, set[str]] = {}
    parents: dict[str, str] = {}
    missing: dict[str, str] = {}
    queue: list[tuple[str, set[str]]] = [(root, {""})]
    while queue:
        name, extras = queue.pop()
        for req in _requirements(dists[name]["requires"], env, extras):
            child, wanted = canonicalize_name(req.name), {"", *req.extras}
            if child in (stop, root):
                continue
            if child not in dists:
                missing.setdefault(child, dists[name]["name"])
            elif not wanted <= seen.get(child, set()):
                seen[child] = seen.get(child, set()) | wanted
                parents.setdefault(child, dists[name]["name"])
                queue.append((child, seen[child]))
    return parents, missing


def _inventory(site_packages: Path) -> list[dict[str, Any]]:
    """Every distribution installed in the plugin environment, from its metadata files:
    its Python is not started, which would run the ``.pth`` files of its packages."""
    if not site_packages.is_absolute() or not site_packages.is_dir():
        raise AuditSetupError(f"could not list the plugin environment: no {site_packages}")
    found = []
    path = [str(p) for p in _site.search_dirs(site_packages)]
    for dist in importlib.metadata.distributions(path=path):
        if not dist.metadata["Name"]:
            continue
        files = [f for f in dist.files or [] if f.name == "METADATA"]
        files = [f for f in files if f.parent.suffix == ".dist-info"]
        metadata = str(dist.locate_file(files[0])) if files else None
        found.append({"name": dist.metadata["Name"], "version": dist.version,
                      "requires": dist.requires or [], "metadata": metadata})  # fmt: skip
    return found


def resolve_dependencies(context: CheckContext) -> Dependencies:
    """The plugin's runtime dependency closure at the installed versions."""
    _, plugin = context.built_plugin()
    environment = context.environment()
    env = _site.marker_environment(environment.python)
    dists: dict[str, dict[str, Any]] = {}
    for dist in _inventory(environment.site_packages):  # the first on the path wins
        dists.setdefault(canonicalize_name(dist["name"]), dist)
    root = canonicalize_name(plugin.distribution)
    if root not in dists:
        raise AuditSetupError(f"{plugin.distribution} is not installed in the environment")
    deps = Dependencies(plugin.distribution)
    deps.via, deps.missing = _walk(root, dists, env, stop=canonicalize_name(SDK))
    deps.pinned = {n: (dists[n]["name"], dists[n]["version"]) for n in deps.via}
    files = [dists[n].get("metadata") for n in (root, *sorted(deps.pinned))]
    deps.metadata_files = [Path(f) for f in files if f] if all(files) else None
    if canonicalize_name(SDK) in dists:
        deps.excluded[SDK] = "the AITBC SDK itself: on no public index, not audited"
        for name in _walk(canonicalize_name(SDK), dists, env, stop=None)[0]:
            if name not in deps.pinned and name != root:
                deps.excluded[dists[name]["name"]] = f"required only by {SDK}"
    deps.excluded = dict(sorted(deps.excluded.items(), key=lambda i: i[0].lower()))
    return deps


def _locate(workdir: Path, name: str) -> tuple[str | None, int | None]:
    """Where the project declares ``name`` (requirements.txt, pyproject.toml, setup.py)."""
    for filename, quoted in (
        ("requirements.txt", False),
        ("pyproject.toml", True),
        ("setup.py", True),
    ):
        pattern = re.compile(
            r"""^\s*["']([A-Za-z0-9][A-Za-z0-9._-]*)"""
            if quoted
            else r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)"
        )
        try:
            lines = (workdir / filename).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            match = pattern.match(line)
            if match and canonicalize_name(match.group(1)) == name:
                return filename, number
    return None, None


class AuditCheck:
    """No runtime dependency of the plugin has a known vulnerability.

    The plugin's dependency closure is read from its isolated environment at the
    versions installed there (the SDK and what only the SDK needs are left out) and
    audited with pip-audit against OSV records: the local copy given with `--vuln-db
    DIR`, else the online service.  Each known vulnerability is a finding at the line
    of `requirements.txt` (or `pyproject.toml`, `setup.py`) that declares the
    dependency, with the versions that fix it.  A dependency that could not be audited
    makes the check `incomplete`, which is not certified unless the policy's
    `[audit] allow_incomplete` or `--allow-incomplete-audit` accepts it."""

    id = "audit"
    title = "No runtime dependency has a known vulnerability (pip-audit)"
    security = True
    needs_wheel = True

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        """The vuln db directory (the cache stats its files), the installed METADATA of
        the plugin and of each audited dependency (names, versions, requirements: their
        paths in the reused environment hold the versions too) and the project files
        findings point into.  Online answers change under us: never cached."""
        if context.vuln_db is None or context.osv_url:
            return None
        try:
            deps = resolve_dependencies(context)
        except (CheckError, OSError):  # run() says why
            return None
        if deps.metadata_files is None or deps.missing:
            return None
        declared = [context.workdir / n for n in ("requirements.txt", "pyproject.toml", "setup.py")]
        return [context.vuln_db, *deps.metadata_files, *declared]

    @staticmethod
    def _folder(context: CheckContext) -> Path:
        folder = context.scratch / "audit"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            return self._audit(context, elapsed)

    def _audit(self, context: CheckContext, elapsed: Callable[[], float]) -> CheckResult:
        deps = resolve_dependencies(context)
        if not deps.pinned and not deps.missing:
            summary = "no third-party runtime dependencies"
            return result(self.id, [], elapsed(), summary, audited=[], excluded=deps.excluded)
        if not deps.pinned:  # only declared dependencies that are not installed
            details = {"service": "none", "excluded": deps.excluded}
            return self._incomplete(context, deps, [], deps.unresolved(), details, elapsed())
        folder = self._folder(context)
        pins = folder / "requirements.txt"
        pins.write_text(deps.requirements(), encoding="utf-8")
        index: OsvIndex | None = None
        if context.vuln_db is not None:
            if not context.vuln_db.is_dir():
                raise CheckError(f"no such directory: {context.vuln_db}")
            index = load_index(context.vuln_db)
            if not index.records:  # an empty database would pass everything
                raise CheckError(f"no OSV records in {context.vuln_db}")
            with OsvServer(index) as url:
                run = self._pip_audit(context, pins, folder, url)
            service = f"local OSV records in {context.vuln_db}"
        elif context.osv_url:
            url = context.osv_url
            run, service = self._pip_audit(context, pins, folder, url), f"OSV at {url}"
        else:
            run, service = self._pip_audit(context, pins, folder, None), ONLINE
        return self._read(context, deps, run, index, service, elapsed())

    @staticmethod
    def _pip_audit(context: CheckContext, pins: Path, folder: Path, url: str | None) -> Completed:
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
        self,
        context: CheckContext,
        deps: Dependencies,
        run: Completed,
        index: OsvIndex | None,
        service: str,
        duration: float,
    ) -> CheckResult:
        details: dict[str, Any] = {
            "service": service,
            "excluded": deps.excluded,
            "requirements": deps.requirements().split(),
        }
        if run.timed_out:
            raise CheckError(
                f"pip-audit timed out after {context.policy.tool_timeout_s:g}s", **details
            )
        try:
            listed = json.loads(run.stdout)["dependencies"]
            reported: dict[str, Any] = {canonicalize_name(d["name"]): d for d in listed}
            found = sum(len(d.get("vulns", [])) for d in reported.values())
        except (ValueError, KeyError, TypeError, AttributeError):
            reported, found = {}, -1
        if found < 0 or run.returncode != (1 if found else 0):
            if run.returncode and _UNREACHABLE.search(run.stderr):
                reason = f"vulnerability service unreachable ({service}): {run.tail(1)}"
                unaudited = {n: reason for n in deps.pinned}
                return self._incomplete(context, deps, [], unaudited, details, duration)
            raise CheckError(f"pip-audit failed (exit {run.returncode}): {run.tail()}", **details)
        findings: list[Finding] = []
        vulnerable: set[str] = set()
        unaudited = deps.unresolved()
        for name in deps.pinned:
            entry = reported.get(name)
            problems = index.problems(name) if index is not None else []
            if entry is None:
                unaudited[name] = "pip-audit did not report on it"
            elif "skip_reason" in entry:
                unaudited[name] = str(entry["skip_reason"])
            elif problems:
                unaudited[name] = "unreadable advisory record(s): " + "; ".join(problems)
            for vuln in (entry or {}).get("vulns", []):
                findings.append(self._finding(context, deps, name, vuln, index))
                vulnerable.add(" ".join(deps.pinned[name]))
        details["audited"] = sorted(
            f"{deps.pinned[n][0]}=={deps.pinned[n][1]}" for n in deps.pinned if n not in unaudited
        )
        if unaudited and not findings:
            return self._incomplete(context, deps, findings, unaudited, details, duration)
        details["unaudited"] = unaudited
        if findings:
            ids = ", ".join(f.rule.removeprefix("audit.") for f in findings)
            summary = (
                f"{len(findings)} known vulnerabilit{'y' if len(findings) == 1 else 'ies'}"
                f" in {', '.join(sorted(vulnerable))}: {ids}"
            )
            if unaudited:
                summary += f"; {len(unaudited)} dependencies could not be audited"
            return result(self.id, findings, duration, summary, **details)
        count = len(deps.pinned)
        summary = f"no known vulnerabilities in {count} dependenc{'y' if count == 1 else 'ies'}"
        return result(self.id, [], duration, f"{summary} ({service})", **details)

    def _incomplete(
        self,
        context: CheckContext,
        deps: Dependencies,
        findings: list[Finding],
        unaudited: dict[str, str],
        details: dict[str, Any],
        duration: float,
    ) -> CheckResult:
        allowed = context.allow_incomplete_audit or context.policy.allow_incomplete_audit
        names = {
            n: (f"{deps.pinned[n][0]} {deps.pinned[n][1]}" if n in deps.pinned else n)
            for n in unaudited
        }
        for name, reason in sorted(unaudited.items()):
            findings.append(
                Finding(
                    f"{self.id}.incomplete",
                    Severity.HIGH,
                    f"{names[name]} could not be audited: {reason}",
                )
            )
        summary = (
            f"could not audit {len(unaudited)} of {len(deps.pinned) + len(deps.missing)} "
            f"dependencies ({', '.join(names[n] for n in sorted(names))})"
        )
        if len(set(unaudited.values())) == 1:
            summary += f": {next(iter(unaudited.values()))}"
        if details["service"] == ONLINE:
            summary += (
                "; the package index serves no vulnerability data for them: "
                "audit offline with --vuln-db DIR"
            )
        if allowed:
            summary += "; allowed by --allow-incomplete-audit / policy"
        details.update(unaudited=unaudited)
        return result(
            self.id,
            findings,
            duration,
            summary,
            status=CheckStatus.INCOMPLETE,
            allowed=allowed,
            **details,
        )

    def _finding(
        self,
        context: CheckContext,
        deps: Dependencies,
        name: str,
        vuln: dict[str, Any],
        index: OsvIndex | None,
    ) -> Finding:
        vid = str(vuln.get("id"))
        aliases = [str(a) for a in vuln.get("aliases", [])]
        record = None
        if index is not None:
            record = next((index.by_id[k] for k in (vid, *aliases) if k in index.by_id), None)
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
        file, line = _locate(context.workdir, name)
        return Finding(f"{self.id}.{vid}", severity, message, file, line)
