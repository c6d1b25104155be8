"""Whether two version specifiers can both hold: intervals over PEP 440 versions.

packaging tells whether one version satisfies a specifier, not whether any version
satisfies two (a plugin's ``PyYAML==5.1`` against the SDK's ``PyYAML>=6.0``).  Each
clause is read as intervals of versions and the clauses are intersected.  The reading
is deliberately generous: pre-release and local-version subtleties are ignored and a
clause that cannot be read (``===text``) admits everything, so "no version satisfies
both" is only said when it is certain.  It may miss a conflict (the installer still
reports it then); it never invents one.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True, order=True)
class _Edge:
    version: Version
    inclusive: bool


#: (lower, upper); None is unbounded.
Interval = tuple["_Edge | None", "_Edge | None"]
_EVERYTHING: list[Interval] = [(None, None)]


def _prefix_bounds(text: str) -> tuple[Version, Version]:
    """``1.2`` of ``==1.2.*``: every version from 1.2.dev0 up to (not including) 1.3.dev0."""
    release = Version(text).release
    upper = (*release[:-1], release[-1] + 1)
    return Version(".".join(map(str, release)) + ".dev0"), Version(
        ".".join(map(str, upper)) + ".dev0"
    )


def _clause(spec: Specifier) -> list[Interval]:
    operator, text = spec.operator, spec.version
    try:
        if text.endswith(".*"):
            low, high = _prefix_bounds(text[:-2])
            if operator == "==":
                return [(_Edge(low, True), _Edge(high, False))]
            if operator == "!=":
                return [(None, _Edge(low, False)), (_Edge(high, True), None)]
            return _EVERYTHING
        version = Version(text)
    except (InvalidVersion, IndexError):
        return _EVERYTHING  # unreadable: admits all, so no conflict is invented
    if operator in ("==", "==="):
        return [(_Edge(version, True), _Edge(version, True))]
    if operator == "!=":
        return [(None, _Edge(version, False)), (_Edge(version, False), None)]
    if operator in (">=", ">"):
        return [(_Edge(version, operator == ">="), None)]
    if operator in ("<=", "<"):
        return [(None, _Edge(version, operator == "<="))]
    if operator == "~=":  # >= V, == V's prefix without its last part
        _, high = _prefix_bounds(".".join(map(str, version.release[:-1])))
        return [(_Edge(version, True), _Edge(high, False))]
    return _EVERYTHING


def _lower(a: _Edge | None, b: _Edge | None) -> _Edge | None:
    """The tighter of two lower edges."""
    if a is None or b is None:
        return a or b
    if a.version != b.version:
        return a if a.version > b.version else b
    return a if not a.inclusive else b


def _upper(a: _Edge | None, b: _Edge | None) -> _Edge | None:
    if a is None or b is None:
        return a or b
    if a.version != b.version:
        return a if a.version < b.version else b
    return a if not a.inclusive else b


def _empty(interval: Interval) -> bool:
    low, high = interval
    if low is None or high is None:
        return False
    if low.version != high.version:
        return low.version > high.version
    return not (low.inclusive and high.inclusive)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    joined = [(_lower(x[0], y[0]), _upper(x[1], y[1])) for x in a for y in b]
    return [interval for interval in joined if not _empty(interval)]


def intervals(specifiers: SpecifierSet) -> list[Interval]:
    """The versions ``specifiers`` admits (generously), as intervals."""
    admitted = list(_EVERYTHING)
    for spec in specifiers:
        admitted = _intersect(admitted, _clause(spec))
    return admitted


def can_both_hold(a: SpecifierSet, b: SpecifierSet) -> bool:
    """False only when no version can satisfy both ``a`` and ``b``."""
    return bool(_intersect(intervals(a), intervals(b)))


__all__ = ["Interval", "can_both_hold", "intervals"]
