"""The GitHub Actions workflows: valid, zizmor-clean, and their run: steps work.

Every run: step reads its inputs through env:, so a test runs the step's exact script
with bash (as the runner does: bash --noprofile --norc -eo pipefail) and those env vars,
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY pointing at files, against generated plugins.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aitbc.plugin_toolkit.ci.release import workflow_release
from aitbc.plugins._version import __version__
from conftest import REPO, VULN_DB
from github_runner import parse_outputs

BIN = Path(sys.executable).parent
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
# The one job without permissions of its own (see certify.yml's code-scanning job).
INHERITS_CALLER_PERMISSIONS = ("certify.yml", "code-scanning")
PINNED = re.compile(r"uses:\s*[^@\s]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$")


def load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on:` as True
    return data


def step(workflow: str, job: str, name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load(WORKFLOWS / workflow)["jobs"][job]["steps"]
    for candidate in steps:
        if candidate.get("name") == name:
            return candidate
    raise AssertionError(f"{workflow}: job {job} has no step {name!r}")


def run_step(
    workflow: str, job: str, name: str, env: dict[str, str], cwd: Path, tmp: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run a step's script; returns the process, its outputs and the summary it wrote."""
    found = step(workflow, job, name)
    assert set(found.get("env", {})) == set(env), f"{name}: env is {sorted(found.get('env', {}))}"
    assert "${{" not in found["run"], f"{name}: expressions belong in env:, not in run:"
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "step.sh"
    script.write_text(found["run"], encoding="utf-8")
    output, summary = tmp / "output", tmp / "summary"
    output.write_text("")
    summary.write_text("")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    full_env.update(env, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))  # fmt: skip
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                            cwd=cwd, env=full_env, capture_output=True, text=True)  # fmt: skip
    return result, parse_outputs(output.read_text()), summary.read_text()


# -- the files ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def generated_workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The certify workflow of a plugin made by `aitbc-plugin new` (the released template)
    and by the working-tree template (what the next release will ship)."""
    where = tmp_path_factory.mktemp("generated-workflows")
    made = {}
    for label, extra in (
        ("released", []),
        ("working-tree", ["--template", str(REPO / "templates" / "plugin")]),
    ):
        subprocess.run(
            [
                str(BIN / "aitbc-plugin"),
                "new",
                f"wf-{label}",
                "--defaults",
                "--no-git",
                "-o",
                str(where / label),
                *extra,
            ],
            check=True,
            capture_output=True,
        )
        made[label] = where / label / ".github" / "workflows" / "certify.yml"
    return made


def all_workflows(generated: dict[str, Path]) -> list[Path]:
    return [*WORKFLOW_FILES, *generated.values()]


def test_the_workflows_exist() -> None:
    names = {p.name for p in WORKFLOW_FILES}
    assert {"certify.yml", "certify-matrix.yml", "ci.yml"} <= names
    for name in ("certify.yml", "certify-matrix.yml"):
        assert list(load(WORKFLOWS / name)["on"]) == ["workflow_call"]


@pytest.mark.parametrize("which", ["project", "released", "working-tree"])
def test_workflows_match_the_github_workflow_schema(
    which: str, generated_workflows: dict[str, Path]
) -> None:
    files = WORKFLOW_FILES if which == "project" else [generated_workflows[which]]
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                             "vendor.github-workflows", *map(str, files)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor_findings(files: list[Path], *extra: str) -> list[str]:
    """zizmor's findings on these files, offline, one line each (rule, severity, place)."""
    # --no-config: no zizmor.yml can silence a rule; only ignore comments at their lines.
    result = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-config", "--format", "json",
                             *extra, *map(str, files)], capture_output=True, text=True)  # fmt: skip
    try:
        findings: list[dict[str, Any]] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"zizmor gave no JSON: {result.stdout}{result.stderr}") from None
    lines = []
    for finding in findings:
        for where in finding["locations"]:
            path = next(iter(where["symbolic"]["key"].get("Local", {}).values()), "?")
            row = where["concrete"]["location"]["start_point"]["row"] + 1
            lines.append(f"{finding['ident']} ({finding['determinations']['severity']}) "
                         f"{path}:{row}: {finding['desc']}: {where['symbolic']['annotation']}: "
                         f"{where['concrete']['feature'].strip()[:120]}")  # fmt: skip
    return lines


def test_zizmor_pedantic_finds_nothing_in_our_workflows() -> None:
    """Every audit, pedantic ones included; a finding kept on purpose carries a
    `# zizmor: ignore[rule]` comment with its reason at the place it concerns."""
    findings = zizmor_findings(WORKFLOW_FILES, "--persona", "pedantic")
    assert findings == [], "\n".join(findings)


def test_zizmor_pedantic_on_the_readme_workflows(tmp_path: Path) -> None:
    """The README's workflows for plugin and registry repositories, as a user copies them.
    One pedantic finding is left on purpose: the plugin example's publish job has no
    concurrency group (cancelling superseded runs is the caller's choice, not ours)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    snippets = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "\njobs:" in b]
    assert len(snippets) == 2
    files = []
    for number, text in enumerate(snippets):
        files.append(tmp_path / f"readme-{number}.yml")
        files[-1].write_text(text, encoding="utf-8")
    checked = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                              "vendor.github-workflows", *map(str, files)],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    findings = zizmor_findings(files, "--persona", "pedantic")
    assert {f.split(" ", 1)[0] for f in findings} == {"concurrency-limits"}, "\n".join(findings)
    assert zizmor_findings(files) == []  # the regular persona: nothing at all


@pytest.mark.parametrize("which", ["released", "working-tree"])
def test_zizmor_pedantic_finds_nothing_in_the_generated_workflow(
    which: str, generated_workflows: dict[str, Path]
) -> None:
    findings = zizmor_findings([generated_workflows[which]], "--persona", "pedantic")
    assert findings == [], "\n".join(findings)
    assert "zizmor: ignore" not in generated_workflows[which].read_text(encoding="utf-8")


def test_third_party_actions_are_pinned_to_commits_and_jobs_have_permissions() -> None:
    for path in WORKFLOW_FILES:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            code = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
            assert "uses: ./" not in code, f"{path.name}: use $/ for this repository: {line}"
            if "uses:" in code and "uses: $/" not in code:
                assert PINNED.search(line), f"{path.name}: not pinned: {line.strip()}"
        for job_id, job in load(path)["jobs"].items():
            if (path.name, job_id) == INHERITS_CALLER_PERMISSIONS:
                continue
            assert "permissions" in job, f"{path.name}: job {job_id} has no permissions"


def test_only_the_sarif_upload_takes_the_callers_grant_and_it_runs_no_code() -> None:
    """A job that asks for security-events: write would stop every caller that does not
    grant it before any `if:` is read; the upload job takes the caller's grant instead,
    and so must run nothing but the two pinned actions and a message."""
    workflow, job_id = INHERITS_CALLER_PERMISSIONS
    data = load(WORKFLOWS / workflow)
    assert "permissions" not in data  # else the job would get that, not the caller's grant
    job = data["jobs"][job_id]
    assert "permissions" not in job
    actions = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert actions == ["actions/download-artifact", "github/codeql-action/upload-sarif"]
    upload = next(s for s in job["steps"] if s.get("id") == "upload")
    assert upload["continue-on-error"] is True  # a refused upload is a skip
    for found in job["steps"]:
        assert "env" not in found and "${{" not in found.get("run", "")


def _the_one_line_of(name: str, tmp_path: Path) -> str:
    """What the code-scanning job's step ``name`` prints: one line, exit 0."""
    result, _, _ = run_step("certify.yml", "code-scanning", name, {}, tmp_path, tmp_path / "step")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    return line


def test_a_refused_upload_says_why(tmp_path: Path) -> None:
    found = step("certify.yml", "code-scanning", "Say why nothing was uploaded")
    assert found["if"] == "steps.upload.outcome == 'failure'"
    line = _the_one_line_of("Say why nothing was uploaded", tmp_path)
    assert line.startswith("::warning title=SARIF not uploaded::")
    assert "security-events: write" in line and "upload-sarif: false" in line
    assert "within its size limits" in line  # a SARIF over them never reaches the upload


def test_a_sarif_over_the_limits_is_not_sent_and_says_so_not_blaming_permissions(
    tmp_path: Path,
) -> None:
    from aitbc.plugin_toolkit.ci.github import over_limits_marker

    marker = over_limits_marker(Path("certification.sarif")).name
    upload = step("certify.yml", "code-scanning", "Upload to code scanning")
    assert f"hashFiles('sarif/**/{marker}') == ''" in upload["if"]
    found = step("certify.yml", "code-scanning", "Say why the SARIF was not sent")
    assert found["if"] == f"hashFiles('sarif/**/{marker}') != ''"
    line = _the_one_line_of("Say why the SARIF was not sent", tmp_path)
    assert line.startswith("::warning title=SARIF not uploaded::the SARIF report is over")
    assert "size limits" in line and "permissions are not the cause" in line


def test_the_upload_category_is_the_one_name_of_the_analysis() -> None:
    """codeql-action ignores its category input when the SARIF has automationDetails.id;
    the writer sets none (tests/test_writers.py), so this input names the analysis, one
    per plugin folder."""
    upload = step("certify.yml", "code-scanning", "Upload to code scanning")
    assert upload["with"]["category"] == (
        "${{ inputs.sarif-category || format('aitbc-certify/{0}', inputs.plugin-path) }}"
    )
    inputs = load(WORKFLOWS / "certify.yml")["on"]["workflow_call"]["inputs"]
    assert inputs["sarif-category"] == {"description": inputs["sarif-category"]["description"],
                                        "type": "string", "default": ""}  # fmt: skip


def test_ci_certifies_every_kind_through_the_reusable_workflow() -> None:
    ci = load(WORKFLOWS / "ci.yml")
    assert ci["jobs"]["test"]["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12", "3.13"]
    certify = ci["jobs"]["certify"]
    assert certify["uses"] == "$/.github/workflows/certify.yml"  # this commit's certify.yml
    assert certify["strategy"]["matrix"]["kind"] == ["base", "cli", "blockchain", "ai"]
    inputs = load(WORKFLOWS / "certify.yml")["on"]["workflow_call"]["inputs"]
    assert set(certify["with"]) <= set(inputs)


def test_generated_workflow_calls_certify_at_the_recorded_commit(
    generated_workflows: dict[str, Path],
) -> None:
    inputs = load(WORKFLOWS / "certify.yml")["on"]["workflow_call"]["inputs"]
    release = workflow_release()
    for path in generated_workflows.values():
        job = load(path)["jobs"]["certify"]
        assert job["uses"] == f"aitbc/aitbc-plugins/.github/workflows/certify.yml@{release.commit}"
        assert f"    uses: {release.uses('certify.yml')}\n" in path.read_text(encoding="utf-8")
        assert set(job["with"]) <= set(inputs)


# -- the release record: one tag and the commit it names ------------------------------------
README_PIN = re.compile(r"(aitbc/aitbc-plugins/\.github/workflows/[\w.-]+)@(\S+)(.*)$|"
                        r"^\s*rev: (\S+)(.*)$", re.MULTILINE)  # fmt: skip


def git_here(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def test_the_release_record_names_a_tag_of_this_version_and_a_full_commit() -> None:
    release = workflow_release()
    assert release.tag == f"v{__version__}"  # .ci/release.py tags v<package version>
    assert re.fullmatch(r"[0-9a-f]{40}", release.commit)
    assert release.uses("certify.yml") == (
        f"aitbc/aitbc-plugins/.github/workflows/certify.yml@{release.commit} # {release.tag}"
    )


def test_the_readme_snippets_pin_the_recorded_commit_with_the_tag_as_comment() -> None:
    release = workflow_release()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = [m for m in README_PIN.finditer(readme)]
    workflows = {m[1].rsplit("/", 1)[1] for m in found if m[1]}
    assert workflows == {"certify.yml", "certify-matrix.yml"}
    assert len([m for m in found if m[4]]) == 1  # the pre-commit snippet
    for match in found:
        if match[1]:  # uses: aitbc/aitbc-plugins/.github/workflows/<file>@<ref> # <tag>
            assert (match[2], match[3]) == (release.commit, f" # {release.tag}"), match[0]
        else:  # the pre-commit hook, frozen as pre-commit autoupdate --freeze writes it
            assert (match[4], match[5]) == (release.commit, f"  # frozen: {release.tag}"), match[0]


def test_the_recorded_commit_is_in_this_repository_with_the_workflows() -> None:
    """Where this checkout has the history: a fresh clone has it (a shallow one may not,
    nor an sdist); the tag, where fetched, names the same commit."""
    release = workflow_release()
    if git_here("rev-parse", "--git-dir").returncode:
        pytest.skip("not a git checkout")
    if git_here("cat-file", "-e", f"{release.commit}^{{commit}}").returncode:
        if git_here("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
            pytest.skip(f"{release.commit} is beyond this shallow clone's history")
        raise AssertionError(f"{release.commit} is no commit of this repository")
    for workflow in ("certify.yml", "certify-matrix.yml"):
        shown = git_here("cat-file", "-e", f"{release.commit}:.github/workflows/{workflow}")
        assert shown.returncode == 0, f"{release.commit} has no .github/workflows/{workflow}"
    tagged = git_here("rev-parse", "-q", "--verify", f"refs/tags/{release.tag}^{{commit}}")
    if tagged.returncode == 0:
        assert tagged.stdout.strip() == release.commit, f"{release.tag} names another commit"


def test_the_release_script_tags_a_commit_and_records_it(tmp_path: Path) -> None:
    """.ci/release.py in a scratch repository made of this one's files: it tags the clean
    HEAD v<version>, writes the record and the README's pins, and will not move a tag."""
    import shutil

    repo = tmp_path / "repo"
    for part in (".ci", "toolkit", ".github"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "README.md", repo / "README.md")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the release"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    ours = REPO / "toolkit" / "aitbc" / "plugin_toolkit" / "ci" / "release.json"
    record_before = ours.read_text()

    def release(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(repo / ".ci" / "release.py"), *args],
                              cwd=tmp_path, capture_output=True, text=True)  # fmt: skip

    done = release()
    assert done.returncode == 0, done.stdout + done.stderr
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    head = head.strip()
    record = json.loads((repo / ours.relative_to(REPO)).read_text())
    assert record == {"tag": f"v{__version__}", "commit": head}
    tagged = subprocess.run([*git, "rev-parse", f"v{__version__}^{{commit}}"],
                            capture_output=True, text=True)  # fmt: skip
    assert tagged.stdout.strip() == head
    readme = (repo / "README.md").read_text(encoding="utf-8")
    pins = [m for m in README_PIN.finditer(readme)]
    assert len(pins) == 3 and all(head in (m[2], m[4]) for m in pins)
    assert ours.read_text() == record_before  # the scratch repository's record, not ours
    refused = release()  # the record and README are uncommitted now
    assert refused.returncode == 1 and "uncommitted" in refused.stderr
    subprocess.run([*git, "commit", "-qam", "Record the release"], check=True)
    moved = release()  # the same version again, at the record's commit
    assert moved.returncode == 1 and f"tag v{__version__} already names {head}" in moved.stderr


def test_pre_commit_manifest_is_valid_and_runs_the_fast_checks() -> None:
    manifest = REPO / ".pre-commit-hooks.yaml"
    result = subprocess.run([str(BIN / "pre-commit"), "validate-manifest", str(manifest)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (hook,) = yaml.safe_load(manifest.read_text())
    assert hook["language"] == "python"
    assert "aitbc-plugins[toolkit]" in hook["additional_dependencies"]
    assert hook["entry"] == "aitbc-plugin check"  # the source's fast checks (test_check_quick)
    assert hook["pass_filenames"] is True  # bandit reads the changed files only


@pytest.mark.parametrize("workflow", [p.name for p in WORKFLOW_FILES])
def test_every_run_step_is_valid_bash(workflow: str) -> None:
    for job in load(WORKFLOWS / workflow)["jobs"].values():
        for found in job.get("steps", []):
            if "run" in found:
                result = subprocess.run(["bash", "-n"], input=found["run"], text=True,
                                        capture_output=True)  # fmt: skip
                assert result.returncode == 0, f"{found.get('name')}: {result.stderr}"


# -- the run: steps, executed ---------------------------------------------------------------
@pytest.fixture(scope="session")
def certified_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A generated plugin certified once by certify.yml's own Certify step."""
    repo = tmp_path_factory.mktemp("plugin-repo")
    subprocess.run(
        [
            str(BIN / "aitbc-plugin"),
            "new",
            "wf-plugin",
            "--defaults",
            "--no-git",
            "-o",
            str(repo / "plugins" / "wf"),
        ],
        check=True,
        capture_output=True,
    )
    out = repo.parent / "runner-temp" / "aitbc-certify"
    env = {"PLUGIN_PATH": "plugins/wf", "POLICY": "", "VULN_DB": str(VULN_DB),
           "FAIL_ON_INCOMPLETE_AUDIT": "true", "OUT": str(out)}  # fmt: skip
    began = time.monotonic()
    result, outputs, _ = run_step("certify.yml", "certify", "Certify", env, repo,
                                  repo.parent / "step-certify")  # fmt: skip
    seconds = time.monotonic() - began
    return {"repo": repo, "out": out, "result": result, "outputs": outputs, "seconds": seconds}


@pytest.mark.integration
def test_certify_step_writes_every_report_and_the_dist(certified_plugin: dict[str, Any]) -> None:
    result, out = certified_plugin["result"], certified_plugin["out"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert certified_plugin["outputs"] == {"status": "0"}
    assert sorted(p.name for p in (out / "report").iterdir()) == [
        "certification.json",
        "certification.junit.xml",
        "certification.md",
        "certification.sarif",
    ]
    dist = sorted(p.name for p in (out / "dist").iterdir())
    assert dist == ["SHA256SUMS", "wf_plugin-0.1.0-py3-none-any.whl", "wf_plugin-0.1.0.tar.gz"]
    # JUnit's suite time is the run's measured wall time, within the step's own.
    from junitparser import JUnitXml

    report = json.loads((out / "report" / "certification.json").read_text())
    (suite,) = list(JUnitXml.fromfile(str(out / "report" / "certification.junit.xml")))
    assert 0 < report["duration_s"] <= certified_plugin["seconds"]
    assert suite.time == pytest.approx(report["duration_s"], abs=0.001)


@pytest.mark.integration
def test_report_step_annotates_and_summarises(certified_plugin: dict[str, Any],
                                              tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "aitbc-certify"
    import shutil

    shutil.copytree(certified_plugin["out"], out)
    report_path = out / "report" / "certification.json"
    data = json.loads(report_path.read_text())
    data["certified"] = False
    data["checks"][0] = {
        **data["checks"][0],
        "status": "failed",
        "findings": [
            {"rule": "X1", "severity": "high", "message": "bad", "file": "plugin.py", "line": 7}
        ],
    }
    report_path.write_text(json.dumps(data))
    sarif = json.loads((out / "report" / "certification.sarif").read_text())
    (out / "report" / "certification.sarif.over-limits").write_text("stale\n")  # an old run's
    env = {"PLUGIN_PATH": "plugins/wf", "OUT": str(out), "ARTIFACT": "aitbc-certify-report-py3.12"}
    result, _, summary = run_step("certify.yml", "certify", "Report", env,
                                  certified_plugin["repo"], tmp_path / "step")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "::error title=certify structure%3A X1,file=plugins/wf/plugin.py,line=7::[high] bad"
        in result.stdout.splitlines()
    )
    assert summary.startswith("## Certified: wf-plugin 0.1.0")
    rebased = json.loads((out / "report" / "certification.sarif").read_text())
    uris = re.findall(r'"uri": "([^"]+)"', json.dumps(rebased, indent=1))
    assert all(u.startswith("plugins/wf/") or ":" in u for u in uris)
    assert len(rebased["runs"]) == len(sarif["runs"])
    # The upload's category takes effect: nothing in the file overrides it.
    assert all("automationDetails" not in run for run in rebased["runs"])
    assert not (out / "report" / "certification.sarif.over-limits").exists()  # within limits


@pytest.mark.integration
@pytest.mark.parametrize("status", ["0", "1"])
def test_verdict_step_fails_the_job_unless_certified(status: str, tmp_path: Path) -> None:
    result, _, _ = run_step("certify.yml", "certify", "Verdict", {"STATUS": status}, tmp_path,
                            tmp_path / "step")  # fmt: skip
    assert result.returncode == int(status)
    if status == "1":
        assert "::error::not certified" in result.stdout


@pytest.mark.integration
def test_result_job_merges_reports_into_the_outputs(certified_plugin: dict[str, Any],
                                                    tmp_path: Path) -> None:  # fmt: skip
    import shutil

    reports = tmp_path / "aitbc-certify" / "reports"
    for python in ("3.10", "3.13"):  # as download-artifact lays out one artifact per version
        shutil.copytree(
            certified_plugin["out"] / "report", reports / f"aitbc-certify-report-py{python}"
        )
    result, outputs, summary = run_step("certify.yml", "result", "Merge the reports",
                                        {"OUT": str(tmp_path / "aitbc-certify")}, tmp_path,
                                        tmp_path / "step")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outputs["certified"] == "true"
    assert json.loads(outputs["registry-entry"])["name"] == "wf-plugin"
    assert "| wf-plugin | 0.1.0 | certified |  |" in summary


@pytest.mark.integration
def test_matrix_workflow_plans_certifies_and_merges(certified_plugin: dict[str, Any],
                                                    tmp_path: Path) -> None:  # fmt: skip
    repo = tmp_path / "registry-repo"
    (repo / "plugins").mkdir(parents=True)
    import shutil

    shutil.copytree(certified_plugin["repo"] / "plugins" / "wf", repo / "plugins" / "wf")
    broken = repo / "plugins" / "broken"
    subprocess.run([str(BIN / "aitbc-plugin"), "new", "broken-plugin", "--defaults", "--no-git",
                    "-o", str(broken)], check=True, capture_output=True)  # fmt: skip
    (broken / "plugin.py").write_text("this is not python\n")
    registry = repo / "registry.json"
    registry.write_text(json.dumps({"plugins": [
        {"name": "wf-plugin", "version": "0.1.0", "description": "old", "author": "a",
         "license": "MIT"},
        {"name": "gone", "version": "1.0.0", "description": "d", "author": "a", "license": "MIT"},
    ]}))  # fmt: skip
    plan_env = {"REGISTRY": "", "PLUGIN_PATHS": "plugins/wf\nplugins/broken\n",
                "REF_TEMPLATE": "v{version}", "MAX_JOBS": "1"}  # fmt: skip
    result, outputs, _ = run_step("certify-matrix.yml", "plan", "Plan the matrix", plan_env, repo,
                                  tmp_path / "plan")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outputs["count"] == "2"
    rows = json.loads(outputs["matrix"])["include"]
    assert len(rows) == 1
    out = tmp_path / "runner-temp" / "aitbc-recertify"
    chunk_env = {"ITEMS": rows[0]["items"], "POLICY": "", "VULN_DB": str(VULN_DB),
                 "FAIL_ON_INCOMPLETE_AUDIT": "true", "OUT": str(out)}  # fmt: skip
    result, _, _ = run_step("certify-matrix.yml", "certify", "Certify the chunk", chunk_env, repo,
                            tmp_path / "chunk")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT CERTIFIED  plugins-broken" in result.stdout
    merge_env = {"REGISTRY": "registry.json", "KEEP_FAILED": "false", "OUT": str(out)}
    result, outputs, summary = run_step("certify-matrix.yml", "merge", "Merge the results",
                                        merge_env, repo, tmp_path / "merge")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs["status"] == "1" and outputs["certified"] == "false"
    assert outputs["total"] == "2" and outputs["certified-count"] == "1"
    updated = json.loads((out / "merged" / "registry.json").read_text())
    wf = [e for e in updated["plugins"] if e["name"] == "wf-plugin"]
    assert wf and wf[0]["checksum"].startswith("sha256:")
    assert {e["name"] for e in updated["plugins"]} == {"wf-plugin", "gone"}
    assert "Certified 1 of 2 plugin release(s)" in summary
    assert sorted(p.name for p in (out / "merged").iterdir()) == [
        "registry.json",
        "report.json",
        "summary.md",
    ]


@pytest.mark.integration
def test_registry_entries_are_cloned_at_their_tag(certified_plugin: dict[str, Any],
                                                  tmp_path: Path) -> None:  # fmt: skip
    import shutil

    source = tmp_path / "upstream"
    shutil.copytree(certified_plugin["repo"] / "plugins" / "wf", source)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "release"],
                 ["tag", "v0.1.0"]):  # fmt: skip
        subprocess.run([*git, *args], cwd=source, check=True, capture_output=True)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"plugins": [
        {"name": "wf-plugin", "version": "0.1.0", "description": "d", "author": "a",
         "license": "MIT", "repository": str(source)}]}))  # fmt: skip
    plan_env = {"REGISTRY": str(registry), "PLUGIN_PATHS": "", "REF_TEMPLATE": "v{version}",
                "MAX_JOBS": "256"}  # fmt: skip
    result, outputs, _ = run_step("certify-matrix.yml", "plan", "Plan the matrix", plan_env,
                                  tmp_path, tmp_path / "plan")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(outputs["matrix"])["include"]
    out = tmp_path / "out"
    chunk_env = {"ITEMS": row["items"], "POLICY": "", "VULN_DB": str(VULN_DB),
                 "FAIL_ON_INCOMPLETE_AUDIT": "true", "OUT": str(out)}  # fmt: skip
    result, _, _ = run_step("certify-matrix.yml", "certify", "Certify the chunk", chunk_env,
                            tmp_path, tmp_path / "chunk")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "certified      wf-plugin-0.1.0" in result.stdout
    assert (out / "results" / "wf-plugin-0.1.0" / "dist" / "SHA256SUMS").is_file()


@pytest.mark.integration
def test_ci_generate_step_makes_the_plugin_it_certifies(tmp_path: Path) -> None:
    result, _, _ = run_step("ci.yml", "generate", "Generate", {"KIND": "cli"}, tmp_path,
                            tmp_path / "step")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plugin" / "plugin.py").is_file()
    assert (tmp_path / "plugin" / ".github" / "workflows" / "certify.yml").is_file()


def install_steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, job_id, found)
            for path in WORKFLOW_FILES
            for job_id, job in load(path)["jobs"].items()
            for found in job.get("steps", [])
            if found.get("name") == "Install the toolkit"]  # fmt: skip


@pytest.mark.integration
def test_install_step_installs_a_working_toolkit(sdk_wheel: Path, tmp_path: Path) -> None:
    """The step every job uses to install the toolkit, run as the runner runs it: a fresh
    Python (with pip, as setup-python gives) first on PATH, the toolkit wheel in the
    artifact folder, the toolkit's dependencies from the package index."""
    steps = install_steps()
    assert len(steps) >= 3
    scripts = {found["run"] for _, _, found in steps}
    assert len(scripts) == 1, "the install steps differ: test each of them"
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "py")], check=True)
    artifact = tmp_path / "aitbc-toolkit"
    artifact.mkdir()
    (artifact / sdk_wheel.name).write_bytes(sdk_wheel.read_bytes())
    script = tmp_path / "install.sh"
    script.write_text(scripts.pop(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{tmp_path / 'py' / 'bin'}{os.pathsep}{os.environ['PATH']}",
               TOOLKIT_VERSION="", TOOLKIT_DIR=str(artifact))  # fmt: skip
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(sdk_wheel.name.split("-")[1])  # aitbc-plugin --version
    installed = tmp_path / "py" / "bin" / "aitbc-plugin"
    made = subprocess.run([str(installed), "new", "from-ci", "--defaults", "--no-git"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    for module in ("mypy", "bandit", "pip_audit", "build", "copier"):  # the [toolkit] extra
        found = subprocess.run([str(tmp_path / "py" / "bin" / "python"), "-c",
                                f"import {module}"], capture_output=True)  # fmt: skip
        assert found.returncode == 0, module


def test_ci_test_job_runs_exactly_what_ci_runs() -> None:
    """The suite cannot run itself; the step is the very command this run was started by."""
    found = step("ci.yml", "test", "Run the test suite")
    assert found["run"].strip() == ".ci/run"
    assert os.access(REPO / ".ci" / "run", os.X_OK)


@pytest.mark.integration
def test_ci_build_step_builds_the_toolkit_wheel(tmp_path: Path) -> None:
    """ci.yml's Build step, run as the runner runs it in a checkout, with a fresh Python
    (pip included, as setup-python gives) first on PATH."""
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".demo", "dist", "build", "__pycache__", "*.egg-info"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "py")], check=True)
    script = tmp_path / "build.sh"
    script.write_text(step("ci.yml", "build", "Build")["run"], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{tmp_path / 'py' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                            cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (checkout / "dist").glob("aitbc_plugins-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "aitbc/plugins/py.typed" in names
    assert "aitbc/plugin_toolkit/_data/templates/plugin.bundle" in names  # `new` works offline
    assert "aitbc/plugin_toolkit/ci/release.json" in names  # what `new` pins certify.yml to
