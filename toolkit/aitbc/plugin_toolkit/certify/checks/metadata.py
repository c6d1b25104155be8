"""`metadata`: what the plugin says about itself is valid and agrees with its wheel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from packaging.utils import canonicalize_name

from ..base import CheckContext, error_result, result, timed
from ..model import CheckResult, Finding, Severity
from ..tools import run_tool

#: JSON Schema drafts certification accepts: draft 7 or later.
ACCEPTED_DRAFTS = {
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
}


def probe(context: CheckContext) -> dict[str, Any]:
    """Run checks/metadata_probe.py in the plugin environment (once per run)."""
    cached = context.extra.get("metadata_probe")
    if isinstance(cached, dict):
        return cached
    assert context.plugin is not None and context.plugin_environment is not None
    environment = context.plugin_environment()
    run = run_tool(
        [
            str(environment.python),
            str(context.checks_dir / "metadata_probe.py"),
            context.plugin.name,
        ],
        cwd=context.scratch,
        timeout=context.policy.tool_timeout_s,
    )
    if run.timed_out:
        raise RuntimeError(
            f"the metadata probe took longer than {context.policy.tool_timeout_s:g}s"
        )
    try:
        answer: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError(f"the metadata probe printed no JSON: {run.tail(3)}") from None
    context.extra["metadata_probe"] = answer
    return answer


def _schema_findings(schema_file: Path, declared: Any) -> list[Finding]:
    name = "config_schema.json"
    if not schema_file.is_file():
        return [Finding("metadata.schema-missing", Severity.HIGH, f"{name} is missing", name)]
    try:
        on_disk = json.loads(schema_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [Finding("metadata.schema-json", Severity.HIGH, f"{name} is not JSON: {exc}", name)]
    findings = []
    if not isinstance(on_disk, dict):
        return [Finding("metadata.schema-invalid", Severity.HIGH, f"{name} is not an object", name)]
    draft = str(on_disk.get("$schema", "")).rstrip("#")
    if draft and draft not in ACCEPTED_DRAFTS:
        findings.append(
            Finding(
                "metadata.schema-draft",
                Severity.HIGH,
                f"{name} uses {draft}; draft 7 or later is required",
                name,
            )
        )
    try:
        jsonschema.validators.validator_for(on_disk).check_schema(on_disk)
    except jsonschema.SchemaError as exc:
        findings.append(
            Finding(
                "metadata.schema-invalid",
                Severity.HIGH,
                f"{name} is not a valid JSON Schema: {exc.message}",
                name,
            )
        )
    if declared != on_disk:
        findings.append(
            Finding(
                "metadata.schema-mismatch",
                Severity.HIGH,
                f"get_config_schema() does not return what {name} holds",
                name,
            )
        )
    return findings


class MetadataCheck:
    id = "metadata"
    title = "Plugin metadata is valid and agrees with the distribution"
    needs_wheel = True

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            try:
                answer = probe(context)
            except RuntimeError as exc:
                return error_result(self.id, elapsed(), str(exc))
            assert context.plugin is not None
            if "error" in answer:
                field = answer.get("field")
                rule = "metadata.invalid" if field else "metadata.unloadable"
                finding = Finding(rule, Severity.HIGH, answer["error"], "plugin.py")
                return result(self.id, [finding], elapsed(), answer["error"])
            meta, plugin = answer["metadata"], context.plugin
            findings = []
            if meta["name"] != plugin.name:
                findings.append(
                    Finding(
                        "metadata.name-mismatch",
                        Severity.HIGH,
                        f"get_metadata().name is {meta['name']!r}, "
                        f"the entry point is {plugin.name!r}",
                        "plugin.py",
                    )
                )
            dist = canonicalize_name(plugin.distribution)
            if dist not in {
                canonicalize_name(meta["name"]),
                canonicalize_name(f"aitbc-{meta['name']}"),
            }:
                findings.append(
                    Finding(
                        "metadata.distribution-name",
                        Severity.HIGH,
                        f"the distribution is {plugin.distribution!r}; it must be the plugin name "
                        f"{meta['name']!r} (optionally prefixed aitbc-)",
                    )
                )
            if meta["version"] != plugin.version:
                findings.append(
                    Finding(
                        "metadata.version-mismatch",
                        Severity.HIGH,
                        f"get_metadata().version is {meta['version']}, the distribution's is "
                        f"{plugin.version}",
                        "plugin.py",
                    )
                )
            if answer.get("incompatibility"):
                findings.append(
                    Finding(
                        "metadata.incompatible",
                        Severity.HIGH,
                        f"the plugin {answer['incompatibility']}",
                        "plugin.py",
                    )
                )
            findings += _schema_findings(
                context.workdir / "config_schema.json", answer["config_schema"]
            )
            context.extra["plugin_metadata"] = meta
            context.extra["plugin_kind"] = answer.get("kind")
        summary = (
            f"{meta['name']} {meta['version']} ({answer.get('kind')}): metadata valid"
            if not findings
            else f"{len(findings)} metadata problem(s)"
        )
        return result(self.id, findings, elapsed(), summary, kind=answer.get("kind"), metadata=meta)

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return None  # needs the environment's answer, and the registry entry needs it too
