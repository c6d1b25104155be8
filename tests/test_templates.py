"""The copier template templates/plugin: what it renders for every kind, and that it works.

Fast tests render each kind and check the files, the metadata, the configuration
schema and its docs, the certification workflow, ruff and ``mypy --strict``.
The ``integration`` tests install each rendered project beside the SDK wheel in a
fresh venv, run its own tests from the checkout and against the installed wheel,
check what the wheel holds and load the plugin through ``PluginManager``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import copier
import jsonschema
import pytest
import yaml
from aitbc.plugin_toolkit.ci.release import workflow_release
from aitbc.plugin_toolkit.scaffold.new import release_context

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "plugin"
KINDS = ("base", "cli", "blockchain", "ai")
BASE_CLASSES = {
    "base": "BasePlugin",
    "cli": "CLIPlugin",
    "blockchain": "BlockchainPlugin",
    "ai": "AIPlugin",
}
# The spec's Plugin Structure, plus what packaging, CI and copier add beside it.
SPEC_FILES = {
    "__init__.py",
    "plugin.py",
    "config_schema.json",
    "tests/__init__.py",
    "tests/test_plugin.py",
    "docs/README.md",
    "docs/configuration.md",
    "requirements.txt",
    "setup.py",
}
PROJECT_FILES = SPEC_FILES | {
    "pyproject.toml",
    "conftest.py",
    ".gitignore",
    ".github/workflows/certify.yml",
    ".copier-answers.yml",
}
PACKAGE_FILES = ("__init__.py", "plugin.py", "config_schema.json")
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def answers(kind: str) -> dict[str, Any]:
    """Answers unlike the defaults, so a value that lands somewhere shows where it came from."""
    return {
        "plugin_name": f"demo-{kind}",
        "kind": kind,
        "version": "1.2.3",
        "description": f'The {kind} demo: "quoted", naïve \\ backslashed',
        "author": "Ada O'Lovelace",
        "author_email": "ada@example.org",
        "license": "Apache-2.0",
        "keywords": ["demo", kind, "template test"],
        "min_aitbc_version": "1.0.0",
        "max_aitbc_version": "1.9.0",
        "toolkit_ref": "v9.8.7",
        "toolkit_commit": OTHER_COMMIT,
    }


def render(destination: Path, **data: Any) -> Path:
    """Render the template as it is in the working tree, with the toolkit's release
    record in the context as `aitbc-plugin new` gives it.

    templates/plugin is not a git repository root, so copier copies the directory as it
    is and ignores vcs_ref.  Were it one, vcs_ref="HEAD" makes copier take HEAD plus the
    uncommitted changes (with a DirtyLocalWarning) rather than the newest tag.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(TEMPLATE),
            str(destination),
            data={**release_context(), **data},
            defaults=True,
            unsafe=False,
            quiet=True,
            vcs_ref="HEAD",
        )
    return destination


def run(cmd: list[str], cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env, **kwargs
    )


def run_ok(cmd: list[str], cwd: Path | None = None) -> str:
    result = run(cmd, cwd)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def uv(*args: str) -> list[str]:
    return [sys.executable, "-m", "uv", *args]


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind rendered once, each in a directory named like the plugin (demo-cli, ...)."""
    root = tmp_path_factory.mktemp("rendered")
    return {kind: render(root / f"demo-{kind}", **answers(kind)) for kind in KINDS}


@pytest.fixture
def imported_plugin(projects: dict[str, Path]) -> Iterator[Any]:
    """Import a rendered project as its package (module_name); forget it afterwards."""
    names: list[str] = []

    def load(kind: str) -> Any:
        project = projects[kind]
        module = f"demo_{kind}"
        spec = importlib.util.spec_from_file_location(
            module, project / "__init__.py", submodule_search_locations=[str(project)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[module] = package
        names.append(module)
        spec.loader.exec_module(package)
        return package

    yield load
    for name in names:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


# -- the rendered files ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_project_has_the_spec_layout(projects: dict[str, Path], kind: str) -> None:
    project = projects[kind]
    files = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert files == PROJECT_FILES
    assert not any(name.endswith(".jinja") for name in files)
    assert (project / "tests" / "__init__.py").read_text() == ""


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_is_consistent(projects: dict[str, Path], imported_plugin: Any, kind: str) -> None:
    given = answers(kind)
    project = projects[kind]
    package = imported_plugin(kind)
    plugin_class = getattr(package, f"Demo{kind.capitalize()}Plugin")
    assert package.__all__ == [plugin_class.__name__]
    assert [base.__name__ for base in plugin_class.__bases__] == [BASE_CLASSES[kind]]

    from aitbc.plugins.testing import make_context

    context = make_context(project.parent / "ctx", kind)
    metadata = plugin_class(context).get_metadata()
    assert metadata.name == given["plugin_name"]
    assert metadata.version == given["version"]
    assert metadata.description == given["description"]
    assert metadata.author == given["author"]
    assert metadata.license == given["license"]
    assert metadata.keywords == given["keywords"]
    assert metadata.min_aitbc_version == given["min_aitbc_version"]
    assert metadata.max_aitbc_version == given["max_aitbc_version"]

    pyproject = read_toml(project / "pyproject.toml")
    meta = pyproject["project"]
    assert meta["name"] == metadata.name
    assert meta["version"] == metadata.version
    assert meta["description"] == metadata.description
    assert meta["license"] == metadata.license
    assert meta["authors"] == [{"name": given["author"], "email": given["author_email"]}]
    assert meta["keywords"] == metadata.keywords
    assert meta["readme"] == "docs/README.md"
    assert "aitbc-plugins>=1.0.0" in meta["dependencies"]
    assert ("click>=8.1" in meta["dependencies"]) == (kind == "cli")
    entry_points = meta["entry-points"]["aitbc.plugins"]
    assert entry_points == {metadata.name: f"demo_{kind}.plugin:{plugin_class.__name__}"}
    assert pyproject["tool"]["setuptools"]["package-dir"] == {f"demo_{kind}": "."}
    assert pyproject["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]

    requirements = (project / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if line and not line.startswith("#")] == meta[
        "dependencies"
    ]

    setup_tree = ast.parse((project / "setup.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: node.value.value
        for node in setup_tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert constants["NAME"] == metadata.name
    assert constants["VERSION"] == metadata.version
    assert constants["PACKAGE"] == f"demo_{kind}"
    setup_doc = ast.get_docstring(setup_tree) or ""
    for text in (
        metadata.description,
        metadata.author,
        metadata.license,
        ", ".join(metadata.keywords),
        metadata.min_aitbc_version,
        metadata.max_aitbc_version,
    ):
        assert text in setup_doc, text

    readme = (project / "docs" / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# {metadata.name}\n\n{metadata.description}\n")
    for text in (
        f"| Version | {metadata.version} |",
        f"| Author | {metadata.author} ({given['author_email']}) |",
        f"| License | {metadata.license} |",
        f"| Keywords | {', '.join(metadata.keywords)} |",
        f"| AITBC versions | {metadata.min_aitbc_version} to {metadata.max_aitbc_version} |",
        f"`aitbc.plugins.{BASE_CLASSES[kind]}`",
    ):
        assert text in readme, text

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert {k: recorded[k] for k in given} == given
    assert recorded["module_name"] == f"demo_{kind}"
    assert recorded["class_name"] == plugin_class.__name__


@pytest.mark.parametrize("kind", KINDS)
def test_config_schema_and_its_docs(
    projects: dict[str, Path], imported_plugin: Any, kind: str
) -> None:
    project = projects[kind]
    schema = json.loads((project / "config_schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    properties = schema["properties"]
    assert properties and schema["additionalProperties"] is False
    defaults = {name: option["default"] for name, option in properties.items()}
    jsonschema.validate(defaults, schema)
    jsonschema.validate({}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"no_such_option": 1}, schema)

    docs = (project / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| `([^`]*)` \|", docs, flags=re.MULTILINE)
    assert [name for name, _, _ in rows] == list(properties)
    for name, type_, default in rows:
        assert type_.strip() == properties[name]["type"]
        assert json.loads(default) == properties[name]["default"]
    example = yaml.safe_load(docs.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert example["plugins"][f"demo-{kind}"]["config"] == defaults

    # The plugin's default get_config_schema() is this file; settings take its defaults.
    from aitbc.plugins.testing import make_context

    package = imported_plugin(kind)
    plugin_class = getattr(package, f"Demo{kind.capitalize()}Plugin")
    assert "get_config_schema" not in vars(plugin_class)
    plugin = plugin_class(make_context(project.parent / "ctx", kind))
    assert plugin.get_config_schema() == schema
    assert plugin.settings == defaults


@pytest.mark.parametrize("kind", KINDS)
def test_certify_workflow(projects: dict[str, Path], kind: str) -> None:
    text = (projects[kind] / ".github" / "workflows" / "certify.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    assert set(workflow[True]) >= {"push", "pull_request"}  # YAML 1.1 reads "on" as True
    job = workflow["jobs"]["certify"]
    assert job["uses"] == f"aitbc/aitbc-plugins/.github/workflows/certify.yml@{OTHER_COMMIT}"
    uses_line = next(ln for ln in text.splitlines() if ln.strip().startswith("uses:"))
    assert uses_line.endswith(f"@{OTHER_COMMIT} # v9.8.7")  # the tag, as the comment
    assert job["with"] == {"plugin-path": "."}
    # What the reusable workflow's jobs ask for; actions: read lets code scanning take
    # the SARIF upload in a private repository.
    assert job["permissions"] == {"actions": "read", "contents": "read", "security-events": "write"}
    assert workflow["permissions"] == {"contents": "read"}


def test_certify_workflow_is_pinned_by_the_recorded_release_commit(tmp_path: Path) -> None:
    project = render(tmp_path / "p", plugin_name="pinned")
    text = (project / ".github" / "workflows" / "certify.yml").read_text(encoding="utf-8")
    release = workflow_release()
    assert f"    uses: {release.uses('certify.yml')}\n" in text
    assert "zizmor: ignore" not in text


def test_a_tag_without_its_commit_is_left_pinned_by_tag_and_says_so(tmp_path: Path) -> None:
    """Another release's tag: the toolkit does not know its commit, so the workflow is
    pinned by tag only, the comment says how to pin it, and nothing silences zizmor."""
    project = render(tmp_path / "p", plugin_name="tagged", toolkit_ref="v0.9.0")
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["toolkit_commit"] == ""
    text = (project / ".github" / "workflows" / "certify.yml").read_text(encoding="utf-8")
    assert "    uses: aitbc/aitbc-plugins/.github/workflows/certify.yml@v0.9.0\n" in text
    assert "full SHA" in text and "zizmor: ignore" not in text


def test_copier_alone_must_be_told_the_release(tmp_path: Path) -> None:
    with warnings.catch_warnings(), pytest.raises(ValueError, match="toolkit_ref is required"):
        warnings.simplefilter("ignore")
        copier.run_copy(str(TEMPLATE), str(tmp_path / "p"), data={"plugin_name": "alone"},
                        defaults=True, quiet=True, vcs_ref="HEAD")  # fmt: skip
    with warnings.catch_warnings(), pytest.raises(ValueError, match="toolkit_commit"):
        warnings.simplefilter("ignore")
        copier.run_copy(str(TEMPLATE), str(tmp_path / "q"), defaults=True, quiet=True,
                        vcs_ref="HEAD", data={"plugin_name": "alone", "toolkit_ref": "v1.0.0",
                                              "toolkit_commit": "abc"})  # fmt: skip


def test_ruff_and_mypy_strict(projects: dict[str, Path], tmp_path: Path) -> None:
    for project in projects.values():
        # With the project's own configuration, in a directory named like the plugin.
        result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
        assert result.returncode == 0, result.stdout + result.stderr
    # mypy knows a package by its directory's name: check copies named as the packages,
    # all four in one run (the SDK resolves from this environment, where it ships py.typed).
    for kind, project in projects.items():
        shutil.copytree(project, tmp_path / f"demo_{kind}")
        result = run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "."],
            cwd=tmp_path / f"demo_{kind}",
        )
        assert result.returncode == 0, result.stdout + result.stderr
    result = run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--python-version",
            "3.10",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *(f"demo_{kind}" for kind in KINDS),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the questions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "module_name", "class_name"),
    [
        ("my-plugin", "my_plugin", "MyPlugin"),
        ("my-plugin2", "my_plugin2", "MyPlugin2"),  # not MyPlugin2Plugin
        ("plugin-tools", "plugin_tools", "PluginToolsPlugin"),
        ("agent-cli", "agent_cli", "AgentCliPlugin"),
        ("Translation-AI", "translation_ai", "TranslationAIPlugin"),
        ("base", "base", "MyBasePlugin"),
    ],
)
def test_computed_defaults(tmp_path: Path, name: str, module_name: str, class_name: str) -> None:
    project = render(tmp_path / name, plugin_name=name)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert recorded["kind"] == "base"
    assert recorded["module_name"] == module_name
    assert recorded["class_name"] == class_name
    assert recorded["version"] == "0.1.0"
    assert recorded["license"] == "MIT"
    assert recorded["min_aitbc_version"] == "1.0.0"
    assert recorded["max_aitbc_version"] == "2.0.0"
    release = workflow_release()
    assert (recorded["toolkit_ref"], recorded["toolkit_commit"]) == (release.tag, release.commit)
    assert f"class {class_name}(BasePlugin):" in (project / "plugin.py").read_text()


def test_module_and_class_names_can_be_chosen(tmp_path: Path) -> None:
    project = render(
        tmp_path / "p", plugin_name="my-plugin", module_name="custom_pkg", class_name="Custom"
    )
    pyproject = read_toml(project / "pyproject.toml")
    assert pyproject["project"]["entry-points"]["aitbc.plugins"] == {
        "my-plugin": "custom_pkg.plugin:Custom"
    }
    assert "from custom_pkg.plugin import Custom" in (project / "tests/test_plugin.py").read_text()


def test_keywords_as_string_or_list(tmp_path: Path) -> None:
    listed = render(tmp_path / "a", plugin_name="kw", keywords=["cli", "agent"])
    typed = render(tmp_path / "b", plugin_name="kw", keywords=" cli,agent , ")
    for project in (listed, typed):
        assert read_toml(project / "pyproject.toml")["project"]["keywords"] == ["cli", "agent"]
        assert 'keywords=["cli", "agent"],' in (project / "plugin.py").read_text()


@pytest.mark.parametrize(
    ("data", "question"),
    [
        ({"plugin_name": "1bad"}, "plugin_name"),
        ({"plugin_name": "bad_name"}, "plugin_name"),
        ({"plugin_name": "x" * 65}, "plugin_name"),
        ({"plugin_name": "ok", "module_name": "class"}, "module_name"),
        ({"plugin_name": "ok", "version": "1.0"}, "version"),
        ({"plugin_name": "ok", "min_aitbc_version": "2.1.0"}, "max_aitbc_version"),
        ({"plugin_name": "ok", "description": "two\nlines"}, "description"),
        ({"plugin_name": "ok", "keywords": ["a,b"]}, "keywords"),
    ],
)
def test_bad_answers_are_rejected(tmp_path: Path, data: dict[str, Any], question: str) -> None:
    with pytest.raises(ValueError, match=f"Validation error for question '{question}'"):
        render(tmp_path / "p", **data)
    assert not (tmp_path / "p" / "plugin.py").exists()


def test_template_runs_no_code() -> None:
    config = yaml.safe_load((TEMPLATE / "copier.yml").read_text(encoding="utf-8"))
    assert not {"_tasks", "_migrations", "_jinja_extensions"} & set(config)
    assert config["_subdirectory"] == "project"
    assert "includes" in config["_exclude"]


# -- integration: real installs, builds and hosts ----------------------------------------------
MANAGER_SCRIPT = """
import asyncio, json, sys, tempfile, threading
from aitbc.plugins import PluginManager

async def main(name):
    with tempfile.TemporaryDirectory() as data_dir:
        manager = PluginManager({"plugins": {name: {"enabled": True}}, "data_dir": data_dir})
        async with manager:
            status = manager.get_plugin_status(name).value
            health = await manager.plugins[name].health_check()
        after = manager.get_plugin_status(name).value
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return {"status": status, "health": health["status"], "after": after,
            "error": manager.get_plugin_error(name), "tasks": len(leftover)}

report = asyncio.run(main(sys.argv[1]))
report["threads"] = threading.active_count()
print(json.dumps(report))
"""


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_rendered_project_installs_builds_and_loads(
    tmp_path: Path, sdk_wheel: Path, kind: str
) -> None:
    """sdk_wheel (tests/conftest.py) is the SDK built once per run, shared by xdist workers."""
    given = answers(kind)
    name, module = given["plugin_name"], f"demo_{kind}"
    project = render(tmp_path / name, **given)
    venv = tmp_path / "venv"
    run_ok(uv("venv", "--quiet", "--python", sys.executable, str(venv)))
    python = str(venv / "bin" / "python")
    run_ok(uv("pip", "install", "--quiet", "--python", python, str(sdk_wheel), "pytest"))

    # 1. The plugin's own tests, from the checkout, with the plugin not installed.
    out = run_ok([python, "-m", "pytest", "-p", "no:cacheprovider"], cwd=project)
    assert f"{module}: {project}\n" in out
    assert re.search(r"\b\d+ passed\b", out) and "failed" not in out and "error" not in out

    # 2. Build as `python -m build` does (sdist, then the wheel from it) and as
    #    `pip install .` does (the wheel from the tree): only the package is in the wheel.
    dist, tree_dist = tmp_path / "dist", tmp_path / "tree-dist"
    run_ok(uv("build", "--quiet", "--out-dir", str(dist), str(project)))
    run_ok(uv("build", "--quiet", "--wheel", "--out-dir", str(tree_dist), str(project)))
    wheel = dist / f"{module}-{given['version']}-py3-none-any.whl"
    for built in (wheel, tree_dist / wheel.name):
        with zipfile.ZipFile(built) as archive:
            names = archive.namelist()
            entry_points = archive.read(f"{module}-{given['version']}.dist-info/entry_points.txt")
        package = sorted(
            n for n in names if not n.startswith(f"{module}-{given['version']}.dist-info/")
        )
        assert package == sorted(f"{module}/{f}" for f in PACKAGE_FILES)
        assert f"{name} = {module}.plugin:Demo{kind.capitalize()}Plugin" in entry_points.decode()
    assert len(list(dist.glob("*.tar.gz"))) == 1

    # 3. Installed from the wheel: the tests pass against it, from the checkout and from a
    #    copy of tests/ that has nothing else of the project beside it.
    run_ok(uv("pip", "install", "--quiet", "--python", python, str(wheel)))
    site = run_ok([python, "-c", f"import {module}; print({module}.__file__)"], cwd=tmp_path)
    assert "site-packages" in site
    out = run_ok([python, "-m", "pytest", "-p", "no:cacheprovider"], cwd=project)
    assert f"{module}: {Path(site.strip()).parent}\n" in out
    alone = tmp_path / "tests-alone"
    shutil.copytree(project / "tests", alone / "tests")
    out = run_ok(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "--import-mode=importlib", "tests"],
        cwd=alone,
    )
    assert re.search(r"\b\d+ passed\b", out) and "failed" not in out

    # 4. A host loads it through its entry point and runs it; nothing is left running.
    (tmp_path / "host.py").write_text(MANAGER_SCRIPT)
    report = json.loads(run_ok([python, str(tmp_path / "host.py"), name], cwd=tmp_path))
    assert report == {
        "status": "active",
        "health": "active",
        "after": "unloaded",
        "error": None,
        "tasks": 0,
        "threads": 1,
    }

    # 5. An editable install maps the package onto the checkout.
    run_ok(uv("pip", "install", "--quiet", "--python", python, "--editable", str(project)))
    where = run_ok(
        [python, "-c", f"import {module}.plugin; print({module}.__file__)"], cwd=tmp_path
    )
    assert Path(where.strip()) == project / "__init__.py"
