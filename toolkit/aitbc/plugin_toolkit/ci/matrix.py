"""Certification at scale on GitHub Actions' own matrix: plan, run a chunk, merge.

``plan`` turns a registry file (every entry that names its source repository) or a list
of plugin paths into at most ``max_jobs`` chunks, one matrix job each (GitHub caps a
matrix at 256 jobs).  ``run_chunk`` certifies a chunk's plugins one after another in that
job.  ``merge`` reads every chunk's results back into one report and an updated registry.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aitbc.plugins import PluginRegistry, RegistryEntry
from aitbc.plugins.errors import PluginError
from aitbc.plugins.process import Completed, run
from packaging.version import InvalidVersion, Version

from ..errors import ToolkitError
from ..files import write_atomic
from .github import certifies, compact_json, load_report
from .limits import STEP_SUMMARY_MAX_BYTES, more_text, summary_bytes

MATRIX_LIMIT = 256  # GitHub's limit on the jobs one matrix generates
REPORT_FORMATS = ("json", "sarif", "junit", "markdown")
CLONE_TIMEOUT_S = 600
# One plugin's certify (build, environment, every check): far below GitHub's 6 h job limit.
CERTIFY_TIMEOUT_S = 3 * 3600
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PlanItem:
    """One plugin to certify: ``path`` inside ``repository`` at ``ref`` (or in the
    caller's checkout when ``repository`` is empty)."""

    id: str
    name: str
    path: str
    version: str = ""
    repository: str = ""
    ref: str = ""

    @classmethod
    def from_dict(cls, data: object) -> PlanItem:
        fields = ("id", "name", "path", "version", "repository", "ref")
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key, ""), str) for key in fields
        ):
            raise ToolkitError(f"not a plan item: {data!r:.80}")
        if not data.get("id") or not data.get("path"):
            raise ToolkitError(f"plan item without id or path: {data!r:.80}")
        return cls(**{key: data.get(key, "") for key in fields})


@dataclass(frozen=True)
class Plan:
    items: tuple[PlanItem, ...]
    skipped: tuple[str, ...] = ()  # registry entries that cannot be certified, and why


def slug(text: str) -> str:
    """A name usable for a directory and an artifact."""
    return _SLUG.sub("-", text).strip("-.") or "root"


def _unique_ids(items: list[PlanItem]) -> tuple[PlanItem, ...]:
    seen: dict[str, int] = {}
    result = []
    for item in items:
        count = seen.get(item.id, 0)
        seen[item.id] = count + 1
        result.append(
            item if count == 0 else PlanItem(**{**asdict(item), "id": f"{item.id}-{count + 1}"})
        )
    return tuple(result)


def parse_paths(text: str) -> list[str]:
    """Plugin paths, one a line (blank lines and ``#`` comments ignored), each relative
    to the repository root and inside it; no duplicates."""
    paths: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line or "\\" in line:
            raise ToolkitError(f"paths line {number}: {line!r} is not a POSIX path")
        if line.startswith(("/", "-", "~")):
            raise ToolkitError(
                f"paths line {number}: {line!r} must be relative to the repository root"
            )
        normal = posixpath.normpath(line)
        if normal == ".." or normal.startswith("../"):
            raise ToolkitError(f"paths line {number}: {line!r} leaves the repository")
        if normal in paths:
            raise ToolkitError(f"paths line {number}: {line!r} is listed twice")
        paths.append(normal)
    if not paths:
        raise ToolkitError("no plugin paths given")
    return paths


def plan_from_paths(text: str) -> Plan:
    items = [PlanItem(id=slug(p), name=p, path=p) for p in parse_paths(text)]
    return Plan(_unique_ids(items))


def plan_from_registry(path: Path, ref_template: str = "v{version}") -> Plan:
    """Every entry of the registry at ``path`` that names its ``repository``; the ref to
    check out is ``ref_template`` with ``{version}`` and ``{name}`` filled in."""
    if "{version}" not in ref_template and "{name}" not in ref_template:
        raise ToolkitError(f"--ref-template {ref_template!r} needs {{version}} (or {{name}})")
    try:
        registry = PluginRegistry.from_file(path)
    except PluginError as exc:
        raise ToolkitError(str(exc)) from None
    items: list[PlanItem] = []
    skipped: list[str] = []
    for entry in registry:
        label = f"{entry.name} {entry.version}"
        if not entry.repository:
            skipped.append(f"{label}: no repository to certify from")
            continue
        if entry.repository.startswith("-") or entry.repository.startswith("ext::"):
            skipped.append(f"{label}: repository {entry.repository!r} is not a git URL")
            continue
        ref = ref_template.replace("{version}", entry.version).replace("{name}", entry.name)
        items.append(PlanItem(id=slug(f"{entry.name}-{entry.version}"), name=entry.name,
                              version=entry.version, path=".", repository=entry.repository,
                              ref=ref))  # fmt: skip
    return Plan(_unique_ids(items), tuple(skipped))


def chunks(items: tuple[PlanItem, ...], max_jobs: int) -> list[tuple[PlanItem, ...]]:
    """At most ``max_jobs`` contiguous chunks whose sizes differ by at most one."""
    if not 1 <= max_jobs <= MATRIX_LIMIT:
        raise ToolkitError(f"max jobs must be between 1 and {MATRIX_LIMIT}, not {max_jobs}")
    jobs = min(len(items), max_jobs)
    if jobs == 0:
        return []
    size, extra = divmod(len(items), jobs)
    result = []
    start = 0
    for index in range(jobs):
        end = start + size + (1 if index < extra else 0)
        result.append(items[start:end])
        start = end
    return result


def matrix(plan: Plan, max_jobs: int = MATRIX_LIMIT) -> dict[str, Any]:
    """The ``strategy.matrix`` value: one ``include`` row per chunk; ``items`` is the
    chunk's plan as a JSON string, for ``aitbc-plugin ci run-chunk``."""
    rows = []
    for index, chunk in enumerate(chunks(plan.items, max_jobs)):
        names = ", ".join(item.id for item in chunk)
        rows.append({"chunk": index, "plugins": names if len(names) <= 80 else names[:77] + "...",
                     "items": compact_json([asdict(item) for item in chunk])})  # fmt: skip
    return {"include": rows}


def parse_items(text: str) -> list[PlanItem]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"chunk items are not JSON: {exc.msg}") from None
    if not isinstance(data, list) or not data:
        raise ToolkitError("chunk items must be a non-empty JSON list")
    return [PlanItem.from_dict(item) for item in data]


# -- one chunk, in one matrix job -------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    item: PlanItem
    exit_code: int
    certified: bool
    error: str = ""  # why there is no report (clone or certify failed), one line


def run_chunk(items: list[PlanItem], out_dir: Path, work_dir: Path,
              certify_args: tuple[str, ...] = ()) -> list[Outcome]:  # fmt: skip
    """Certify each item into ``out_dir/<id>/`` (reports, dist/, outcome.json)."""
    outcomes = []
    for item in items:
        target = out_dir / item.id
        target.mkdir(parents=True, exist_ok=True)
        outcome = _certify_item(item, target, work_dir / item.id, certify_args)
        write_atomic(target / "outcome.json", (
            json.dumps({"item": asdict(item), "exit_code": outcome.exit_code,
                        "certified": outcome.certified, "error": outcome.error}, indent=2) + "\n"
        ).encode())  # fmt: skip
        outcomes.append(outcome)
    return outcomes


def _certify_item(item: PlanItem, target: Path, clone: Path,
                  certify_args: tuple[str, ...]) -> Outcome:  # fmt: skip
    project = Path(item.path)
    if item.repository:
        command = ["git", "-c", "protocol.ext.allow=never", "clone", "--quiet", "--depth", "1"]
        command += ["--branch", item.ref] if item.ref else []
        # A stalled remote must not hold the matrix job until GitHub's own limit.
        result = run([*command, "--", item.repository, str(clone)], timeout=CLONE_TIMEOUT_S)
        if result.returncode is None:
            return Outcome(item, 124, False, f"git clone took longer than {CLONE_TIMEOUT_S}s")
        if result.returncode != 0:
            return Outcome(item, result.returncode, False, f"git clone failed: {_last(result)}")
        project = clone / item.path
    formats = [arg for name in REPORT_FORMATS for arg in ("--format", name)]
    result = run(
        [sys.executable, "-m", "aitbc.plugin_toolkit", "certify", str(project), *formats,
         "--report-dir", str(target), "--dist-dir", str(target / "dist"), *certify_args],
        timeout=CERTIFY_TIMEOUT_S,
    )  # fmt: skip
    if result.returncode is None:
        return Outcome(item, 124, False, f"certify took longer than {CERTIFY_TIMEOUT_S}s")
    if result.returncode in (0, 1) and (target / "certification.json").is_file():
        return Outcome(item, result.returncode, result.returncode == 0)
    return Outcome(item, result.returncode, False, f"certify failed: {_last(result)}")


def _last(result: Completed) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


# -- merge ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Merged:
    report: dict[str, Any]
    registry: dict[str, Any]
    markdown: str

    @property
    def certified(self) -> bool:
        return bool(self.report["certified"])


def _results(directories: list[Path]) -> list[dict[str, Any]]:
    """One record per result directory: its outcome.json and/or certification.json."""
    folders: set[Path] = set()
    for directory in directories:
        if not directory.is_dir():
            raise ToolkitError(f"{directory}: no such results directory")
        for name in ("outcome.json", "certification.json"):
            folders.update(found.parent for found in directory.rglob(name))
    records = []
    for folder in sorted(folders):
        outcome: dict[str, Any] = {}
        if (folder / "outcome.json").is_file():
            outcome = load_outcome(folder / "outcome.json")
        report = None
        if (folder / "certification.json").is_file():
            report = load_report(folder / "certification.json")
        item = outcome.get("item", {})
        plugin = report["plugin"] if report else {}
        records.append({
            "name": str(plugin.get("name") or item.get("name") or folder.name),
            "version": str(plugin.get("version") or item.get("version") or ""),
            "source": (f"{item['repository']}@{item.get('ref', '')}" if item.get("repository")
                       else str(item.get("path") or plugin.get("project") or folder.name)),
            "planned": (item.get("name", ""), item.get("version", "")),
            "certified": bool(report and certifies(report)),
            "error": str(outcome.get("error") or ""),
            "reasons": [str(r) for r in (report or {}).get("reasons", [])],
            "checks": {c["id"]: c["status"] for c in (report or {}).get("checks", [])},
            "registry_entry": (report or {}).get("registry_entry"),
        })  # fmt: skip
    return records


def load_outcome(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolkitError(f"{path}: not a readable outcome file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("item"), dict):
        raise ToolkitError(f"{path}: not an outcome file")
    return data


def merge(directories: list[Path], base_registry: Path | None = None,
          keep_failed: bool = False) -> Merged:  # fmt: skip
    """All results under ``directories`` as one report, plus ``base_registry`` updated:
    a release certified everywhere it ran gets its fresh entry; one that failed anywhere
    is removed (unless ``keep_failed``); releases without a result stay as they were."""
    records = _results(directories)
    if not records:
        where = ", ".join(str(d) for d in directories)
        raise ToolkitError(f"no certification results under {where}")
    try:
        registry = PluginRegistry.from_file(base_registry) if base_registry else PluginRegistry()
    except PluginError as exc:
        raise ToolkitError(str(exc)) from None
    before = {(e.name, e.version) for e in registry}
    releases: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        releases.setdefault((record["name"], record["version"]), []).append(record)
    removed, refreshed = [], []
    entries = {(e.name, _key(e.version)): e for e in registry}
    for (name, version), results in releases.items():
        certified = all(r["certified"] for r in results)
        planned = {r["planned"] for r in results if r["planned"][0]}
        keys = {(name, _key(version))} | {(n, _key(v)) for n, v in planned}
        if certified and results[0]["registry_entry"]:
            new_entry = RegistryEntry.from_dict(results[0]["registry_entry"])
            for key in keys:
                entries.pop(key, None)
            entries[(new_entry.name, _key(new_entry.version))] = new_entry
            refreshed.append(f"{name} {version}")
        elif not certified and not keep_failed:
            for key in keys:
                if entries.pop(key, None) is not None:
                    removed.append(f"{key[0]} {version}")
    updated = PluginRegistry()
    for entry in entries.values():
        updated.add(entry)
    document = updated.to_dict()
    try:
        PluginRegistry.validate(document)
    except PluginError as exc:
        raise ToolkitError(f"the updated registry is invalid: {exc}") from None
    tried = {k for k in releases} | {p for r in records for p in [r["planned"]] if p[0]}
    untouched = sorted(f"{n} {v}" for n, v in before if (n, v) not in tried)
    plugins = [{"name": n, "version": v, "certified": all(r["certified"] for r in rs),
                "results": [{k: r[k] for k in ("source", "certified", "error", "reasons", "checks")}
                            for r in rs]}
               for (n, v), rs in sorted(releases.items())]  # fmt: skip
    report = {
        "certified": all(p["certified"] for p in plugins),
        "total": len(plugins),
        "certified_count": sum(1 for p in plugins if p["certified"]),
        "plugins": plugins,
        "registry": {"entries": len(updated), "refreshed": sorted(refreshed),
                     "removed": sorted(removed), "not_recertified": untouched},
    }  # fmt: skip
    return Merged(report, document, _markdown(report))


def _key(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(report: dict[str, Any]) -> str:
    """The summary table, within GitHub's size for a job summary: the releases not
    certified first, and a last line counting those that did not fit."""
    title = f"## Certified {report['certified_count']} of {report['total']} plugin release(s)"
    head = [title, "", "| Plugin | Version | Verdict | Why not |", "| --- | --- | --- | --- |"]
    registry = report["registry"]
    tail = ["", f"Registry: {registry['entries']} entries; {len(registry['refreshed'])} "
            f"refreshed, {len(registry['removed'])} removed, "
            f"{len(registry['not_recertified'])} not recertified."]  # fmt: skip
    rows = [_row(p) for p in sorted(report["plugins"], key=lambda p: bool(p["certified"]))]
    reserve = 1024  # the "more" line
    room = STEP_SUMMARY_MAX_BYTES - summary_bytes(head) - summary_bytes(tail) - reserve
    shown = []
    for row in rows:
        room -= summary_bytes([row])
        if room < 0:
            break
        shown.append(row)
    hidden = len(rows) - len(shown)
    if hidden:
        where = "report.json in the merged artifact (aitbc-recertify-merged)"
        shown += ["", more_text(hidden, "plugin release", where)]
    return "\n".join([*head, *shown, *tail]) + "\n"


def _row(plugin: dict[str, Any]) -> str:
    why = "; ".join(
        r["error"] or "; ".join(r["reasons"]) for r in plugin["results"] if not r["certified"]
    )
    verdict = "certified" if plugin["certified"] else "**not certified**"
    return f"| {_cell(plugin['name'])} | {_cell(plugin['version'])} | {verdict} | {_cell(why)} |"


def merge_outputs(merged: Merged) -> dict[str, str]:
    """Step outputs of the merge: the overall verdict and, for one release, its entry."""
    report = merged.report
    entry = ""
    if report["total"] == 1 and report["certified"]:
        name, version = report["plugins"][0]["name"], report["plugins"][0]["version"]
        found = [e for e in merged.registry["plugins"]
                 if e["name"] == name and _key(e["version"]) == _key(version)]  # fmt: skip
        entry = compact_json(found[0]) if found else ""
    return {"certified": "true" if report["certified"] else "false",
            "total": str(report["total"]), "certified-count": str(report["certified_count"]),
            "registry-entry": entry}  # fmt: skip


__all__ = ["MATRIX_LIMIT", "Merged", "Outcome", "Plan", "PlanItem", "chunks", "matrix",
           "merge", "merge_outputs", "parse_items", "parse_paths", "plan_from_paths",
           "plan_from_registry", "run_chunk"]  # fmt: skip
