"""A check describes itself, and everything else is derived from the registered checks:
the policy's ids, report titles, SARIF rules and checks/README.md.  Adding a check is one
new module and one registration line, proven here with a throwaway check."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify import checks as registry
from aitbc.plugin_toolkit.certify.base import Check, describe
from aitbc.plugin_toolkit.certify.docs import docs_problems
from aitbc.plugin_toolkit.certify.policy import load_policy
from aitbc.plugin_toolkit.certify.runner import CertifyOptions, certify, validate_options
from aitbc.plugin_toolkit.certify.writers import WRITERS
from aitbc.plugin_toolkit.errors import ToolkitError
from conftest import REPO

README = REPO / "checks" / "README.md"

THROWAWAY = '''
"""A check that exists only for this test."""

from pathlib import Path

from aitbc.plugin_toolkit.certify.base import CheckContext, CheckError, result, timed
from aitbc.plugin_toolkit.certify.model import CheckResult, Finding, Severity


class ThrowawayCheck:
    """The project has no file called `forbidden.txt`.

    It exists to prove that a check is one module and one line."""

    id = "throwaway"
    title = "No forbidden file"
    security = True
    needs_wheel = False
    uses_environment = False
    typical_s = 0.0

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            if (context.workdir / "undecidable").exists():
                raise CheckError("cannot tell, on purpose")
            found = [
                Finding("throwaway.forbidden", Severity.HIGH, "forbidden.txt is here",
                        "forbidden.txt", 1)
                for _ in [0] if (context.workdir / "forbidden.txt").exists()
            ]
        return result(self.id, found, elapsed(), "checked for forbidden.txt")

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return None
'''


def every_info() -> list[Any]:
    return [describe(check) for check in registry.CHECKS]


def test_every_check_describes_itself() -> None:
    infos = every_info()
    assert len({info.id for info in infos}) == len(infos)
    for info in infos:
        assert info.title and info.explanation, info
        assert info.explanation.split("\n\n")[0].endswith("."), info.id  # a summary first
    assert {i.id for i in infos if i.security} == {"security", "audit"}


def test_checks_readme_documents_every_check_as_the_code_says() -> None:
    problems = docs_problems(README.read_text(encoding="utf-8"), every_info())
    assert not problems, "\n\n".join(p.message for p in problems)


def test_the_docs_test_fails_when_docs_and_code_disagree() -> None:
    text = README.read_text(encoding="utf-8")
    interface = describe(next(c for c in registry.CHECKS if c.id == "interface"))
    reworded = text.replace(interface.explanation.split("\n")[0], "Something else entirely.")
    assert [p.check_id for p in docs_problems(reworded, every_info())] == ["interface"]
    missing = text.replace("## build\n", "## built\n")
    assert {p.check_id for p in docs_problems(missing, every_info())} == {"build", "built"}


@pytest.fixture
def throwaway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Check:
    """The new module, imported, and the one registration line."""
    module_file = tmp_path / "throwaway_check.py"
    module_file.write_text(textwrap.dedent(THROWAWAY))
    spec = importlib.util.spec_from_file_location("throwaway_check", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "throwaway_check", module)
    spec.loader.exec_module(module)
    check: Check = module.ThrowawayCheck()
    monkeypatch.setattr(registry, "CHECKS", (*registry.CHECKS, check))  # the one line
    return check


def test_a_new_check_is_one_module_and_one_line(
    throwaway: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # The policy knows it: it may be required, and --only may name it.
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('required = ["throwaway"]\n')
    assert load_policy(REPO / "checks", policy_file).required == ("throwaway",)
    project = tmp_path / "my-plugin"
    shutil.copytree(REPO / "tests" / "data" / "spec-flat" / "my-plugin", project)
    (project / "forbidden.txt").write_text("no\n")
    options = CertifyOptions(project, policy_file=policy_file, only=("throwaway",),
                             use_cache=False)  # fmt: skip
    validate_options(options)
    report = certify(options)
    (ran,) = [c for c in report.checks if c.id == "throwaway"]
    assert ran.status.value == "failed" and not report.certified
    assert report.reasons == ("throwaway failed: checked for forbidden.txt",)
    # Every format shows it; SARIF takes its title, explanation and security flag.
    out = {fmt: io.StringIO() for fmt in WRITERS}
    for fmt, stream in out.items():
        WRITERS[fmt].write(report, stream)
    assert "throwaway" in out["text"].getvalue() and "throwaway" in out["markdown"].getvalue()
    assert 'name="throwaway"' in out["junit"].getvalue()
    (rule,) = json.loads(out["sarif"].getvalue())["runs"][0]["tool"]["driver"]["rules"]
    assert rule["shortDescription"]["text"] == "No forbidden file: throwaway.forbidden"
    assert rule["help"]["text"].startswith("The project has no file called `forbidden.txt`.")
    assert "security" in rule["properties"]["tags"] and "security-severity" in rule["properties"]
    # The documentation is held to it too: checks/README.md lacks its section.
    problems = docs_problems(README.read_text(encoding="utf-8"), every_info())
    assert [p.check_id for p in problems] == ["throwaway"]


def test_a_check_that_cannot_decide_is_an_error_in_one_place(
    throwaway: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    project = tmp_path / "my-plugin"
    shutil.copytree(REPO / "tests" / "data" / "spec-flat" / "my-plugin", project)
    (project / "undecidable").write_text("")
    report = certify(CertifyOptions(project, only=("throwaway",), use_cache=False))
    (ran,) = [c for c in report.checks if c.id == "throwaway"]
    assert ran.status.value == "error" and ran.summary == "cannot tell, on purpose"
    assert [f.rule for f in ran.findings] == ["throwaway.error"]


def test_an_unregistered_check_is_unknown_to_the_policy_and_only(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('required = ["throwaway"]\n')
    with pytest.raises(ToolkitError, match="unknown check"):
        load_policy(REPO / "checks", policy_file)
    with pytest.raises(ToolkitError, match="--only: unknown check"):
        validate_options(CertifyOptions(REPO / "tests" / "data" / "spec-flat" / "my-plugin",
                                        only=("throwaway",)))  # fmt: skip


def test_the_readme_table_lists_every_check_with_its_title() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    table = [tuple(cell.strip() for cell in row.strip("|").split("|")) for row in rows]
    checks = [(f"`{info.id}`", info.title) for info in every_info()]
    assert [row for row in table if row[0] in {c[0] for c in checks}] == checks


def test_checks_readme_names_every_rule_id_the_checks_emit() -> None:
    """Every rule id written in the checks' code (a literal "audit.range", not a family
    such as f"interface.{code}", which the sections name as `interface.<mypy code>`)."""
    import re

    ids = "|".join(info.id for info in every_info())
    literal = re.compile(rf"""["']((?:{ids})\.[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*)["']""")
    code = REPO / "toolkit" / "aitbc" / "plugin_toolkit" / "certify"
    emitted = {
        rule
        for path in [*code.rglob("*.py"), *(REPO / "toolkit/aitbc/plugins/sandbox").glob("*.py")]
        for rule in literal.findall(path.read_text(encoding="utf-8"))
        if not rule.endswith(".py")
    }
    assert len(emitted) > 40, emitted
    documented = README.read_text(encoding="utf-8")
    assert sorted(r for r in emitted if f"`{r}`" not in documented) == []
