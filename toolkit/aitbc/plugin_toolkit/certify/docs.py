"""What checks/README.md must say of each registered check, derived from the check
itself: a ``## <id>`` section that opens with its title and its explanation (the class
docstring) word for word.  Further detail may follow, by hand.  The test suite holds the
file to this, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .base import CheckInfo

_HEADING = re.compile(r"^## (\S.*?)\s*$", re.MULTILINE)


def section_lead(info: CheckInfo) -> str:
    """The opening of the check's section: heading, title, explanation."""
    return f"## {info.id}\n\n*{info.title}.*\n\n{info.explanation}\n"


@dataclass(frozen=True)
class DocsProblem:
    check_id: str
    message: str


def _words(text: str) -> str:
    return " ".join(text.split())


def sections(readme: str) -> dict[str, str]:
    """``## <id>`` heading -> the section's text (without the heading line)."""
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(readme))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(readme)
        found[match.group(1)] = readme[match.end() : end]
    return found


def docs_problems(readme: str, checks: Iterable[CheckInfo]) -> list[DocsProblem]:
    """Where ``readme`` and the registered checks disagree (empty: they agree)."""
    documented = sections(readme)
    problems = []
    known = []
    for info in checks:
        known.append(info.id)
        text = documented.get(info.id)
        if text is None:
            problems.append(DocsProblem(info.id, f"no '## {info.id}' section"))
            continue
        lead = section_lead(info).split("\n", 1)[1]
        if not _words(text).startswith(_words(lead)):
            problems.append(
                DocsProblem(
                    info.id,
                    f"the '## {info.id}' section does not open with the check's title and "
                    f"docstring; it should start:\n{section_lead(info)}",
                )
            )
    for heading in documented:
        if heading not in known:
            problems.append(DocsProblem(heading, f"'## {heading}' documents no registered check"))
    return problems


# The project's home, as the README's pre-commit example names it; SARIF rules link into
# checks/README.md there, at the tag of the toolkit that wrote the report.
REPOSITORY = "https://github.com/aitbc/aitbc-plugins"


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lowercased, punctuation other than
    ``-`` and ``_`` removed, each space a hyphen (duplicates aside, which the file has none of)."""
    kept = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def help_uri(check_id: str | None, version: str | None) -> str:
    """The check's section of checks/README.md at tag ``v<version>`` (``main`` unknown)."""
    ref = f"v{version}" if version else "main"
    page = f"{REPOSITORY}/blob/{ref}/checks/README.md"
    return f"{page}#{github_anchor(check_id)}" if check_id else page
