"""`audit`: the plugin's declared dependencies, judged before and after installing them.

What is judged (the issue's "dependency set"): the built wheel's ``Requires-Dist``, every
extra included, together with ``requirements.txt`` (requirements.py reads both, with
their lines); the two must agree, and a direct URL or local path is refused.  Known
vulnerabilities are looked up three ways:

- the closure installed in the plugin environment (:mod:`._closure`), pinned at the
  installed versions, with ``pip-audit -r pinned.txt --no-deps --disable-pip -f json``:
  with ``--vuln-db DIR`` against :mod:`..osv`, a loopback OSV service over that
  directory, else against PyPI.  A transitive finding is located at the plugin's own
  requirement that pulls it in;
- when the environment cannot be made (a conflict with the SDK, an uninstallable
  dependency), the declared exact pins, so a plugin pinning ``pyyaml==5.1`` still hears
  of PyYAML 5.1's advisories;
- every release a requirement admits, intersected with the SDK's requirement for the
  same package (:mod:`._ranges`, local records only): ``urllib3>=1.0`` names the fixing
  lower bound.  ``[audit] ranges = "warn"`` makes these warnings.

pip-audit without ``--strict`` reports a dependency it could not look up as skipped and
still says "No known vulnerabilities found" (exit 0); the JSON names every skip, so the
check reads that instead: any dependency skipped, missing from the output, or covered
by an unreadable advisory record makes the result INCOMPLETE (never PASSED).  A service
that cannot be reached is INCOMPLETE too; any other crash, a timeout or output that
does not parse is ERROR.  With a local database, a package with no record is not
vulnerable (an OSV query answers "no vulns", as api.osv.dev does), not "unknown".
Imports of the shipped code that no requirement declares are findings too (:mod:`._imports`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aitbc.plugins import process
from aitbc.plugins.process import Completed
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..base import VULN_DB_VARIABLE, CheckContext, CheckError, result, timed
from ..causes import brief
from ..model import CheckResult, CheckStatus, Finding, Severity
from ..osv import OsvIndex, OsvServer, load_index
from ..requirements import (
    SDK,
    ConflictWithSdk,
    Declared,
    DeclaredSet,
    declared_requirements,
    sdk_conflicts,
    sdk_requirements,
)
from . import _closure, _imports, _shipped, _site
from ._closure import Dependencies, resolve_dependencies
from ._ranges import admitted

ONLINE = "PyPI (online)"
_NO_ONLINE_DATA = "PyPI's online vulnerability service had no answer for it (no OSV records given)"

_UNREACHABLE = re.compile(
    r"requests\.exceptions\.(ConnectionError|ConnectTimeout|ReadTimeout|Timeout|SSLError)"
    r"|Could not connect to|your network may be blocking"
)


def _conflict_with_sdk(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, ConflictWithSdk):
            return True
        error = error.__cause__ or error.__context__
    return False


def _exact_pin(item: Declared) -> str | None:
    specs = list(item.requirement.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def declared_pins(root: str, declared: DeclaredSet) -> Dependencies:
    """Without an environment: the declared requirements pinned exactly (nothing else
    is known about the versions a host would install)."""
    deps = Dependencies(root)
    for item in declared.direct():
        version = _exact_pin(item)
        if item.name != canonicalize_name(SDK) and not item.requirement.url and version:
            deps.pinned.setdefault(item.name, (item.requirement.name, version))
            deps.via.setdefault(item.name, root)
    return deps


@dataclass
class Audited:
    """What pip-audit said: findings, what it could not audit, ids per package."""

    findings: list[tuple[str, Finding]] = field(default_factory=list)  # (package, unplaced)
    unaudited: dict[str, str] = field(default_factory=dict)
    ids: dict[str, set[str]] = field(default_factory=dict)
    audited: list[str] = field(default_factory=list)
    service: str = "none"
    shown: dict[str, str] = field(default_factory=dict)  # name -> "idna 3.6"


class AuditCheck:
    """The plugin's dependencies are declared alike, from an index, and free of known
    vulnerabilities.

    The dependency set is the built wheel's `Requires-Dist` (every extra included) and
    `requirements.txt`: a requirement in one and not the other, or with other
    specifiers, is a finding naming both lines, and a direct URL or local path is
    refused.  A requirement no version of which the SDK accepts is reported once, at its
    line, as the reason the plugin environment cannot be made.  Known vulnerabilities:
    the dependency closure installed in the plugin's isolated environment (the SDK and
    what only it needs left out) is audited with pip-audit against OSV records (the
    local copy given with `--vuln-db DIR`, else the online service), each finding at
    the line declaring the plugin's own requirement that pulls the package in, with
    the versions that fix it; without an environment, the declared exact pins are.
    Every release a requirement admits is judged against the local records too,
    naming the lower bound that fixes it (`[audit] ranges = "warn"`: a warning).  An
    import of the shipped code that no requirement provides is a finding at its line.
    A dependency that could not be audited makes the check `incomplete`, which is not
    certified unless the policy's `[audit] allow_incomplete` or
    `--allow-incomplete-audit` accepts it."""

    id = "audit"
    title = "Dependencies are declared alike and have no known vulnerability (pip-audit)"
    security = True
    needs_wheel = True
    uses_environment = True
    typical_s = 0.2

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        """The vuln db directory (the cache stats its files), what the verdict reads of
        the wheel and of the installed METADATA of the plugin and of each audited
        dependency (:meth:`_facts`), and the project files findings point into.  Online
        answers change under us: never cached."""
        if context.vuln_db is None or context.osv_url or context.wheel is None:
            return None
        try:
            deps = resolve_dependencies(context)
            listed = declared_requirements(context.wheel, context.workdir).listed or []
        except (CheckError, OSError):  # run() says why
            return None
        if deps.metadata_files is None or deps.missing:
            return None
        declaring = ("requirements.txt", "pyproject.toml", "setup.cfg", "setup.py")
        files = {context.workdir / n for n in declaring}
        files |= {context.workdir / d.file for d in listed if d.file}
        facts = self._facts(context, context.wheel, deps.metadata_files)
        return None if facts is None else [context.vuln_db, facts, *sorted(files)]

    @staticmethod
    def _facts(context: CheckContext, wheel: Path, installed: list[Path]) -> Path | None:
        """What the verdict depends on, in one file for the key: the wheel's METADATA,
        the names it ships and each import of its code with its place; and each
        installed METADATA (names, versions, requirements) by its place in the
        environment (the dist-info folder's name holds the version too).  Not the code's
        bytes, nor which environment: an edit that imports nothing new (the author's
        usual edit) keeps the audit's verdict, as it should."""
        try:
            site_packages = context.environment().site_packages
            environment = {
                str(path.relative_to(site_packages)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in installed
            }
            shipped = _shipped.extract(wheel, context.scratch / "key" / "shipped", context.workdir)
            with zipfile.ZipFile(wheel) as archive:
                metadata = [archive.read(n).hex() for n in archive.namelist()
                            if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]  # fmt: skip
            facts = {
                "installed": environment,
                "metadata": metadata,
                "files": list(shipped.files),
                "imports": sorted(
                    (i.module, i.file, i.line)
                    for name in shipped.sources
                    if name.endswith(".py")
                    for i in _imports.imports_of(shipped.root / name, shipped.project_path(name))
                ),
            }
        except (CheckError, OSError, ValueError, zipfile.BadZipFile):
            return None
        path = context.scratch / "key" / "audited-facts.json"
        path.write_text(json.dumps(facts, sort_keys=True), encoding="utf-8")
        return path

    @staticmethod
    def _folder(context: CheckContext) -> Path:
        folder = context.scratch / "audit"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            return self._audit(context, elapsed)

    def _audit(self, context: CheckContext, elapsed: Callable[[], float]) -> CheckResult:
        wheel, plugin = context.built_plugin()
        declared = declared_requirements(wheel, context.workdir)
        sdk = sdk_requirements()
        findings = [*declared.findings, *sdk_conflicts(declared.direct(), sdk)]
        notes: list[str] = []
        details: dict[str, Any] = {}
        try:
            deps: Dependencies | None = resolve_dependencies(context)
        except CheckError as exc:  # the cause is named once, where it stops a check
            deps = None
            owner = "audit.sdk-conflict" if _conflict_with_sdk(exc) else "the checks it stops"
            notes.append("the plugin environment could not be made, so only the declared "
                         f"requirements were audited (the cause: see {owner})")  # fmt: skip
        index = self._index(context)
        pins = declared_pins(plugin.distribution, declared)
        if deps is not None:  # the extras' exact pins too: never installed, still declared
            for name, pinned in pins.pinned.items():
                deps.pinned.setdefault(name, pinned)
                deps.via.setdefault(name, plugin.distribution)
        audited = self._audited(context, deps or pins, index)
        findings += [self._located(name, f, deps, declared) for name, f in audited.findings]
        if deps is None:
            for item in declared.direct():  # an extra's own needs are never installed
                if (
                    item.name != canonicalize_name(SDK)
                    and not item.requirement.url
                    and (item.extra is None)
                ):
                    audited.unaudited.setdefault(
                        item.name, "what it requires is unknown: no plugin environment"
                    )
                    audited.shown.setdefault(item.name, item.text())
        else:
            audited.unaudited.update(deps.unresolved())
        total = len(deps.pinned) + len(deps.missing) if deps else len(audited.shown)
        warned = self._ranges(context, declared, sdk, index, audited, findings)
        judged = self._imports(context, wheel, declared, deps)
        findings += judged.findings
        notes += judged.notes
        details.update(service=audited.service, audited=audited.audited,
                       excluded=deps.excluded if deps else {}, notes=notes)  # fmt: skip
        if deps is not None:
            details["requirements"] = deps.requirements().split()
        if warned:
            details["warnings"] = warned
        return self._verdict(context, findings, audited, total, details, elapsed())

    @staticmethod
    def _index(context: CheckContext) -> OsvIndex | None:
        if context.vuln_db is None:
            return None
        if not context.vuln_db.is_dir():
            raise CheckError(f"no such directory: {context.vuln_db}")
        index = load_index(context.vuln_db)
        if not index.has_records():  # an empty database would pass everything
            raise CheckError(f"no OSV records in {context.vuln_db}")
        return index

    def _audited(
        self, context: CheckContext, deps: Dependencies, index: OsvIndex | None
    ) -> Audited:
        if not deps.pinned:
            return Audited()
        folder = self._folder(context)
        pins = folder / "requirements.txt"
        pins.write_text(deps.requirements(), encoding="utf-8")
        if index is not None:
            with OsvServer(index) as url:
                run = self._pip_audit(context, pins, folder, url)
            service = f"local OSV records in {context.vuln_db}"
        elif context.osv_url:
            url = context.osv_url
            run, service = self._pip_audit(context, pins, folder, url), f"OSV at {url}"
        else:
            run, service = self._pip_audit(context, pins, folder, None), ONLINE
        return self._read(context, deps, run, index, service)

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
        self, context: CheckContext, deps: Dependencies, run: Completed, index: OsvIndex | None,
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
                finding = self._finding(deps, name, vuln, index)
                audited.findings.append((name, finding))
                audited.ids.setdefault(name, set()).update(
                    [str(vuln.get("id")), *map(str, vuln.get("aliases", []))]
                )
        audited.audited = sorted(
            f"{deps.pinned[n][0]}=={deps.pinned[n][1]}" for n in deps.pinned
            if n not in audited.unaudited
        )  # fmt: skip
        return audited

    @staticmethod
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

    @staticmethod
    def _located(
        name: str, finding: Finding, deps: Dependencies | None, declared: DeclaredSet
    ) -> Finding:
        """``name``'s vulnerability at the line of the plugin's requirement that pulls it in."""
        direct = _closure.pulled_in_by(deps, name) if deps is not None else name
        item = next((d for d in declared.direct() if d.name == direct and d.file), None)
        message = finding.message
        if direct != name and item is not None:
            message += f", pulled in by {item.text()!r} at {item.where}"
        return Finding(finding.rule, finding.severity, message,
                       item.file if item else None, item.line if item else None)  # fmt: skip

    @staticmethod
    def _ranges(
        context: CheckContext, declared: DeclaredSet, sdk: dict[str, Requirement],
        index: OsvIndex | None, audited: Audited, findings: list[Finding],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Findings (or, by the policy, warnings) for releases a requirement admits."""
        if index is None:
            return []
        warned, seen = [], set()
        for item in declared.direct():
            key = (item.name, str(item.requirement.specifier))
            if item.name == canonicalize_name(SDK) or item.requirement.url or key in seen:
                continue
            seen.add(key)
            already = frozenset(audited.ids.get(item.name, set()))
            found = admitted(item.requirement, item.name, index, sdk.get(item.name), already)
            if found is None:
                continue
            finding = Finding("audit.range", Severity.MEDIUM, found.message(item.text()),
                              item.file, item.line)  # fmt: skip
            if context.policy.audit_ranges == "warn":
                warned.append(finding.as_dict())
            else:
                findings.append(finding)
        return warned

    def _imports(
        self, context: CheckContext, wheel: Path, declared: DeclaredSet, deps: Dependencies | None
    ) -> _imports.Judged:
        try:
            shipped = _shipped.extract(wheel, self._folder(context) / "shipped", context.workdir)
        except CheckError as exc:
            return _imports.Judged([], [f"imports not checked: {exc}"])
        provided = None
        if deps is not None:
            site_packages = context.environment().site_packages
            provided = _imports.providers([str(p) for p in _site.search_dirs(site_packages)])
        names = {item.name for item in declared.direct()}
        brought = {}
        if deps is not None:
            brought = {n: _closure.pulled_in_by(deps, n) for n in deps.via if n not in names}
        excluded = deps.excluded if deps is not None else {}
        sdk_side: set[str] = {canonicalize_name(SDK), *map(canonicalize_name, excluded)}
        return _imports.judge_imports(shipped, declared=names, brought=brought,
                                      sdk_side=sdk_side, provided=provided)  # fmt: skip

    def _verdict(
        self, context: CheckContext, findings: list[Finding], audited: Audited, total: int,
        details: dict[str, Any], duration: float,
    ) -> CheckResult:  # fmt: skip
        unaudited = audited.unaudited
        details["unaudited"] = unaudited
        if findings:
            count = len(findings)
            rules = list(dict.fromkeys(f.rule.removeprefix("audit.") for f in findings))
            summary = f"{count} findings: {', '.join(rules)}"
            if count == 1:
                only = findings[0]
                where = f"{only.file}:{only.line}: " if only.file and only.line else ""
                summary = brief(where + only.message, 200)
            if unaudited:
                many = "dependencies" if len(unaudited) > 1 else "dependency"
                summary += f"; {len(unaudited)} {many} could not be audited"
            return result(self.id, findings, duration, summary, **details)
        if unaudited:
            return self._incomplete(context, audited, total, details, duration)
        count = len(audited.audited)
        if not count:
            return result(self.id, [], duration, "no third-party runtime dependencies", **details)
        summary = f"no known vulnerabilities in {count} dependenc{'y' if count == 1 else 'ies'}"
        return result(self.id, [], duration, f"{summary} ({audited.service})", **details)

    def _incomplete(
        self, context: CheckContext, audited: Audited, total: int, details: dict[str, Any],
        duration: float,
    ) -> CheckResult:  # fmt: skip
        allowed = context.allow_incomplete_audit or context.policy.allow_incomplete_audit
        unaudited = audited.unaudited
        names = {n: audited.shown.get(n, n) for n in unaudited}
        findings = [
            Finding(
                f"{self.id}.incomplete", Severity.HIGH, f"{names[n]} could not be audited: {why}"
            )
            for n, why in sorted(unaudited.items())
        ]
        summary = (f"could not audit {len(unaudited)} of {max(total, len(unaudited))} "
                   f"dependencies ({', '.join(names[n] for n in sorted(names))})")  # fmt: skip
        if len(set(unaudited.values())) == 1:
            summary += f": {next(iter(unaudited.values()))}"
        if details["service"] == ONLINE:
            summary += f"; audit offline with --vuln-db DIR or {VULN_DB_VARIABLE}=DIR"
        if allowed:
            summary += "; allowed by --allow-incomplete-audit / policy"
        return result(self.id, findings, duration, summary,
                      status=CheckStatus.INCOMPLETE, allowed=allowed, **details)  # fmt: skip
