"""`aitbc-plugin new`: a plugin project from a template, built aside, moved into place."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..ci.release import workflow_release
from ..errors import ToolkitError, UntrustedTemplateError
from ..files import move_into_place, require_absent_or_empty, staging_dir_beside
from .git import git_executable, init_and_commit
from .names import check_plugin_name
from .sources import (
    BUILTIN_TEMPLATE_SOURCE,
    TemplateSource,
    check_cookiecutter_trust,
    cookiecutter_context,
    resolve_template,
    template_kinds,
)

ANSWERS_FILE = ".copier-answers.yml"

# Our answer names, and the names cookiecutter templates commonly use for the same.
_COOKIECUTTER_ALIASES = {
    "plugin_name": ("plugin_name", "project_name", "project_slug", "name"),
    "module_name": ("module_name", "package_name", "project_module"),
    "kind": ("kind", "plugin_kind"),
    "author": ("author", "full_name", "author_name"),
    "description": ("description", "project_short_description", "short_description"),
    "license": ("license", "open_source_license"),
    "version": ("version",),
}


@dataclass(frozen=True)
class NewRequest:
    name: str
    kind: str = "base"
    output_dir: Path | None = None
    answers: dict[str, str] = field(default_factory=dict)  # author, description, ...
    template: str | None = None
    trust: bool = False
    interactive: bool = False
    git: bool = True


@dataclass(frozen=True)
class NewResult:
    path: Path
    template: TemplateSource
    files: list[str]
    git_initialized: bool


def create_project(request: NewRequest) -> NewResult:
    """Validate, render into a staging directory, then move into place (or change nothing)."""
    module = check_plugin_name(request.name)
    kinds = template_kinds()
    if request.kind not in kinds:
        raise ToolkitError(f"unknown kind {request.kind!r}; choose one of {', '.join(kinds)}")
    destination = (request.output_dir or Path.cwd() / request.name).absolute()
    require_absent_or_empty(destination)
    source = resolve_template(request.template)
    if source.kind == "builtin":
        git_executable()  # the built-in template is a git bundle
    data = {"plugin_name": request.name, "module_name": module, "kind": request.kind}
    data.update({k: v for k, v in request.answers.items() if v is not None})
    with staging_dir_beside(destination) as staging:
        if source.kind == "cookiecutter":
            built = _render_cookiecutter(source, staging, data, request)
        else:
            built = staging / "project"
            _render_copier(source, built, {**data, **release_context()}, request)
        files = sorted(
            str(p.relative_to(built))
            for p in built.rglob("*")
            if p.is_file() and ".git" not in p.parts
        )
        if request.git:
            init_and_commit(built, f"Generate {request.name} with aitbc-plugin new")
        move_into_place(built, destination)
    return NewResult(destination, source, files, request.git)


def release_context() -> dict[str, Any]:
    """What the built-in template's toolkit_ref and toolkit_commit default to: the release
    of the reusable workflows this toolkit records.  Not a question, so never recorded."""
    release = workflow_release()
    return {"aitbc_release": {"tag": release.tag, "commit": release.commit}}


def _render_copier(
    source: TemplateSource, target: Path, data: dict[str, Any], request: NewRequest
) -> None:
    import copier
    from copier.errors import CopierError, UnsafeTemplateError

    if source.kind == "copier" and not request.trust:
        _refuse_code_running_copier_template(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. DirtyLocalWarning; our output says enough
            copier.run_copy(
                source.location,
                target,
                data=data,
                defaults=not request.interactive,
                unsafe=request.trust,
                quiet=True,
            )
    except UnsafeTemplateError as exc:
        raise UntrustedTemplateError(
            f"template {source.location} runs its own code ({_one_line(exc)}); "
            "pass --trust if you trust it"
        ) from None
    except CopierError as exc:
        raise ToolkitError(f"template {source.location}: {_one_line(exc)}") from None
    except ValueError as exc:  # copier reports a failed question validator this way
        if "Validation error for question" not in str(exc):
            raise
        raise ToolkitError(
            _one_line(exc).replace("Validation error for question", "invalid")
        ) from None
    if source.kind == "builtin":
        _record_builtin_source(target / ANSWERS_FILE)


def _refuse_code_running_copier_template(source: TemplateSource) -> None:
    """Copier checks tasks and extensions before a copy, but not migrations, which a later
    `update` would run: refuse all three up front."""
    from copier._template import Template
    from copier.errors import CopierError

    template = Template(url=source.location)
    try:
        config = template.config_data
    except CopierError as exc:
        raise ToolkitError(f"template {source.location}: {_one_line(exc)}") from None
    finally:
        template._cleanup()
    found = [key for key in ("tasks", "migrations", "jinja_extensions") if config.get(key)]
    if found:
        raise UntrustedTemplateError(
            f"template {source.location} runs its own code ({', '.join(found)}); "
            "pass --trust if you trust it"
        )


def _record_builtin_source(answers_file: Path) -> None:
    """Name the built-in template instead of this installation's path to its bundle."""
    text = answers_file.read_text(encoding="utf-8")
    answers = yaml.safe_load(text)
    lines = [
        f"_src_path: {BUILTIN_TEMPLATE_SOURCE}" if line.startswith("_src_path:") else line
        for line in text.splitlines()
    ]
    answers_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if yaml.safe_load(answers_file.read_text(encoding="utf-8"))["_commit"] != answers["_commit"]:
        raise AssertionError("rewriting the answers file changed more than _src_path")


def _render_cookiecutter(
    source: TemplateSource, staging: Path, data: dict[str, Any], request: NewRequest
) -> Path:
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    template = Path(source.location)
    check_cookiecutter_trust(template, request.trust)
    variables = cookiecutter_context(template)
    extra = {
        alias: data[ours]
        for ours, aliases in _COOKIECUTTER_ALIASES.items()
        if ours in data
        for alias in aliases
        if alias in variables
    }
    output = staging / "out"
    try:
        with _cookiecutter_log_silenced():
            cookiecutter(
                str(template),
                no_input=not request.interactive,
                extra_context=extra,
                output_dir=str(output),
                accept_hooks=request.trust,
            )
    except CookiecutterException as exc:
        raise ToolkitError(f"template {template}: {_one_line(exc)}") from None
    made = [p for p in output.iterdir()] if output.is_dir() else []
    if len(made) != 1 or not made[0].is_dir():
        raise ToolkitError(f"template {template} did not produce exactly one project directory")
    return made[0]


@contextlib.contextmanager
def _cookiecutter_log_silenced() -> Iterator[None]:
    """Cookiecutter logs a failed hook with its traceback (logging's last-resort handler
    prints it); the exception it raises after is what we report, as one line."""
    log = logging.getLogger("cookiecutter")
    quiet = logging.NullHandler()
    propagate = log.propagate
    log.addHandler(quiet)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(quiet)
        log.propagate = propagate


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
