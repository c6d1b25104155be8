"""Every bad plugin in tests/corpus fails exactly the check it targets, with the reason
named; every good generated plugin is certified.  Real tools, real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.model import CheckStatus
from aitbc.plugin_toolkit.certify.runner import CertifyOptions, certify
from certify_support import Case, load_cases, make_project, materialize
from conftest import FAST_POLICY, VULN_DB

pytestmark = pytest.mark.integration
CASES = load_cases()


@pytest.fixture(scope="module")
def fast_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(FAST_POLICY)
    return path


def run(project: Path, policy: Path) -> dict[str, Any]:
    report = certify(CertifyOptions(project=project, policy_file=policy, vuln_db=VULN_DB))
    return report.as_dict()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_plugin_fails_only_its_check(case: Case, tmp_path: Path, fast_policy: Path) -> None:
    report = run(materialize(case, tmp_path), fast_policy)
    checks = {c["id"]: c for c in report["checks"]}
    target = checks[case.fails]
    assert report["certified"] is False
    assert target["status"] == case.status, target
    said = " ".join([target["summary"], *(f["message"] for f in target["findings"])])
    assert case.reason in said, said
    assert all(part in said for part in case.also), said
    if case.at is not None:
        where = [f"{f['file']}:{f['line']}" for f in target["findings"]]
        assert case.at in where, where
    assert any(case.fails in reason for reason in report["reasons"])
    if case.blocked_by is not None:  # the root cause named once, at its check
        for cid in case.collateral:
            assert checks[cid]["summary"].startswith(f"blocked by {case.blocked_by}: "), checks[cid]
            assert checks[cid]["findings"] == [], checks[cid]
    others = {cid: c["status"] for cid, c in checks.items()
              if cid != case.fails and cid not in case.collateral}  # fmt: skip
    assert set(others.values()) <= {CheckStatus.PASSED.value}, others


@pytest.mark.parametrize("kind", ["base", "cli", "blockchain", "ai"])
def test_good_generated_plugins_are_certified(kind: str, tmp_path: Path, fast_policy: Path) -> None:
    report = run(make_project(f"good-{kind}", kind, tmp_path), fast_policy)
    assert report["certified"] is True, report["reasons"]
    assert {c["status"] for c in report["checks"]} == {"passed"}
    assert report["plugin"]["kind"] == kind
    assert report["registry_entry"]["checksum"] == f"sha256:{report['artifacts'][0]['sha256']}"
    assert_contained_and_quiet(report)


def assert_contained_and_quiet(report: dict[str, Any]) -> None:
    """A good plugin is untouched by the sandbox: fully contained, and it did nothing a
    plugin must declare."""
    assert report["isolation"]["level"] == "full", report["isolation"]
    assert set(report["behaviour"]) == {"build", "import", "lifecycle", "tests"}
    for phase, record in report["behaviour"].items():
        assert record["observed"], phase
        acted = {k: v for k, v in record.items() if isinstance(v, list) and v}
        assert acted == {}, (phase, acted)


def test_hand_written_spec_layout_is_certified(tmp_path: Path, fast_policy: Path) -> None:
    """The spec's flat Plugin Structure with only setup.py and requirements.txt."""
    import shutil

    from conftest import REPO

    project = tmp_path / "my-plugin"
    shutil.copytree(REPO / "tests" / "data" / "spec-flat" / "my-plugin", project)
    report = run(project, fast_policy)
    assert report["certified"] is True, report["reasons"]
    assert report["plugin"]["entry_point"] == "my_plugin.plugin:MyPlugin"
    assert_contained_and_quiet(report)
