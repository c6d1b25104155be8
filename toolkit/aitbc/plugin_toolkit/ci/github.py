"""Glue between a certification report and GitHub Actions, for the reusable workflows.

Everything a workflow's ``run:`` step would otherwise do in shell lives here as plain
functions over the JSON report (``aitbc-plugin certify --format json``): annotations
(``::error file=..,line=..::``), step outputs (``$GITHUB_OUTPUT``), and, in
:mod:`.matrix`, planning matrix chunks and merging their results.  Nothing here prints
or exits: the CLI (``aitbc-plugin ci ...``) does.
"""

from __future__ import annotations

import json
import posixpath
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..errors import ToolkitError
from ..files import write_atomic
from .limits import (
    ANNOTATIONS_PER_STEP,
    SARIF_MAX_GZIP_BYTES,
    SARIF_MAX_LOCATIONS_PER_RESULT,
    SARIF_MAX_RESULTS_PER_RUN,
    SARIF_MAX_RULES_PER_RUN,
    SARIF_MAX_RUNS,
    SARIF_MAX_TAGS_PER_RULE,
    more_text,
)

REPORT_KEYS = ("certified", "plugin", "checks")
# A finding of a check that failed (or could not run) blocks certification: an error.
# Findings of checks that passed anyway, or were incomplete, are warnings.
BLOCKING_STATUSES = frozenset({"failed", "error"})


def load_report(path: Path) -> dict[str, Any]:
    """The JSON report ``certify --format json`` wrote; ToolkitError when it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolkitError(f"{path}: no such report") from None
    except IsADirectoryError:
        raise ToolkitError(f"{path}: is a directory, not a JSON report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolkitError(f"{path}: cannot read the report: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    return validate_report(data, str(path))


def validate_report(data: object, where: str) -> dict[str, Any]:
    """``data`` if it has the shape of a certification report (the parts read here)."""
    if not isinstance(data, dict) or any(key not in data for key in REPORT_KEYS):
        raise ToolkitError(f"{where}: not a certification report (needs {', '.join(REPORT_KEYS)})")
    if not isinstance(data["certified"], bool) or not isinstance(data["plugin"], dict):
        raise ToolkitError(f"{where}: not a certification report (bad certified or plugin)")
    checks = data["checks"]
    if not isinstance(checks, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("id"), str)
        and isinstance(c.get("status"), str)
        and isinstance(c.get("findings", []), list)
        and all(isinstance(f, dict) for f in c.get("findings", []))
        for c in checks
    ):
        raise ToolkitError(f"{where}: not a certification report (bad checks)")
    entry = data.get("registry_entry")
    if entry is not None and not isinstance(entry, dict):
        raise ToolkitError(f"{where}: not a certification report (bad registry_entry)")
    return data


# -- workflow commands (annotations) ----------------------------------------------------------
def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``), escaped likewise."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, properties: Mapping[str, str]) -> str:
    """``::command key=value,...::message``, every part escaped."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def repository_path(plugin_path: str, file: str) -> str:
    """A finding's file (relative to the plugin) as a path from the repository root."""
    joined = posixpath.normpath(posixpath.join(plugin_path or ".", file))
    return joined.removeprefix("./")


# Most severe first; a blocking check with no finding of its own (it could not run) leads.
_RANK = {"critical": 1, "high": 2, "medium": 3, "low": 4}
_UNRANKED = 5


def annotation_lines(
    report: Mapping[str, Any], plugin_path: str = ".", full_report: str | None = None
) -> list[str]:
    """Workflow commands for the findings, as many as a step shows, most severe first.

    Findings of a check that failed or errored are ``::error``; others ``::warning``; a
    blocking check without findings is one command with its summary.  ``plugin_path`` is
    where the plugin sits in the repository, so that the annotation lands on the right
    file in a pull request.  GitHub shows only so many of each level per step and drops
    the rest silently: past that, the last one shown says how many more there are and
    where they all are (``full_report``, else the JSON report's usual name).
    """
    found: list[tuple[str, int, str]] = []  # (level, rank, command)
    for check in report["checks"]:
        status = str(check["status"])
        level = "error" if status in BLOCKING_STATUSES else "warning"
        findings = check.get("findings") or []
        for finding in findings:
            rule = str(finding.get("rule") or check["id"])
            properties = {"title": f"certify {check['id']}: {rule}"}
            file = finding.get("file")
            if isinstance(file, str) and file:
                properties["file"] = repository_path(plugin_path, file)
                line = finding.get("line")
                if isinstance(line, int) and not isinstance(line, bool) and line >= 1:
                    properties["line"] = str(line)
            severity = finding.get("severity")
            message = str(finding.get("message") or "")
            if isinstance(severity, str) and severity:
                message = f"[{severity}] {message}"
            rank = _RANK.get(severity, _UNRANKED) if isinstance(severity, str) else _UNRANKED
            found.append((level, rank, workflow_command(level, message, properties)))
        if not findings and status in BLOCKING_STATUSES | {"incomplete"}:
            summary = str(check.get("summary") or f"{check['id']} {status}")
            properties = {"title": f"certify {check['id']}: {status}"}
            found.append((level, 0, workflow_command(level, summary, properties)))
    found.sort(key=lambda item: item[1])  # stable: the report's order within a rank
    where = f"the full JSON report, {full_report}" if full_report else None
    return within_step_limits([(lvl, line) for lvl, _, line in found], "finding", where,
                              "certify")  # fmt: skip


def within_step_limits(
    found: Sequence[tuple[str, str]], what: str, where: str | None, title: str
) -> list[str]:
    """``(level, command)`` pairs, in order, as GitHub shows them: errors, then warnings,
    each within its per-step limit.  When any give way, the last slot of the first level
    that overflowed says how many ``what``s were left out and ``where`` they all are."""
    by_level = {level: [line for lvl, line in found if lvl == level]
                for level in ANNOTATIONS_PER_STEP}  # fmt: skip
    over = next((lvl for lvl in ANNOTATIONS_PER_STEP
                 if len(by_level[lvl]) > ANNOTATIONS_PER_STEP[lvl]), None)  # fmt: skip
    if over is None:
        return [line for lines in by_level.values() for line in lines]
    shown = {level: lines[: ANNOTATIONS_PER_STEP[level] - (level == over)]
             for level, lines in by_level.items()}  # fmt: skip
    omitted = len(found) - sum(map(len, shown.values()))
    final = workflow_command(over, more_text(omitted, what, where),
                             {"title": f"{title}: {omitted:,} more"})  # fmt: skip
    shown[over].append(final)
    return [line for lines in shown.values() for line in lines]


# -- step outputs -----------------------------------------------------------------------------
def certifies(report: Mapping[str, Any]) -> bool:
    """Whether ``report`` certifies its plugin: never a partial run (``--only``), even in
    a report written by a toolkit that said so."""
    partial = report.get("only") or report["plugin"].get("only")
    return report["certified"] is True and not partial


def step_outputs(report: Mapping[str, Any]) -> dict[str, str]:
    """The reusable workflow's outputs for one report: a registry entry only when the
    report certifies the plugin."""
    plugin = report["plugin"]
    entry = report.get("registry_entry") if certifies(report) else None
    return {
        "certified": "true" if certifies(report) else "false",
        "plugin-name": str(plugin.get("name") or ""),
        "plugin-version": str(plugin.get("version") or ""),
        "registry-entry": compact_json(entry) if entry else "",
    }


def compact_json(data: Any) -> str:
    """One line of JSON (no newline can appear: strings escape theirs)."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def format_outputs(outputs: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` lines: ``name=value``, or a heredoc for a multi-line value."""
    chunks: list[str] = []
    for name, value in outputs.items():
        if not name or any(c in name for c in "=\r\n<"):
            raise ToolkitError(f"{name!r} is not a usable output name")
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            chunks.append(f"{name}={value}\n")
    return "".join(chunks)


def append_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append to ``$GITHUB_OUTPUT`` (the runner reads the whole file after the step)."""
    try:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(format_outputs(outputs))
    except OSError as exc:
        raise ToolkitError(f"{path}: cannot write the step outputs: {exc.strerror}") from None


# -- SARIF for code scanning ------------------------------------------------------------------
def rebase_sarif(document: Any, plugin_path: str) -> Any:
    """``document`` with every location relative to the plugin root (``%SRCROOT%``) made
    relative to the repository root, which is what code scanning resolves paths against."""
    if isinstance(document, list):
        return [rebase_sarif(item, plugin_path) for item in document]
    if not isinstance(document, dict):
        return document
    result = {key: rebase_sarif(value, plugin_path) for key, value in document.items()}
    uri = result.get("uri")
    if result.get("uriBaseId") == "%SRCROOT%" and isinstance(uri, str):
        result["uri"] = quote(repository_path(plugin_path, unquote(uri)), safe="/")
    return result


def over_limits(document: Mapping[str, Any], size: int) -> list[str]:
    """Why code scanning would reject ``document`` (``size`` bytes gzip-compressed) for
    its size, one reason each; empty when it is within every hard limit."""
    runs = [run for run in document.get("runs") or [] if isinstance(run, dict)]
    found = []
    if len(runs) > SARIF_MAX_RUNS:
        found.append(f"{len(runs)} runs (at most {SARIF_MAX_RUNS})")
    for number, run in enumerate(runs, 1):
        results = [r for r in run.get("results") or [] if isinstance(r, dict)]
        rules = ((run.get("tool") or {}).get("driver") or {}).get("rules") or []
        if len(results) > SARIF_MAX_RESULTS_PER_RUN:
            found.append(f"run {number}: {len(results):,} results "
                         f"(at most {SARIF_MAX_RESULTS_PER_RUN:,})")  # fmt: skip
        if len(rules) > SARIF_MAX_RULES_PER_RUN:
            found.append(
                f"run {number}: {len(rules):,} rules (at most {SARIF_MAX_RULES_PER_RUN:,})"
            )
        most = max((len(r.get("locations") or []) for r in results), default=0)
        if most > SARIF_MAX_LOCATIONS_PER_RESULT:
            found.append(f"run {number}: a result with {most:,} locations "
                         f"(at most {SARIF_MAX_LOCATIONS_PER_RESULT:,})")  # fmt: skip
        tags = max((len((r.get("properties") or {}).get("tags") or []) for r in rules
                    if isinstance(r, dict)), default=0)  # fmt: skip
        if tags > SARIF_MAX_TAGS_PER_RULE:
            found.append(
                f"run {number}: a rule with {tags} tags (at most {SARIF_MAX_TAGS_PER_RULE})"
            )
    if size > SARIF_MAX_GZIP_BYTES:
        found.append(f"{size:,} bytes gzip-compressed (at most {SARIF_MAX_GZIP_BYTES:,})")
    return found


def over_limits_marker(path: Path) -> Path:
    """Beside an over-limit SARIF file: why (certify.yml's upload job skips on it)."""
    return path.with_name(path.name + ".over-limits")


def prepare_sarif_file(path: Path, plugin_path: str) -> list[str]:
    """Rebase ``path`` for the repository, and say (in its marker file, and returned) why
    code scanning would refuse it for its size; no marker when it is within the limits."""
    import gzip

    rebase_sarif_file(path, plugin_path)
    raw = path.read_bytes()
    problems = over_limits(json.loads(raw), len(gzip.compress(raw)))
    marker = over_limits_marker(path)
    if problems:
        write_atomic(marker, ("\n".join(problems) + "\n").encode())
    else:
        marker.unlink(missing_ok=True)  # a marker from an earlier run would stop the upload
    return problems


def rebase_sarif_file(path: Path, plugin_path: str) -> None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolkitError(f"{path}: no such SARIF file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolkitError(f"{path}: not a readable SARIF file: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        raise ToolkitError(f"{path}: not a SARIF log (no runs)")
    text = json.dumps(rebase_sarif(document, plugin_path), indent=2) + "\n"
    write_atomic(path, text.encode())
