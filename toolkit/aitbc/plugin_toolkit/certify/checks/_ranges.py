"""Every release a requirement admits, judged against the advisories.

Pinning the environment proves one version clean; ``urllib3>=1.0`` lets any host install
a release with known vulnerabilities.  The releases judged are the ones the advisories
name (their affected ``versions`` and range events) and the requirement's own bounds,
kept when the requirement and the SDK's requirement for the same package both admit
them.  The fix is the smallest of those releases above every vulnerable admitted one
that no advisory affects: ``raise the lower bound to >=X``.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..osv import OsvIndex
from ..osv_records import OsvRecord, is_affected


@dataclass(frozen=True)
class Admitted:
    """Vulnerable releases a requirement admits, the advisories, and the fixing bound."""

    lowest: Version
    highest: Version
    records: tuple[OsvRecord, ...]
    fix: Version | None  # None: no release it admits is known to be free of them

    def message(self, requirement: str) -> str:
        ids = ", ".join(r.id for r in self.records[:5])
        more = f" and {len(self.records) - 5} more" if len(self.records) > 5 else ""
        low, high = self.lowest, self.highest
        span = str(low) if low == high else f"{low} to {high}"
        advice = (
            f"raise the lower bound to >={self.fix}"
            if self.fix is not None
            else "no release it admits is known to be free of them"
        )
        return (f"{requirement!r} admits releases with known vulnerabilities ({span}: "
                f"{ids}{more}); {advice}")  # fmt: skip


def _versions(texts: object) -> set[Version]:
    found = set()
    for text in texts if isinstance(texts, (list, tuple, set, frozenset)) else []:
        try:
            found.add(Version(str(text)))
        except InvalidVersion:
            continue
    return found


def _releases(records: list[OsvRecord], name: str, *specs: SpecifierSet) -> set[Version]:
    known: set[Version] = set()
    for record in records:
        for affected in record.affected:
            if affected.package != name:
                continue
            known |= _versions(affected.versions)
            known |= {v for events in affected.ranges for _, v in events if v is not None}
    for spec in specs:
        known |= _versions([s.version for s in spec if not s.version.endswith(".*")])
    return known


def admitted(
    requirement: Requirement, name: str, index: OsvIndex, sdk: Requirement | None,
    already: frozenset[str] = frozenset(),
) -> Admitted | None:  # fmt: skip
    """What ``requirement`` admits that advisories affect (``already``: ids reported
    for the installed version, not repeated); None when nothing."""
    records = [r for r in index.query(name, None) if r.id not in already]
    if not records:
        return None
    theirs = sdk.specifier if sdk is not None else SpecifierSet()
    spec = requirement.specifier

    def allowed(version: Version) -> bool:
        return all(s.contains(version, prereleases=True) for s in (spec, theirs))

    releases = sorted(v for v in _releases(records, name, spec, theirs) if not v.is_prerelease)
    hits: dict[Version, list[OsvRecord]] = {}
    for version in releases:
        if allowed(version):
            affecting = [r for r in records if is_affected(r, name, str(version))]
            if affecting:
                hits[version] = affecting
    if not hits:
        return None
    highest = max(hits)
    fix = next(
        (v for v in releases if v > highest and allowed(v)
         and not any(is_affected(r, name, str(v)) for r in index.query(name, None))),
        None,
    )  # fmt: skip
    seen: dict[str, OsvRecord] = {}
    for version in sorted(hits):
        for record in hits[version]:
            seen.setdefault(record.id, record)
    return Admitted(min(hits), highest, tuple(seen.values()), fix)
