#!/usr/bin/env python3
"""Release the reusable workflows: tag a commit v<version> (the package version in
toolkit/aitbc/plugins/_version.py) and record the tag and that commit's full SHA in
toolkit/aitbc/plugin_toolkit/ci/release.json, the one place `aitbc-plugin new` and the
README's snippets take their pin from; the README's pins are rewritten to match.

    python3 .ci/release.py                      # tag HEAD (a clean tree) and record it
    python3 .ci/release.py --commit REV --no-tag  # record REV, tagged elsewhere

A commit cannot hold its own SHA: commit the record and the README after the tagged
commit (`git commit -am "Record release vX.Y.Z"`), then push both and the tag.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "toolkit"))

from aitbc.plugin_toolkit.ci.release import (  # noqa: E402
    RECORD,
    WORKFLOW_REPOSITORY,
    WorkflowRelease,
    write_workflow_release,
)
from aitbc.plugins._version import __version__  # noqa: E402

README = REPO / "README.md"
#: The workflows a release pins; each must exist at the released commit.
WORKFLOWS = (".github/workflows/certify.yml", ".github/workflows/certify-matrix.yml")
#: uses: aitbc/aitbc-plugins/.github/workflows/<file>@<sha> # <tag>
USES_PIN = re.compile(
    rf"({re.escape(WORKFLOW_REPOSITORY)}/\.github/workflows/[\w.-]+\.ya?ml@)"
    r"[0-9a-f]{40} # v\d+\.\d+\.\d+"
)
#: the pre-commit hook, as `pre-commit autoupdate --freeze` writes it: rev: <sha>  # frozen: <tag>
REV_PIN = re.compile(r"(rev: )[0-9a-f]{40}  # frozen: v\d+\.\d+\.\d+")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def pin_readme(text: str, release: WorkflowRelease) -> str:
    text = USES_PIN.sub(rf"\g<1>{release.commit} # {release.tag}", text)
    return REV_PIN.sub(rf"\g<1>{release.commit}  # frozen: {release.tag}", text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD", help="the commit to release (HEAD)")
    parser.add_argument("--no-tag", action="store_true", help="record only; tag elsewhere")
    args = parser.parse_args(argv)
    tag = f"v{__version__}"
    if args.commit == "HEAD" and git("status", "--porcelain", "--untracked-files=no"):
        print("the work tree has uncommitted changes: commit what you release", file=sys.stderr)
        return 1
    commit = git("rev-parse", "--verify", f"{args.commit}^{{commit}}")
    for workflow in WORKFLOWS:
        if subprocess.run(["git", "cat-file", "-e", f"{commit}:{workflow}"], cwd=REPO,
                          capture_output=True).returncode:  # fmt: skip
            print(f"{commit} has no {workflow}", file=sys.stderr)
            return 1
    existing = subprocess.run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{}}"],
                              cwd=REPO, capture_output=True, text=True).stdout.strip()  # fmt: skip
    if existing and existing != commit:
        print(f"tag {tag} already names {existing}, not {commit}", file=sys.stderr)
        return 1
    release = WorkflowRelease(tag=tag, commit=commit)
    if not args.no_tag and not existing:
        git("tag", tag, commit)
    write_workflow_release(release)
    README.write_text(pin_readme(README.read_text(encoding="utf-8"), release), encoding="utf-8")
    print(
        f"recorded {tag} = {commit} in {RECORD.relative_to(REPO)} and README.md;"
        f" commit them{'' if args.no_tag else f', then push the commit and {tag}'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
