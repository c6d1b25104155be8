"""The certification checks.  Adding one: a new module here and one line below.
The order is the order of the report."""

from __future__ import annotations

from ..base import Check
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
