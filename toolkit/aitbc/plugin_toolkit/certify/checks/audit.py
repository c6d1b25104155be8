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
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..base import VULN_DB_VARIABLE, CheckContext, CheckError, result, timed
from ..causes import brief
from ..model import CheckResult, CheckStatus, Finding, Severity
from ..osv import OsvIndex, load_index
from ..requirements import (
    SDK,
    ConflictWithSdk,
    Declared,
    DeclaredSet,
    declared_requirements,
    sdk_conflicts,
    sdk_requirements,
)
from . import _closure, _imports, _pip_audit, _shipped, _site
from ._closure import Dependencies, resolve_dependencies
from ._pip_audit import ONLINE, Audited
from ._ranges import admitted


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
        audited = _pip_audit.audited(context, deps or pins, index, self._folder(context))
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
