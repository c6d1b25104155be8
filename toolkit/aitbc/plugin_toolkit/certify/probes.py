"""What the plugin says about itself, asked in its own environment: checks/metadata_probe.py
run by the plugin environment's Python, its answer typed here.  Computed once per run
(``CheckContext.metadata_probe``) and read by the metadata check and the registry entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aitbc.plugins.sandbox.jail import interpreter_paths, run_jailed

from .base import CheckContext, CheckError


@dataclass(frozen=True)
class MetadataProbe:
    """The probe's answer.  ``error`` set: the plugin could not even say (``field``
    names the metadata field at fault, when one is)."""

    kind: str | None = None
    metadata: dict[str, Any] | None = None
    incompatibility: str | None = None
    config_schema: Any = None
    error: str | None = None
    field: str | None = None

    @classmethod
    def from_answer(cls, answer: Any) -> MetadataProbe:
        if not isinstance(answer, dict):
            raise CheckError(f"the metadata probe printed {type(answer).__name__}, not an object")
        if "error" in answer:
            field = answer.get("field")
            return cls(error=str(answer["error"]), field=str(field) if field else None)
        metadata = answer.get("metadata")
        if not isinstance(metadata, dict):
            raise CheckError("the metadata probe's answer holds no metadata object")
        incompatibility = answer.get("incompatibility")
        kind = answer.get("kind")
        return cls(
            kind=str(kind) if kind is not None else None,
            metadata=metadata,
            incompatibility=str(incompatibility) if incompatibility else None,
            config_schema=answer.get("config_schema"),
        )


def run_metadata_probe(context: CheckContext) -> MetadataProbe:
    """Run checks/metadata_probe.py in the plugin environment."""
    _, plugin = context.built_plugin()
    environment = context.environment()
    folder = context.scratch / "metadata-probe"
    folder.mkdir(parents=True, exist_ok=True)
    timeout = context.policy.tool_timeout_s
    probe = context.checks_dir / "metadata_probe.py"
    run = run_jailed(
        [str(environment.python), str(probe), plugin.name],
        scratch=folder,
        cwd=folder,
        timeout=timeout,
        readable=[*interpreter_paths(environment.python), probe],
    )
    if run.timed_out:
        raise CheckError(f"the metadata probe took longer than {timeout:g}s")
    try:
        answer = json.loads(run.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise CheckError(f"the metadata probe printed no JSON: {run.tail(3)}") from None
    return MetadataProbe.from_answer(answer)
