"""`aitbc-plugin update`: copier's three-way update from a bundle of template versions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.scaffold import sources
from aitbc.plugin_toolkit.scaffold import update as updating
from aitbc.plugin_toolkit.scaffold.bundle import bundle_versions, release
from aitbc.plugin_toolkit.scaffold.new import NewRequest, create_project
from conftest import REPO

CLI = [sys.executable, "-m", "aitbc.plugin_toolkit"]

COPIER_YML = "plugin_name:\n  type: str\nkind:\n  type: str\n  default: base\n" \
             "_answers_file: .copier-answers.yml\n"  # fmt: skip
V1 = {
    "copier.yml": COPIER_YML,
    "{{_copier_conf.answers_file}}.jinja": "{{ _copier_answers|to_nice_yaml -}}\n",
    "README.md.jinja": "# {{ plugin_name }}\n\nA plugin.\n",
    "plugin.py.jinja": "NAME = '{{ plugin_name }}'\n\n\ndef run():\n    return 1\n",
    "settings.txt": "timeout = 10\nretries = 3\n",
    "obsolete.txt": "old\n",
}
V2 = {
    **{k: v for k, v in V1.items() if k != "obsolete.txt"},
    "plugin.py.jinja": V1["plugin.py.jinja"] + "\n\ndef stop():\n    return 0\n",
    "settings.txt": "timeout = 20\nretries = 3\n",
    "added.txt": "new in 2.0\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle with two template versions, made the way a release makes them."""
    work, target = tmp_path / "template-src", tmp_path / "releases" / "plugin.bundle"
    target.parent.mkdir()
    write_tree(work, V1)
    release(work, target, "1.0.0")
    write_tree(work, V2)
    release(work, target, "2.0.0")
    assert [str(v) for v in bundle_versions(target)] == ["1.0.0", "2.0.0"]
    return target


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def commit_all(project: Path, message: str = "author edits") -> None:
    git(project, "add", "-A")
    git(project, "-c", "user.name=a", "-c", "user.email=a@b.c", "commit", "-qm", message)


def make_v1_project(bundle: Path, where: Path) -> Path:
    import copier

    copier.run_copy(str(bundle), where, data={"plugin_name": "demo"}, vcs_ref="1.0.0",
                    defaults=True, quiet=True)  # fmt: skip
    git(where, "init", "-q")
    commit_all(where, "generated")
    return where


def test_update_keeps_author_edits_and_reports_each_file(bundle: Path, tmp_path: Path) -> None:
    project = make_v1_project(bundle, tmp_path / "demo")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nMy own notes.\n")
    plugin = project / "plugin.py"
    plugin.write_text("# edited by the author\n" + plugin.read_text())
    (project / "obsolete.txt").unlink()
    commit_all(project)

    pretend = run_cli("update", "--pretend", "--format", "json", cwd=project)
    assert pretend.returncode == 0, pretend.stderr
    report = json.loads(pretend.stdout)
    states = {f["path"]: f["state"] for f in report["files"]}
    assert states == {
        ".copier-answers.yml": "updated", "README.md": "unchanged", "added.txt": "added",
        "obsolete.txt": "deleted by the author", "plugin.py": "merged", "settings.txt": "updated",
    }  # fmt: skip
    assert report["applied"] is False and git(project, "status", "--porcelain") == ""

    result = run_cli("update", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "updated template 1.0.0 -> 2.0.0" in result.stdout
    assert result.stdout.endswith("\nReview the changes (git diff), then commit them.\n")
    assert "My own notes." in readme.read_text()
    text = plugin.read_text()
    assert text.startswith("# edited by the author\n") and "def stop():" in text
    assert (project / "settings.txt").read_text() == "timeout = 20\nretries = 3\n"
    assert (project / "added.txt").read_text() == "new in 2.0\n"
    assert not (project / "obsolete.txt").exists()
    assert "_commit: 2.0.0" in (project / ".copier-answers.yml").read_text()
    assert not list(project.glob(".*.aitbc-update"))  # no staging files left

    commit_all(project, "take the update")
    check = run_cli("update", "--check", cwd=project)
    assert check.returncode == 0 and "up to date" in check.stdout


def test_conflicting_edit_exits_1_and_names_the_file(bundle: Path, tmp_path: Path) -> None:
    project = make_v1_project(bundle, tmp_path / "demo")
    (project / "settings.txt").write_text("timeout = 99\nretries = 3\n")
    commit_all(project)
    result = run_cli("update", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "aitbc-plugin: conflicts in settings.txt; resolve the markers, then commit"
    )
    assert "conflict               settings.txt" in result.stdout
    merged = (project / "settings.txt").read_text()
    assert "<<<<<<<" in merged and "timeout = 99" in merged and "timeout = 20" in merged
    # JSON says the same; a second update refuses while the markers remain.
    commit_all(project, "oops, committed the markers")
    again = run_cli("update", cwd=project)
    assert again.returncode == 2
    assert "conflict markers from an earlier update remain in settings.txt" in again.stderr


def test_json_conflict_report(bundle: Path, tmp_path: Path) -> None:
    project = make_v1_project(bundle, tmp_path / "demo")
    (project / "settings.txt").write_text("timeout = 99\nretries = 3\n")
    commit_all(project)
    result = run_cli("update", "--pretend", "--format", "json", cwd=project)
    assert result.returncode == 1
    assert json.loads(result.stdout)["conflicts"] == ["settings.txt"]
    assert git(project, "status", "--porcelain") == ""  # pretend wrote nothing


def test_pretend_on_a_dirty_tree_classifies_it_and_writes_nothing(
    bundle: Path, tmp_path: Path
) -> None:
    """--pretend writes nothing, so uncommitted edits do not stop it: it classifies the
    tree as it stands, and a conflict it foresees is said as one, not as markers to
    resolve."""
    project = make_v1_project(bundle, tmp_path / "demo")
    (project / "settings.txt").write_text("timeout = 99\nretries = 3\n")  # uncommitted
    plugin = project / "plugin.py"
    plugin.write_text("# edited, not committed\n" + plugin.read_text())

    def files() -> dict[Path, bytes]:  # not .git: `git status` may refresh its index
        return {p: p.read_bytes() for p in project.rglob("*")
                if p.is_file() and ".git" not in p.parts}  # fmt: skip

    before, status = files(), git(project, "status", "--porcelain")
    result = run_cli("update", "--pretend", cwd=project)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "aitbc-plugin: the update would conflict in settings.txt; nothing was written"
    )
    assert "would update template 1.0.0 -> 2.0.0" in result.stdout
    assert "conflict               settings.txt" in result.stdout
    assert "merged                 plugin.py" in result.stdout
    assert files() == before and git(project, "status", "--porcelain") == status
    refused = run_cli("update", cwd=project)  # writing into a dirty tree is still refused
    assert refused.returncode == 2 and "has uncommitted changes" in refused.stderr


def test_update_help_explains_every_option(tmp_path: Path) -> None:
    shown = run_cli("update", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "--format [text|json] text: one line per file for a person; json:" in text


def test_check_exits_1_when_an_update_exists(bundle: Path, tmp_path: Path) -> None:
    project = make_v1_project(bundle, tmp_path / "demo")
    result = run_cli("update", "--check", cwd=project)
    assert result.returncode == 1
    assert result.stdout.strip() == "update available: template 1.0.0 -> 2.0.0"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("dirty", "has uncommitted changes (README.md)"),
        ("untracked", "has uncommitted changes (scratch.txt)"),
        ("no-git", "is not a git repository"),
        ("no-answers", "has no .copier-answers.yml"),
    ],
)
def test_update_refuses_to_start(bundle: Path, tmp_path: Path, setup: str, message: str) -> None:
    project = make_v1_project(bundle, tmp_path / "demo")
    if setup == "dirty":
        (project / "README.md").write_text("changed\n")
    elif setup == "untracked":
        (project / "scratch.txt").write_text("x\n")
    elif setup == "no-git":
        shutil.rmtree(project / ".git")
    elif setup == "no-answers":
        (project / ".copier-answers.yml").unlink()
        commit_all(project)
    before = {
        p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    result = run_cli("update", str(project), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert before == after


def test_missing_project_dir(tmp_path: Path) -> None:
    result = run_cli("update", "nope", cwd=tmp_path)
    assert result.returncode == 2 and "no such project directory" in result.stderr


def test_builtin_source_is_portable_and_resolved_at_update(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`new` records a name, not this installation's path; `update` finds the bundle again."""
    old_bundle = tmp_path / "old" / "plugin.bundle"
    old_bundle.parent.mkdir()
    work = tmp_path / "v1-only"
    write_tree(work, V1)
    release(work, old_bundle, "1.0.0")
    for module in (sources, updating):
        monkeypatch.setattr(module, "builtin_bundle", lambda: old_bundle)
    made = create_project(NewRequest(name="demo", output_dir=tmp_path / "demo"))
    answers = (made.path / ".copier-answers.yml").read_text()
    assert "_src_path: aitbc-plugin:builtin" in answers and str(old_bundle) not in answers
    # "Reinstall the toolkit elsewhere" with a newer template: only the bundle moved.
    for module in (sources, updating):
        monkeypatch.setattr(module, "builtin_bundle", lambda: bundle)
    result = updating.update_project(made.path)
    assert (result.from_version, result.to_version, result.conflicts) == ("1.0.0", "2.0.0", [])
    assert "_src_path: aitbc-plugin:builtin" in (made.path / ".copier-answers.yml").read_text()
    assert "def stop():" in (made.path / "plugin.py").read_text()


def test_update_pins_certify_yml_of_a_project_on_the_recorded_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project from template 1.2.0 (certify.yml called by tag, zizmor silenced) gets the
    workflow pinned by the recorded commit when updated to the working tree's template."""
    from aitbc.plugin_toolkit.ci.release import workflow_release

    shipped = sources.builtin_bundle()
    old = tmp_path / "template-1.2.0"
    git(tmp_path, "clone", "--quiet", "--branch", "1.2.0", str(shipped), str(old))
    shutil.rmtree(old / ".git")
    bundle = tmp_path / "releases" / "plugin.bundle"
    bundle.parent.mkdir()
    release(old, bundle, "1.2.0")
    for module in (sources, updating):
        monkeypatch.setattr(module, "builtin_bundle", lambda: bundle)
    made = create_project(NewRequest(name="pinned", output_dir=tmp_path / "pinned"))
    workflow = made.path / ".github" / "workflows" / "certify.yml"
    assert "certify.yml@v1.0.0 # zizmor: ignore[unpinned-uses]" in workflow.read_text()
    release(REPO / "templates" / "plugin", bundle, "99.0.0")
    result = updating.update_project(made.path)
    assert (result.to_version, result.conflicts) == ("99.0.0", [])
    pin = workflow_release()
    assert f"    uses: {pin.uses('certify.yml')}\n" in workflow.read_text()
    assert f"toolkit_commit: {pin.commit}" in (made.path / ".copier-answers.yml").read_text()
