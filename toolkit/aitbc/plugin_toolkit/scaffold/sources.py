"""Which kind of template a --template argument names, and whether it runs code."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..data import data_dir
from ..errors import ToolkitError, UntrustedTemplateError

#: What `new` records as the template source in .copier-answers.yml: a name, not a
#: path, so the project stays updatable when the toolkit is reinstalled elsewhere.
BUILTIN_TEMPLATE_SOURCE = "aitbc-plugin:builtin"
BUNDLE_NAME = "plugin.bundle"

TemplateKind = Literal["builtin", "copier", "cookiecutter"]
_REMOTE = re.compile(r"^(\w+://|git@|gh:|gl:)|\.git$")
_COOKIECUTTER_HOOKS = ("pre_prompt", "pre_gen_project", "post_gen_project")


@dataclass(frozen=True)
class TemplateSource:
    kind: TemplateKind
    location: str


def template_kinds() -> tuple[str, ...]:
    """The plugin kinds the built-in template renders: one folder each under
    includes/kinds/ (base first).  Listed, not imported: `--help` stays fast."""
    kinds_dir = data_dir("templates") / "plugin" / "includes" / "kinds"
    found = sorted(p.name for p in kinds_dir.iterdir() if p.is_dir())
    return tuple(sorted(found, key=lambda name: name != "base"))


def builtin_bundle() -> Path:
    """The git bundle holding every released version of the plugin template."""
    return data_dir("templates") / BUNDLE_NAME


def resolve_template(spec: str | None) -> TemplateSource:
    """The built-in template (None), a local copier or cookiecutter template, a git bundle,
    or a git URL (taken to be a copier template)."""
    if spec is None:
        bundle = builtin_bundle()
        if not bundle.is_file():
            raise ToolkitError(f"the built-in template bundle is missing ({bundle})")
        return TemplateSource("builtin", str(bundle))
    if _REMOTE.search(spec):
        return TemplateSource("copier", spec)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".bundle":
        return TemplateSource("copier", str(path.resolve()))
    if not path.is_dir():
        raise ToolkitError(f"template {spec!r}: no such directory, bundle or git URL")
    if (path / "cookiecutter.json").is_file():
        return TemplateSource("cookiecutter", str(path.resolve()))
    if (path / "copier.yml").is_file() or (path / "copier.yaml").is_file():
        return TemplateSource("copier", str(path.resolve()))
    raise ToolkitError(
        f"template {spec!r} is neither a copier template (copier.yml) "
        "nor a cookiecutter template (cookiecutter.json)"
    )


def cookiecutter_context(template: Path) -> dict[str, Any]:
    try:
        context = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolkitError(
            f"{template / 'cookiecutter.json'} is not readable JSON: {exc}"
        ) from None
    if not isinstance(context, dict):
        raise ToolkitError(f"{template / 'cookiecutter.json'} must hold a JSON object")
    return context


def check_cookiecutter_trust(template: Path, trusted: bool) -> None:
    """Cookiecutter runs hooks and local extensions by default; we only do with --trust."""
    if trusted:
        return
    hooks_dir = template / "hooks"
    hooks = sorted(
        p.name
        for p in (hooks_dir.iterdir() if hooks_dir.is_dir() else [])
        if p.is_file() and p.stem in _COOKIECUTTER_HOOKS
    )
    extensions = cookiecutter_context(template).get("_extensions")
    what = [f"hooks ({', '.join(hooks)})"] if hooks else []
    if extensions:
        what.append(f"Jinja extensions ({', '.join(map(str, extensions))})")
    if what:
        raise UntrustedTemplateError(
            f"template {template} runs its own code: {' and '.join(what)}; "
            "pass --trust if you trust it"
        )
