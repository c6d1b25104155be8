"""What the plugin environment's Python would say about itself, read from its files.

Starting that Python runs the ``.pth`` files of every installed package (``-I`` does
not stop it), that is code of the plugin's dependencies with the certifier's rights.
The checks that only need to know where its packages are and which Python it is (the
``interface`` check's mypy, the ``audit`` check's inventory) read that here instead,
running nothing of the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from packaging.markers import default_environment

_RUNS_CODE = ("import ", "import\t")  # a .pth line site.py executes instead of adding


def search_dirs(site_packages: Path) -> list[Path]:
    """The environment's import path beyond the standard library: site-packages, then
    the folders its ``.pth`` files add, as site.addsitedir() orders them.  Lines that
    run code are skipped (what they would add to sys.path is not known without
    running them; setuptools' editable finders, which do so, mypy ignores anyway)."""
    site = _absolute(site_packages)
    found = [site]
    try:
        names = sorted(p.name for p in site.iterdir() if p.suffix == ".pth")
    except OSError:
        return found
    for name in names:
        if name.startswith("."):  # site.py skips hidden .pth files
            continue
        try:
            lines = (site / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("#") or not line.strip() or line.startswith(_RUNS_CODE):
                continue
            folder = _absolute(site / line.rstrip())
            if folder not in found and folder.exists():
                found.append(folder)
    return found


def _absolute(path: Path) -> Path:
    # As site.py and mypy's pyinfo.py spell paths: absolute and normalised, links kept.
    return Path(os.path.abspath(path))  # noqa: PTH100


def marker_environment(python: Path) -> dict[str, str]:
    """The values PEP 508 markers are evaluated against in the environment of
    ``python``.  environment.py makes it with this toolkit's interpreter, so they are
    this process's; should its ``pyvenv.cfg`` name another Python version, that wins."""
    values = {key: str(value) for key, value in default_environment().items()}
    try:
        lines = (python.parent.parent / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return values
    config = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines)}
    version = config.get("version_info") or config.get("version")  # uv's, venv's
    if version and version.count(".") == 2 and version != values["python_full_version"]:
        values["python_full_version"] = version
        values["python_version"] = ".".join(version.split(".")[:2])
        if values["implementation_name"] == "cpython":
            values["implementation_version"] = version
    return values
