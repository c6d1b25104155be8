"""The sandbox and the lifecycle check share one set of facts: the policy holds the
sandbox's own Limits, problem kinds are defined once (and a worker cannot invent one),
and the documented steps and rules are the ones the code has."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.policy import load_policy
from aitbc.plugin_toolkit.errors import ToolkitError
from aitbc.plugins.sandbox import Limits
from aitbc.plugins.sandbox.protocol import PROBLEM_KINDS, Problem, ProtocolError
from aitbc.plugins.sandbox.worker import load_steps
from conftest import REPO

CHECKS = REPO / "checks"
CONFORMANCE_README = (CHECKS / "conformance" / "README.md").read_text(encoding="utf-8")


def test_the_policy_holds_the_sandboxes_limits() -> None:
    policy = load_policy(CHECKS)
    assert isinstance(policy.lifecycle, Limits)
    assert policy.lifecycle == Limits(step_timeout_s=10, total_timeout_s=60, memory_mb=1024,
                                      cpu_s=30)  # fmt: skip


@pytest.mark.parametrize("key", ["step_timeout_s", "total_timeout_s", "memory_mb", "cpu_s"])
def test_a_bad_limit_is_refused_once_by_the_sandbox_and_named_by_the_policy(
    tmp_path: Path, key: str
) -> None:
    with pytest.raises(ValueError, match=key):
        replace(Limits(), **{key: 0})
    path = tmp_path / "policy.toml"
    path.write_text(f"[lifecycle]\n{key} = 0\n")
    with pytest.raises(ToolkitError, match=rf"lifecycle\.{key} must be positive"):
        load_policy(CHECKS, path)


def test_a_worker_cannot_report_a_kind_of_problem_that_does_not_exist() -> None:
    assert Problem.from_dict({"kind": "hang", "message": "m"}).kind == "hang"
    with pytest.raises(ProtocolError, match="unknown problem kind"):
        Problem.from_dict({"kind": "all-good", "message": "trust me"})


def test_every_problem_kind_is_a_documented_rule() -> None:
    rules = CONFORMANCE_README.split("## What fails the check", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`lifecycle\.([a-z.-]+)`", rules))
    assert documented == set(PROBLEM_KINDS)


def test_the_documented_steps_are_the_conformance_modules_steps() -> None:
    steps = [name for name, _ in load_steps(CHECKS / "conformance" / "lifecycle.py")]
    table = CONFORMANCE_README.split("## The steps", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    documented = [name.strip() for row in rows[1:] for name in row.split(",")]
    assert documented == steps
