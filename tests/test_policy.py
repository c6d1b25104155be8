"""The certification policy: an override replaces only what it sets, and any file at
all either loads or is refused with a ToolkitError naming the file (never a crash)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.checks import check_ids
from aitbc.plugin_toolkit.certify.policy import Policy, load_policy
from aitbc.plugin_toolkit.errors import ToolkitError
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

CHECKS = REPO / "checks"
KEYS = {
    "": ["required", "colour"],
    "security": ["severity", "confidence", "nosec_needs_reason", "unknown"],
    "audit": ["allow_incomplete"],
    "lifecycle": ["step_timeout_s", "total_timeout_s", "memory_mb", "cpu_s"],
    "limits": ["tool_timeout_s"],
}
VALUES = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["low", "medium", "high", "extreme", ""]),
    st.text(max_size=8),
    st.lists(st.sampled_from([*check_ids(), "speed"]), max_size=4),
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if "." in repr(value) or "e" in repr(value) else f"{value}.0"
    return json.dumps(value)  # ints, strings and lists of strings are TOML as JSON writes them


@st.composite
def policy_files(draw: st.DrawFn) -> str:
    lines = []
    for key in draw(st.lists(st.sampled_from(KEYS[""]), unique=True, max_size=2)):
        lines.append(f"{key} = {toml_value(draw(VALUES))}")
    for table in draw(st.lists(st.sampled_from(list(KEYS)[1:]), unique=True, max_size=4)):
        lines.append(f"[{table}]")
        for key in draw(st.lists(st.sampled_from(KEYS[table]), unique=True, max_size=4)):
            lines.append(f"{key} = {toml_value(draw(VALUES))}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=12)))
    return "\n".join(lines) + "\n"


@given(text=policy_files())
def test_any_policy_file_loads_or_is_refused_by_name(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("p") / "policy.toml"
    path.write_text(text, encoding="utf-8")
    try:
        policy = load_policy(CHECKS, path)
    except ToolkitError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(policy, Policy) and set(policy.required) <= set(check_ids())
    limits = policy.lifecycle
    assert limits.memory_mb > 0 and limits.step_timeout_s > 0 and policy.tool_timeout_s > 0
    assert policy.security_severity in ("low", "medium", "high")


def test_defaults_are_the_shipped_file() -> None:
    policy = load_policy(CHECKS)
    assert policy.required == check_ids()
    assert (policy.security_severity, policy.security_confidence) == ("medium", "medium")
    assert policy.lifecycle.memory_mb == 1024 and not policy.allow_incomplete_audit


def test_an_override_replaces_only_what_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[security]\nseverity = 'high'\n[lifecycle]\nmemory_mb = 512\n")
    policy = load_policy(CHECKS, path)
    assert policy.security_severity == "high" and policy.security_confidence == "medium"
    assert policy.lifecycle.memory_mb == 512
    assert policy.lifecycle.cpu_s == load_policy(CHECKS).lifecycle.cpu_s
    assert policy.source == str(path)
    assert policy.fingerprint() != load_policy(CHECKS).fingerprint()  # the cache sees it


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[lifecycle]\nmemory_mb = true\n", "lifecycle.memory_mb must be a number"),
        ("[audit]\nallow_incomplete = 'yes'\n", "audit.allow_incomplete has the wrong type"),
        ("[limits]\ntool_timeout_s = 0\n", "limits.tool_timeout_s must be positive"),
        ("[nonsense]\nx = 1\n", "unknown setting"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ToolkitError, match=said.replace(".", r"\.")):
        load_policy(CHECKS, path)
