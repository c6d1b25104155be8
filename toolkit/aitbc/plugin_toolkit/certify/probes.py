"""What the plugin says about itself, asked in its own environment: checks/metadata_probe.py
run by the plugin environment's Python, its answer typed here.  Computed once per run
(``CheckContext.metadata_probe``) and read by the metadata check and the registry entry,
and by the interface check (the methods' run-time signatures, its ``runtime`` section).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any

from aitbc.plugins.errors import MetadataError
from aitbc.plugins.metadata import PluginMetadata
from aitbc.plugins.sandbox.jail import interpreter_paths, run_observed
from aitbc.plugins.sandbox.trace import Behaviour

from .base import CheckContext, CheckError
from .cache import AnswerCache
from .checks._signatures import interface_names


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
    behaviour: Behaviour | None = None  # what importing and asking the plugin did
    # The methods as the plugin's class holds them at run time: raw and untrusted, read
    # by the interface check alone (checks/_signatures.parse_runtime), whose error a
    # malformed section is; None when the class could not even be loaded.
    runtime: Any = None

    @classmethod
    def from_answer(cls, answer: Any) -> MetadataProbe:
        if not isinstance(answer, dict):
            raise CheckError(f"the metadata probe printed {type(answer).__name__}, not an object")
        runtime = answer.get("runtime")
        if "error" in answer:
            field = answer.get("field")
            return cls(error=str(answer["error"]), field=str(field) if field else None,
                       runtime=runtime)  # fmt: skip
        metadata = answer.get("metadata")
        if not isinstance(metadata, dict):
            raise CheckError("the metadata probe's answer holds no metadata object")
        # Validated and judged here again: the plugin's process is the plugin's.
        try:
            validated = PluginMetadata(**metadata)
        except MetadataError as exc:
            return cls(error=f"MetadataError: {exc}", field=exc.field, runtime=runtime)
        except TypeError as exc:
            return cls(error=f"get_metadata() returned unknown fields: {exc}", runtime=runtime)
        kind = answer.get("kind")
        return cls(
            kind=str(kind) if kind is not None else None,
            metadata=validated.to_dict(),
            incompatibility=validated.incompatibility(),
            config_schema=answer.get("config_schema"),
            runtime=runtime,
        )


def run_metadata_probe(context: CheckContext, kept: AnswerCache | None = None) -> MetadataProbe:
    """Run checks/metadata_probe.py in the plugin environment, or read the answer it gave
    for the same wheel before (``kept``), when that answer was a quiet one."""
    wheel, plugin = context.built_plugin()
    probe = context.checks_dir / "metadata_probe.py"
    key = kept.key([wheel, probe], context.workdir.parent) if kept else None
    if kept is not None and key is not None:
        cached = kept.get(key)
        try:
            if cached is not None:
                return dataclasses.replace(MetadataProbe.from_answer(cached), behaviour=Behaviour())
        except CheckError:
            pass  # a damaged answer: ask the plugin again
    environment = context.environment()
    folder = context.scratch / "metadata-probe"
    folder.mkdir(parents=True, exist_ok=True)
    timeout = context.policy.tool_timeout_s
    nonce = secrets.token_hex(16)
    observed = run_observed(
        [str(environment.python), str(probe), plugin.name, *interface_names()],
        scratch=folder,
        cwd=folder,
        timeout=timeout,
        readable=[*interpreter_paths(environment.python), probe],
        expected_programs=[str(environment.python)],
        input=nonce + "\n",
    )
    run = observed.completed
    if run.timed_out:
        raise CheckError(f"the metadata probe took longer than {timeout:g}s")
    if run.returncode == 3:  # it found no nonce: the plugin's code read its stdin
        raise CheckError("the metadata probe's stdin was read by the plugin: no answer is believed")
    answers = [line[len(nonce) + 1 :] for line in run.stdout.splitlines()
               if line.startswith(nonce + " ")]  # fmt: skip
    if len(answers) != 1:
        said = "no answer" if not answers else f"{len(answers)} answers (forged ones among them)"
        raise CheckError(f"the metadata probe gave {said}: {run.tail(3)}")
    try:
        answer = json.loads(answers[0])
    except json.JSONDecodeError:
        raise CheckError(f"the metadata probe's answer is not JSON: {answers[0][:80]!r}") from None
    found = MetadataProbe.from_answer(answer)
    quiet = observed.behaviour is None or not observed.behaviour.actions
    if kept is not None and key is not None and quiet and found.error is None:
        kept.put(key, answer)
    return dataclasses.replace(found, behaviour=observed.behaviour)
