"""The certification checks.  Adding one: a new module here and one line below.
The order is the order of the report."""

from __future__ import annotations

from ..base import Check
from .build import BuildCheck
from .metadata import MetadataCheck
from .structure import StructureCheck
from .tests import TestsCheck

CHECKS: tuple[Check, ...] = (
    StructureCheck(),
    MetadataCheck(),
    TestsCheck(),
    BuildCheck(),
)
