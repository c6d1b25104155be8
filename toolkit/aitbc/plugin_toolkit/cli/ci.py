"""``aitbc-plugin ci``: the glue the reusable GitHub Actions workflows call (see the
README).  Part of the command line: it prints, and it picks exit codes as cli.py does."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ToolkitError
from ..files import write_atomic


@click.group()
def ci() -> None:
    """Glue for the reusable GitHub Actions workflows (see the README)."""


@ci.command("annotations")
@click.argument("report", type=click.Path(path_type=Path))
@click.option("--plugin-path", default=".", show_default=True,
              help="The plugin's folder in the repository (prefixes findings' files).")  # fmt: skip
@click.option("--artifact", help="The artifact REPORT is uploaded in (named when capped).")
def ci_annotations(report: Path, plugin_path: str, artifact: str | None) -> None:
    """Print REPORT's findings (certify --format json) as ::error/::warning commands,
    most severe first, as many as GitHub shows in a step."""
    from ..ci.github import annotation_lines, load_report

    where = f"{report.name} in the artifact {artifact}" if artifact else str(report)
    for line in annotation_lines(load_report(report), plugin_path, where):
        click.echo(line)


@ci.command("sarif")
@click.argument("sarif", type=click.Path(path_type=Path))
@click.option("--plugin-path", default=".", show_default=True,
              help="The plugin's folder in the repository.")  # fmt: skip
def ci_sarif(sarif: Path, plugin_path: str) -> None:
    """Rewrite SARIF's paths (relative to the plugin) to be relative to the repository,
    and check it against code scanning's upload limits: over them, a warning says which
    and SARIF.over-limits (which certify.yml's upload job skips on) says so too."""
    from ..ci.github import over_limits_marker, prepare_sarif_file, workflow_command

    problems = prepare_sarif_file(sarif, plugin_path)
    if problems:
        message = (f"{sarif.name} is over code scanning's upload limits, so it is not "
                   f"uploaded: {'; '.join(problems)}. It is in the reports artifact; "
                   f"{over_limits_marker(sarif).name} says why.")  # fmt: skip
        click.echo(workflow_command("warning", message, {"title": "SARIF too large"}))


_GITHUB_OUTPUT = click.option(
    "--github-output", type=click.Path(path_type=Path), envvar="GITHUB_OUTPUT",
    help="Append step outputs to this file (default: $GITHUB_OUTPUT; else print them).",
)  # fmt: skip


@ci.command("outputs")
@click.argument("report", type=click.Path(path_type=Path))
@_GITHUB_OUTPUT
def ci_outputs(report: Path, github_output: Path | None) -> None:
    """Write certified, plugin-name, plugin-version and registry-entry for REPORT."""
    from ..ci.github import load_report, step_outputs

    _write_outputs(step_outputs(load_report(report)), github_output)


@ci.command("matrix")
@click.option("--registry", type=click.Path(path_type=Path), help="Certify every entry of this.")
@click.option("--paths", "paths_text", help="Or these plugin paths, one a line.")
@click.option("--ref-template", default="v{version}", show_default=True,
              help="The git ref of a registry entry's release.")  # fmt: skip
@click.option("--max-jobs", type=click.IntRange(1, 256), default=256, show_default=True,
              help="Matrix jobs at most; plugins share jobs beyond that.")  # fmt: skip
@_GITHUB_OUTPUT
def ci_matrix(registry: Path | None, paths_text: str | None, ref_template: str, max_jobs: int,
              github_output: Path | None) -> None:  # fmt: skip
    """Plan a certification matrix: outputs matrix (JSON) and count."""
    from ..ci.github import compact_json, within_step_limits, workflow_command
    from ..ci.matrix import matrix, plan_from_paths, plan_from_registry

    if (registry is None) == (paths_text is None):
        raise click.UsageError("give exactly one of --registry and --paths")
    plan = (plan_from_registry(registry, ref_template) if registry is not None
            else plan_from_paths(paths_text or ""))  # fmt: skip
    for reason in plan.skipped:  # every one in the log; as annotations, what a step shows
        click.echo(f"not recertified: {reason}", err=True)
    found = [("warning", workflow_command("warning", reason, {"title": "not recertified"}))
             for reason in plan.skipped]  # fmt: skip
    for line in within_step_limits(found, "skipped plugin", "this step's log", "not recertified"):
        click.echo(line)
    rows = matrix(plan, max_jobs)
    click.echo(f"planned {len(plan.items)} plugin(s) in {len(rows['include'])} job(s)", err=True)
    _write_outputs({"matrix": compact_json(rows), "count": str(len(plan.items))}, github_output)


@ci.command("run-chunk")
@click.option("--items", "items_text", required=True, help="A matrix row's items (JSON).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Results go to OUT/<id>/.")  # fmt: skip
@click.option("--work-dir", type=click.Path(path_type=Path), help="Where sources are cloned.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path))
@click.option("--vuln-db", type=click.Path(path_type=Path))
@click.option("--allow-incomplete-audit", is_flag=True)
@click.option("--require-isolation", type=click.Choice(["partial", "full"]))
def ci_run_chunk(items_text: str, out_dir: Path, work_dir: Path | None,
                 policy_file: Path | None, vuln_db: Path | None,
                 allow_incomplete_audit: bool, require_isolation: str | None) -> None:  # fmt: skip
    """Certify one matrix chunk's plugins, one after another (exit 1 if any is not)."""
    import tempfile

    from ..ci.matrix import parse_items, run_chunk

    items = parse_items(items_text)
    args: list[str] = []
    args += ["--policy", str(policy_file.resolve())] if policy_file else []
    args += ["--vuln-db", str(vuln_db.resolve())] if vuln_db else []
    args += ["--allow-incomplete-audit"] if allow_incomplete_audit else []
    args += ["--require-isolation", require_isolation] if require_isolation else []
    with tempfile.TemporaryDirectory(prefix="aitbc-chunk-", dir=work_dir) as scratch:
        outcomes = run_chunk(items, out_dir, Path(scratch), tuple(args))
    for outcome in outcomes:
        verdict = "certified" if outcome.certified else "NOT CERTIFIED"
        click.echo(
            f"{verdict:<14} {outcome.item.id}{': ' + outcome.error if outcome.error else ''}"
        )
    if not all(outcome.certified for outcome in outcomes):
        raise click.exceptions.Exit(1)


@ci.command("merge")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--registry", type=click.Path(path_type=Path), help="The registry to update.")
@click.option("--keep-failed", is_flag=True, help="Keep releases that failed in the registry.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Writes report.json, registry.json and summary.md here.")  # fmt: skip
@click.option("--step-summary", type=click.Path(path_type=Path), envvar="GITHUB_STEP_SUMMARY",
              help="Append summary.md here (default: $GITHUB_STEP_SUMMARY).")  # fmt: skip
@_GITHUB_OUTPUT
def ci_merge(results: tuple[Path, ...], registry: Path | None, keep_failed: bool, out_dir: Path,
             step_summary: Path | None, github_output: Path | None) -> None:  # fmt: skip
    """Merge certification results (RESULTS dirs) into one report and an updated registry."""
    from ..ci.matrix import merge, merge_outputs

    merged = merge(list(results), registry, keep_failed)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "report.json", (json.dumps(merged.report, indent=2) + "\n").encode())
    write_atomic(out_dir / "registry.json", (json.dumps(merged.registry, indent=2) + "\n").encode())
    write_atomic(out_dir / "summary.md", merged.markdown.encode())
    if step_summary is not None:
        _append(step_summary, merged.markdown)
    _write_outputs(merge_outputs(merged), github_output)
    report = merged.report
    click.echo(f"certified {report['certified_count']} of {report['total']} plugin release(s); "
               f"registry: {report['registry']['entries']} entries")  # fmt: skip
    if not merged.certified:
        raise click.exceptions.Exit(1)


def _write_outputs(values: dict[str, str], github_output: Path | None) -> None:
    from ..ci.github import append_outputs, format_outputs

    if github_output is None:
        click.echo(format_outputs(values), nl=False)
    else:
        append_outputs(github_output, values)


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as exc:
        raise ToolkitError(f"{path}: cannot append: {exc.strerror}") from None
