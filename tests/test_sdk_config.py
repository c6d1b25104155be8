"""Manager configuration: the spec's YAML form, its schema, and environment values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aitbc.plugins import ConfigError, ManagerConfig, SecretStr
from aitbc.plugins.config import parse_yaml
from aitbc.plugins.secrets import RedactingFilter, Redactor
from hypothesis import given
from hypothesis import strategies as st

SPEC_EXAMPLE = """
plugins:
  agent-cli:
    enabled: true
    priority: 10
    config:
      default_agent_type: "chat"
      max_agents: 100
  bitcoin-integration:
    enabled: true
    priority: 20
    config:
      rpc_url: "http://localhost:8332"
      rpc_user: "bitcoin"
      rpc_password: "password"
  translation-ai:
    enabled: false
    priority: 30
    config:
      provider: "openai"
      api_key: "${OPENAI_API_KEY}"
plugin_paths:
  - "/opt/aitbc/plugins"
  - "~/.aitbc/plugins"
  - "./plugins"
auto_load: true
health_check_interval: 60
"""


def test_spec_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "aitbc.yaml"
    path.write_text(SPEC_EXAMPLE)
    config = ManagerConfig.from_file(path, environ={})
    assert list(config.plugins) == ["agent-cli", "bitcoin-integration", "translation-ai"]
    assert config.plugins["agent-cli"].priority == 10
    assert config.plugins["translation-ai"].enabled is False
    assert config.plugin_paths[0] == Path("/opt/aitbc/plugins")
    assert config.plugin_paths[1] == Path.home() / ".aitbc/plugins"  # ~ expanded
    assert config.plugin_paths[2] == tmp_path / "plugins"  # relative to the file
    assert config.auto_load is True and config.health_check_interval == 60
    assert config.lifecycle_timeout == 30


def test_disabled_plugins_missing_variable_is_not_an_error_until_loaded() -> None:
    config = ManagerConfig.from_mapping(parse_yaml(SPEC_EXAMPLE), environ={})
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set") as info:
        config.plugin_config("translation-ai", Redactor(), environ={})
    assert info.value.where == "plugins.translation-ai.config.api_key"


def test_environment_values_are_secret_strings() -> None:
    config = ManagerConfig.from_mapping(parse_yaml(SPEC_EXAMPLE), environ={})
    redactor = Redactor()
    values = config.plugin_config("translation-ai", redactor, {"OPENAI_API_KEY": "sk-topsecret"})
    key = values["api_key"]
    assert isinstance(key, SecretStr) and key == "sk-topsecret"
    assert "sk-topsecret" not in repr(values) and "***" in repr(values)
    assert f"{key}" == "sk-topsecret"  # usable as a string
    assert redactor.text("token sk-topsecret used") == "token *** used"
    assert values["provider"] == "openai" and not isinstance(values["provider"], SecretStr)


def test_partial_substitution_and_dollar_escape() -> None:
    config = ManagerConfig.from_mapping(
        {"plugins": {"p": {"enabled": True, "config": {"h": "Bearer ${T}", "lit": "$${T}"}}}}
    )
    values = config.plugin_config("p", Redactor(), {"T": "abc123"})
    assert values["h"] == "Bearer abc123" and isinstance(values["h"], SecretStr)
    assert values["lit"] == "${T}"


def test_redacting_filter_masks_formatted_log_messages(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor(["hunter2"])
    logger = logging.getLogger("aitbc.test.redaction")
    logger.addFilter(RedactingFilter(redactor))
    with caplog.at_level(logging.INFO, logger="aitbc.test.redaction"):
        logger.info("password is %s", SecretStr("hunter2"))
        logger.info(f"again: {SecretStr('hunter2')}")
    assert "hunter2" not in caplog.text
    assert caplog.text.count("***") == 2


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"plugins": {"agent-cli": {"priority": 5}}}, "config.plugins.agent-cli"),
        ({"plugins": {"agent-cli": {"enabled": "yes"}}}, "config.plugins.agent-cli.enabled"),
        ({"plugins": {"agent-cli": {"enabled": True, "priority": 0}}}, "priority"),
        ({"plugins": {"agent-cli": {"enabled": True, "priority": 101}}}, "priority"),
        ({"plugins": {"1bad": {"enabled": True}}}, "config.plugins"),
        ({"plugins": {"under_score": {"enabled": True}}}, "config.plugins"),
        ({"plugins": {"x": {"enabled": True, "config": []}}}, "config.plugins.x.config"),
        ({"plugins": {"x": {"enabled": True, "dependencies": ["Bad Name"]}}}, "dependencies[0]"),
        ({"plugin_paths": "/opt"}, "config.plugin_paths"),
        ({"auto_load": "true"}, "config.auto_load"),
        ({"health_check_interval": 0}, "config.health_check_interval"),
        ({"lifecycle_timeout": -1}, "config.lifecycle_timeout"),
        ({"plugin_paths": ["${NOPE_NOT_SET}/x"]}, "config.plugin_paths[0]"),
        ({"plugins": {1: {"enabled": True}}}, "config.plugins"),
        ({"plugins": {"a": {"enabled": True, "config": {2: "x"}}}}, "config.plugins.a.config"),
    ],
)
def test_invalid_configuration_names_where(document: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        ManagerConfig.from_mapping(document, environ={})
    assert where in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("plugins:\n  a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: not valid YAML") as info:
        ManagerConfig.from_file(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        ManagerConfig.from_file(tmp_path / "nope.yaml")


def test_non_mapping_document_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        ManagerConfig.from_mapping(["plugins"])  # type: ignore[arg-type]


# -- property-based --------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["plugins", "plugin_paths", "auto_load",
                                        "health_check_interval", "lifecycle_timeout", "other"]),
                       json_values, max_size=4))  # fmt: skip
def test_arbitrary_documents_raise_only_config_error(document: dict[str, Any]) -> None:
    try:
        ManagerConfig.from_mapping(document, environ={})
    except ConfigError as exc:
        assert "\n" not in str(exc)


@given(st.text(max_size=200))
def test_arbitrary_yaml_text_raises_only_config_error(text: str) -> None:
    try:
        document = parse_yaml(text)
        ManagerConfig.from_mapping(document if isinstance(document, dict) else None, environ={})
    except ConfigError:
        pass


@given(
    template=st.text(alphabet=st.sampled_from(list("ab$ {}_XY")), max_size=30),
    value=st.text(min_size=1, max_size=10),
)
def test_env_expansion_is_total(template: str, value: str) -> None:
    config = ManagerConfig.from_mapping(
        {"plugins": {"p": {"enabled": True, "config": {"v": template}}}}
    )
    try:
        result = config.plugin_config("p", Redactor(), {"X": value, "XY": value})
    except ConfigError as exc:
        assert "is not set" in str(exc)
    else:
        assert isinstance(result["v"], str)
