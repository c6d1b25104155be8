"""The ``aitbc-plugin`` command line.  The only place that prints and picks exit codes:
0 success (certified; for ``certify --only``, the named checks passed), 1 a negative
verdict (not certified, update conflicts, update available),
2 bad usage or input, as one line and never a traceback (``--debug`` keeps tracebacks
of unexpected errors)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from aitbc.plugins import __version__
from click.core import ParameterSource

from ..certify.base import VULN_DB_VARIABLE
from ..certify.writers import FORMATS
from ..errors import ToolkitError
from ..files import write_atomic
from ..scaffold.sources import template_kinds
from .ci import ci

if TYPE_CHECKING:
    from .progress import LiveProgress


class Failure(Exception):
    """Ends a command with ``exit_code`` after printing its message as one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which a container or
    ``taskset`` narrows), not those the machine has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aitbc-plugin")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Create, update and certify AITBC plugins."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(template_kinds()),
    default=None,
    help="The plugin interface to implement (default: base).",
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where to create the project (default: ./NAME).",
)
@click.option("--author", help="Author name.")
@click.option("--description", help="One-line description.")
@click.option("--license", "license_", help="SPDX license expression (default: MIT).")
@click.option("--version", "version_", help="Plugin version (default: 0.1.0).")
@click.option("--defaults", is_flag=True, help="Never prompt; take defaults for what is not given.")
@click.option("--template", help="Another copier or cookiecutter template (path or git URL).")
@click.option("--trust", is_flag=True, help="Allow the template to run its own code.")
@click.option("--no-git", is_flag=True, help="Do not make the project a git repository.")
def new(name: str, kind: str | None, output_dir: Path | None, author: str | None,
        description: str | None, license_: str | None, version_: str | None,
        defaults: bool, template: str | None, trust: bool, no_git: bool) -> None:  # fmt: skip
    """Create a plugin project NAME from a template."""
    from ..scaffold.new import NewRequest, create_project

    answers = {"author": author, "description": description, "license": license_,
               "version": version_}  # fmt: skip
    request = NewRequest(
        name=name,
        kind=kind or "base",
        output_dir=output_dir,
        answers={k: v for k, v in answers.items() if v is not None},
        template=template,
        trust=trust,
        interactive=not defaults and sys.stdin.isatty() and sys.stdout.isatty(),
        git=not no_git,
    )
    result = create_project(request)
    where = _display_path(result.path)
    git_note = ", git repository with an initial commit" if result.git_initialized else ""
    if result.template.kind != "builtin":  # its kinds, layout and tests are its own
        click.echo(f"Created {name} from {result.template.location} in {where}: "
                   f"{len(result.files)} files{git_note}")  # fmt: skip
        return
    click.echo(f"Created {name} ({request.kind}) in {where}: {len(result.files)} files{git_note}")
    click.echo(f"Next: cd {shlex.quote(where)} && {_self_command()} test")


class _PytestArgs(click.Command):
    """Everything after ``--`` goes to pytest untouched (click would parse it)."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- PYTEST-ARGS...]"]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            args, ctx.meta["pytest_args"] = args[:at], args[at + 1 :]
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            stray = isinstance(exc, click.NoSuchOption) or "unexpected extra" in exc.message
            if not stray:
                raise
            raise click.UsageError(
                f"{exc.format_message()}; pytest's arguments go after --, as in "
                "aitbc-plugin test -- -k name"
            ) from None


@cli.command(cls=_PytestArgs)
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.pass_context
def test(ctx: click.Context, path: Path) -> None:
    """Run the plugin project's tests at PATH as certification does; pytest's exit status.

    The project is built and its wheel installed with pytest into the isolated plugin
    environment certification uses (the SDK comes from this toolkit, not a package
    index); tests/ runs there against the installed plugin.  Arguments after -- go to
    pytest: aitbc-plugin test -- -k lifecycle"""
    from ..certify.testrun import check_project, run_plugin_tests

    check_project(path)
    click.echo(f"Building {path.resolve().name} and installing it with pytest in "
               "the plugin environment (the first run takes longer) ...", err=True)  # fmt: skip
    run = run_plugin_tests(path, ctx.meta.get("pytest_args", []))  # pytest's output is live
    if run.returncode is None:
        raise Failure(f"pytest took longer than {run.timeout_s:g}s ([limits] tool_timeout_s) "
                      "and was stopped", 1)  # fmt: skip
    raise click.exceptions.Exit(run.returncode)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option("--check", is_flag=True, help="Only say whether an update exists (exit 1 if so).")
@click.option("--pretend", is_flag=True, help="Classify every file; change nothing.")
@click.option("--trust", is_flag=True, help="Allow the template to run its own code.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per file for a person; json: the versions and each file's state.",
)
def update(path: Path, check: bool, pretend: bool, trust: bool, output_format: str) -> None:
    """Bring the plugin project at PATH up to the current template version."""
    from ..scaffold.update import check_for_update, update_project

    if not path.is_dir():
        raise ToolkitError(f"{path}: no such project directory")
    result = check_for_update(path) if check else update_project(path, pretend=pretend, trust=trust)
    if output_format == "json":
        _emit_json(result.as_dict())
    elif result.up_to_date:
        click.echo(f"{_display_path(result.project)} is up to date (template {result.to_version})")
    elif check:
        click.echo(f"update available: template {result.from_version} -> {result.to_version}")
    else:
        verb = "would update" if pretend else "updated"
        click.echo(f"{verb} template {result.from_version} -> {result.to_version}")
        for change in result.changes:
            click.echo(f"  {change.state:<22} {change.path}")
    if check and not result.up_to_date:
        raise click.exceptions.Exit(1)
    if result.conflicts:
        if output_format == "json":
            raise click.exceptions.Exit(1)
        conflicted = ", ".join(result.conflicts)
        if pretend:
            raise Failure(f"the update would conflict in {conflicted}; nothing was written", 1)
        raise Failure(f"conflicts in {conflicted}; resolve the markers, then commit", 1)
    if result.applied and output_format == "text" and not result.up_to_date:
        click.echo("Review the changes (git diff), then commit them.")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(FORMATS),
    help="Report format; repeatable (default: text).",
)
@click.option("--output", type=click.Path(path_type=Path), help="Write the (one) report here.")
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Write every requested format here, as certification.<ext>.",
)
@click.option(
    "--dist-dir",
    type=click.Path(path_type=Path),
    help="Keep the wheel and sdist here, with a SHA256SUMS file.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    help="A policy TOML file; its settings override the toolkit's built-in policy.",
)
@click.option(
    "--vuln-db",
    type=click.Path(path_type=Path),
    envvar=VULN_DB_VARIABLE,
    show_envvar=True,
    help="Audit offline against this directory of OSV records.",
)
@click.option(
    "--allow-incomplete-audit",
    is_flag=True,
    help="Certify even when some dependencies could not be audited.",
)
@click.option(
    "--require-isolation",
    type=click.Choice(["partial", "full"]),
    help="Certify only if plugin code ran this contained (default: the policy's "
    "[isolation] require); full = in the kernel jail and watched from outside.",
)
@click.option("--no-cache", is_flag=True, help="Run every check; ignore cached results.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 32),
    default=lambda: min(32, available_cpus()),
    show_default=f"the number of CPUs available, {min(32, available_cpus())} here",
    help="Checks run at once.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="CHECK",
    help="Run only this check (repeatable); the verdict covers only those.",
)
@click.pass_context
def certify(ctx: click.Context, path: Path, formats: tuple[str, ...], output: Path | None,
            report_dir: Path | None,
            dist_dir: Path | None, policy_file: Path | None, vuln_db: Path | None,
            allow_incomplete_audit: bool, require_isolation: str | None, no_cache: bool,
            jobs: int, only: tuple[str, ...]) -> None:  # fmt: skip
    """Decide whether the plugin project at PATH may enter the registry (exit 0) or not (1).

    With --only, exit 0 when the named checks pass (pre-commit's hook needs that), but the
    report says PASSED (only: ...), never CERTIFIED: a partial run certifies nothing."""
    from ..certify.runner import CertifyOptions
    from ..certify.runner import certify as run_certification
    from ..certify.writers import REPORT_STEM, WRITERS

    from_environment = ctx.get_parameter_source("vuln_db") is ParameterSource.ENVIRONMENT
    if vuln_db is not None and from_environment and not vuln_db.is_dir():
        raise ToolkitError(f"{VULN_DB_VARIABLE}={vuln_db} (the default of --vuln-db): "
                           "no such directory")  # fmt: skip
    chosen = list(dict.fromkeys(formats or ("text",)))
    if output is not None and len(chosen) != 1:
        raise click.UsageError("--output takes exactly one --format; use --report-dir for several")
    if output is None and report_dir is None and len(chosen) > 1:
        raise click.UsageError("several formats need --report-dir (or one --format with --output)")
    options = CertifyOptions(
        project=path, policy_file=policy_file, vuln_db=vuln_db,
        allow_incomplete_audit=allow_incomplete_audit, use_cache=not no_cache,
        dist_dir=dist_dir, jobs=jobs, only=only, require_isolation=require_isolation,
    )  # fmt: skip
    progress = _progress_printer()
    with progress or contextlib.nullcontext():
        report = run_certification(options, progress=progress)
    rendered = {name: _render(WRITERS[name], report) for name in chosen}
    if output is not None:
        write_atomic(output, rendered[chosen[0]].encode())
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            write_atomic(
                report_dir / f"{REPORT_STEM}{WRITERS[name].suffix}", rendered[name].encode()
            )
    if output is not None or report_dir is not None or chosen[0] == "text":
        click.echo(_terminal_text(report, progress), nl=False)
    else:
        click.echo(rendered[chosen[0]], nl=False)
    if not report.passed:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--project", type=click.Path(path_type=Path), default=".", show_default=True,
              help="The plugin project.")  # fmt: skip
@click.option("--policy", "policy_file", type=click.Path(path_type=Path),
              help="A policy TOML file (default: the toolkit's own).")  # fmt: skip
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")  # fmt: skip
def check(files: tuple[Path, ...], project: Path, policy_file: Path | None,
          output_format: str) -> None:  # fmt: skip
    """The fast part of certification, on the source as it is: the interface (mypy) and
    security (bandit) checks, in about a second, building nothing and running no plugin
    code.  For the edit loop and pre-commit; it never certifies (certify does).

    FILES: scan only these with bandit (pre-commit passes the changed ones)."""
    from ..certify.quick import quick_check
    from ..certify.writers import WRITERS

    report = quick_check(project, list(files), policy_file)
    click.echo(_render(WRITERS[output_format], report), nl=False)
    if not report.passed:
        raise click.exceptions.Exit(1)


cli.add_command(ci)


def _render(writer: Any, report: Any) -> str:
    import io

    buffer = io.StringIO()
    writer.write(report, buffer)
    return buffer.getvalue()


def _progress_printer() -> LiveProgress | None:
    """Live progress on stderr when it is an interactive terminal and not CI's."""
    from .progress import live_progress

    return live_progress()


def _terminal_text(report: Any, progress: LiveProgress | None) -> str:
    """The text report for stdout: without its per-check table when the live lines have
    just shown every result on this same terminal (else the full report)."""
    import io

    from ..certify.writers.text import TextWriter
    from .progress import same_terminal

    compact = progress is not None and progress.showed_every_result(report) and same_terminal()
    buffer = io.StringIO()
    TextWriter().write(report, buffer, compact=compact)
    return buffer.getvalue()


def _self_command() -> str:
    """How to run this toolkit again: ``aitbc-plugin`` when that name on PATH is this
    installation, else the path of this installation's script (as after a plain
    ``.venv/bin/aitbc-plugin new``), else this Python with ``-m``."""
    script = Path(sys.executable).with_name("aitbc-plugin")
    found = shutil.which("aitbc-plugin")
    if script.is_file():
        if found is not None and Path(found).samefile(script):
            return "aitbc-plugin"
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m aitbc.plugin_toolkit"


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="aitbc-plugin", standalone_mode=False)
    except Failure as exc:
        click.echo(f"aitbc-plugin: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aitbc-plugin: interrupted; nothing was changed", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: one line, exit 2
        hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
        click.echo(f"aitbc-plugin: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except ToolkitError as exc:
        click.echo(f"aitbc-plugin: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("aitbc-plugin: interrupted; nothing was changed", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        else:
            click.echo(f"aitbc-plugin: unexpected error: {type(exc).__name__}: {exc} "
                       "(run with --debug for the traceback)", err=True)  # fmt: skip
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
