"""What plugin code did in each phase, as strace saw it from outside the jail, judged
against the permissions the plugin declares (``PluginMetadata.permissions``).

Every undeclared action is a finding of the phase's check (``<check>.network``,
``.program``, ``.write``, ``.process``); a declared one is a note.  A process left
running is always a finding: no permission makes that right.
"""

from __future__ import annotations

from typing import Any

from aitbc.plugins.errors import MetadataError
from aitbc.plugins.permissions import Permissions
from aitbc.plugins.sandbox.trace import Action, Behaviour

from .base import CheckContext
from .model import Finding, Severity

#: The phases of a certification in which plugin code runs, and the check that owns each.
PHASE_CHECKS = {"build": "build", "import": "metadata", "lifecycle": "lifecycle", "tests": "tests"}
_SEVERITY = {"network": Severity.HIGH, "write": Severity.HIGH, "process": Severity.HIGH,
             "program": Severity.MEDIUM}  # fmt: skip


def declared_permissions(context: CheckContext) -> Permissions:
    """What the plugin's get_metadata() declares; nothing when it could not say."""
    probe = context.metadata_probe
    try:
        answer = probe.get() if probe is not None else None
    except Exception:
        return Permissions()
    listed = (answer.metadata or {}).get("permissions") if answer is not None else None
    try:
        return Permissions.parse(listed or [])
    except MetadataError:  # the metadata check names the bad entry
        return Permissions()


def allowed(action: Action, permissions: Permissions) -> bool:
    if action.kind == "network":
        return permissions.allows_connect(action.subject, action.port)
    if action.kind == "program":
        return permissions.allows_exec(action.subject)
    if action.kind == "write":
        return permissions.allows_write(action.subject)
    return False  # a process left behind


def judge(
    check_id: str, phase: str, behaviour: Behaviour | None, permissions: Permissions
) -> tuple[list[Finding], dict[str, Any]]:
    """The findings for undeclared actions, and the phase's record for the report."""
    if behaviour is None:
        return [], {"phase": phase, "observed": False}
    findings, notes = [], []
    for action in behaviour.actions:
        if allowed(action, permissions):
            notes.append(f"{action.describe()} (declared)")
            continue
        what = f"{phase}: {action.describe()}"
        if action.kind != "process":
            what += f", which the plugin does not declare in its permissions ({action.kind})"
        else:
            what += " after the step ended; it was killed"
        findings.append(Finding(f"{check_id}.{action.kind}", _SEVERITY[action.kind], what))
    record: dict[str, Any] = {"phase": phase, "observed": behaviour.complete,
                              **behaviour.as_dict(), "notes": notes}  # fmt: skip
    return findings, record
