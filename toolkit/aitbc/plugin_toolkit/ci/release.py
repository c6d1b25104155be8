"""The released reusable workflows: the release tag and the commit it names.

One record, ``release.json`` beside this module, holds both; ``.ci/release.py`` writes
it when it tags a release.  A commit cannot hold its own SHA, so the record names an
earlier commit of this repository (the tagged one) and is committed after it.
`aitbc-plugin new` pins a generated plugin's ``certify.yml`` to that commit, with the tag
as the comment, and the README's snippets say the same (a test holds them together).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolkitError
from ..files import write_atomic

RECORD = Path(__file__).with_name("release.json")
#: The repository whose .github/workflows/ plugin repositories call.
WORKFLOW_REPOSITORY = "aitbc/aitbc-plugins"
TAG = re.compile(r"v\d+\.\d+\.\d+")
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class WorkflowRelease:
    tag: str  # v1.2.3
    commit: str  # the full SHA of the commit the tag names

    def __post_init__(self) -> None:
        if not TAG.fullmatch(self.tag):
            raise ToolkitError(f"release tag {self.tag!r} is not of the form v1.2.3")
        if not COMMIT.fullmatch(self.commit):
            raise ToolkitError(f"release commit {self.commit!r} is not a full 40-hex SHA")

    def uses(self, workflow: str) -> str:
        """A `uses:` value and its comment: the workflow pinned to the commit, the tag said."""
        return f"{WORKFLOW_REPOSITORY}/.github/workflows/{workflow}@{self.commit} # {self.tag}"


def workflow_release(path: Path = RECORD) -> WorkflowRelease:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return WorkflowRelease(tag=data["tag"], commit=data["commit"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolkitError(f"the workflow release record {path} is unreadable: {exc}") from None


def write_workflow_release(release: WorkflowRelease, path: Path = RECORD) -> None:
    text = json.dumps({"tag": release.tag, "commit": release.commit}, indent=2) + "\n"
    write_atomic(path, text.encode("utf-8"))
