#!/usr/bin/env python3
"""Release the plugin template: add templates/plugin/ as a new tagged version to
templates/plugin.bundle (the git bundle the wheel ships, which holds every released
template version, so `aitbc-plugin update` can three-way merge from any of them).

    python3 .ci/release_template.py 1.1.0

A test fails while templates/plugin/ differs from the newest version in the bundle.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "toolkit"))

from aitbc.plugin_toolkit.scaffold.bundle import release  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    bundle = REPO / "templates" / "plugin.bundle"
    tag = release(REPO / "templates" / "plugin", bundle, argv[0])
    print(f"released template {tag} into {bundle.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
