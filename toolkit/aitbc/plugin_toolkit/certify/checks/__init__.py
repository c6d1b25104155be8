"""The certification checks, in the order of the report.  Adding one: a new module here
and one line in CHECKS.  Everything else that names checks (the policy's ids, report
titles, SARIF rules, checks/README.md) is derived from this tuple, read when used."""

from __future__ import annotations

from ..base import Check, CheckInfo, describe
from .audit import AuditCheck
from .build import BuildCheck
from .interface import InterfaceCheck
from .lifecycle import LifecycleCheck
from .metadata import MetadataCheck
from .security import SecurityCheck
from .structure import StructureCheck
from .tests import TestsCheck

CHECKS: tuple[Check, ...] = (
    StructureCheck(),
    MetadataCheck(),
    InterfaceCheck(),
    SecurityCheck(),
    AuditCheck(),
    LifecycleCheck(),
    TestsCheck(),
    BuildCheck(),
)


def check_ids() -> tuple[str, ...]:
    return tuple(check.id for check in CHECKS)


def check_info(check_id: str) -> CheckInfo | None:
    """What the registered check ``check_id`` says of itself; None for an unknown id
    (a report written by another toolkit version)."""
    return next((describe(c) for c in CHECKS if c.id == check_id), None)
