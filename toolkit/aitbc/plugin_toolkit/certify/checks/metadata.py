"""`metadata`: what the plugin says about itself is valid and agrees with its wheel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from packaging.utils import canonicalize_name

from ..base import CheckContext, CheckError, result, timed
from ..behaviour import declared_permissions, judge
from ..model import CheckResult, Finding, Severity

#: JSON Schema drafts certification accepts: draft 7 or later.
ACCEPTED_DRAFTS = {
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
}


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
    """What the plugin says about itself is valid and agrees with its wheel.

    The plugin is loaded through its entry point in its isolated environment (the
    metadata probe, `metadata_probe.py`), constructed with a real context, and asked
    for `get_metadata()` and `get_config_schema()`.  It fails when the metadata does
    not validate, when its name is not the entry point's, when the distribution is not
    named after the plugin (optionally prefixed `aitbc-`), when its version is not the
    distribution's, when it declares itself incompatible with this AITBC version, or
    when `config_schema.json` is missing, not a JSON Schema of draft 7 or later, or not
    what `get_config_schema()` returns."""

    id = "metadata"
    title = "Plugin metadata is valid and agrees with the distribution"
    security = False
    needs_wheel = True
    uses_environment = True
    typical_s = 0.05

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            if context.metadata_probe is None:
                raise CheckError("no metadata probe to ask the plugin")
            answer = context.metadata_probe.get()
            _, plugin = context.built_plugin()
            # Importing the plugin and asking it: what that did, seen from outside.
            seen, record = judge(self.id, "import", answer.behaviour, declared_permissions(context))
            if answer.error is not None:
                rule = "metadata.invalid" if answer.field else "metadata.unloadable"
                finding = Finding(rule, Severity.HIGH, answer.error, "plugin.py")
                return result(self.id, [finding, *seen], elapsed(), answer.error, behaviour=record)
            meta = answer.metadata
            assert meta is not None  # MetadataProbe: metadata is set when error is not
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
            if answer.incompatibility:
                findings.append(
                    Finding(
                        "metadata.incompatible",
                        Severity.HIGH,
                        f"the plugin {answer.incompatibility}",
                        "plugin.py",
                    )
                )
            findings += _schema_findings(
                context.workdir / "config_schema.json", answer.config_schema
            )
            findings += seen
        summary = (
            f"{meta['name']} {meta['version']} ({answer.kind}): metadata valid"
            if not findings
            else f"{len(findings)} metadata problem(s)"
        )
        if seen and len(seen) == len(findings):
            summary = seen[0].message + (f" (and {len(seen) - 1} more)" if len(seen) > 1 else "")
        return result(self.id, findings, elapsed(), summary, kind=answer.kind, metadata=meta,
                      behaviour=record)  # fmt: skip

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return None  # needs the environment's answer, and the registry entry needs it too
