"""A plugin kind is one fact: the SDK's PLUGIN_KINDS names them, the plugin template has
one folder per kind (its one registration line is the choice in copier.yml), and
`new --kind`, the metadata probe and reports take them from there."""

from __future__ import annotations

from typing import Any

import yaml
from aitbc.plugin_toolkit.scaffold.sources import template_kinds
from aitbc.plugins import PLUGIN_KINDS, AIPlugin, BasePlugin, CLIPlugin, kind_of
from click.testing import CliRunner
from conftest import REPO

TEMPLATE = REPO / "templates" / "plugin"


def test_the_template_renders_every_sdk_kind_and_no_other() -> None:
    assert set(template_kinds()) == set(PLUGIN_KINDS)
    assert template_kinds()[0] == "base"
    copier: dict[str, Any] = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    assert set(copier["kind"]["choices"].values()) == set(PLUGIN_KINDS)
    for kind in PLUGIN_KINDS:
        parts = {p.name for p in (TEMPLATE / "includes" / "kinds" / kind).iterdir()}
        assert parts == {"docs.jinja", "kind.jinja", "plugin.jinja", "tests.jinja"}, kind


def test_new_offers_exactly_the_template_kinds() -> None:
    from aitbc.plugin_toolkit.cli import cli

    result = CliRunner().invoke(cli, ["new", "--help"])
    assert f"[{'|'.join(template_kinds())}]" in result.output


def test_kind_of_names_the_most_specific_interface() -> None:
    class Both(CLIPlugin, AIPlugin):
        pass

    assert kind_of(BasePlugin) == "base"
    assert kind_of(CLIPlugin) == "cli"
    assert kind_of(AIPlugin) == "ai"
    assert kind_of(Both) in {"cli", "ai"}
    assert kind_of(int) == "base"
