"""PluginMetadata.permissions: the grammar, canonical form, matching rules, and where the
list travels (to_dict, the registry schema and entry, the metadata check)."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aitbc.plugin_toolkit.certify.base import CheckContext, Lazy, PluginInfo
from aitbc.plugin_toolkit.certify.checks.metadata import MetadataCheck
from aitbc.plugin_toolkit.certify.model import CheckStatus
from aitbc.plugin_toolkit.certify.policy import load_policy
from aitbc.plugin_toolkit.certify.probes import MetadataProbe
from aitbc.plugin_toolkit.certify.registry_entry import registry_entry
from aitbc.plugins import (
    BasePlugin,
    MetadataError,
    Permission,
    Permissions,
    PluginMetadata,
    PluginRegistry,
    RegistryEntry,
    RegistryError,
)
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

VALID: dict[str, Any] = dict(
    name="my-plugin", version="1.0.0", description="d", author="a", license="MIT"
)
INFO = PluginInfo("my-plugin", "1.0.0", "aitbc-my-plugin", "my_plugin", "my_plugin.plugin:P")


def refused(value: object, field_name: str = "permissions") -> MetadataError:
    with pytest.raises(MetadataError) as info:
        Permissions.parse(value, field_name)
    assert info.value.field == field_name
    assert "\n" not in str(info.value)  # one line, whatever the entry holds
    return info.value


# -- parsing --------------------------------------------------------------------------------
def test_bare_kinds_and_targets_parse() -> None:
    parsed = Permissions.parse(["network", "subprocess:git", "filesystem:/var/lib/x"])
    assert parsed.entries == (
        Permission("network", None),
        Permission("subprocess", "git"),
        Permission("filesystem", "/var/lib/x"),
    )
    assert Permissions.parse(None) == Permissions() == Permissions.parse([])
    assert Permissions.parse(("network",)).as_list() == ["network"]


def test_entries_are_canonicalised() -> None:
    parsed = Permissions.parse(
        ["network:API.Example.COM:0443", "network:[0:0::1]:*", "network:[::FFFF:127.0.0.1]:1"]
    )
    assert parsed.as_list() == [
        "network:api.example.com:443",
        "network:[::1]:*",
        "network:[::ffff:127.0.0.1]:1",
    ]
    assert Permissions.parse(parsed.as_list()) == parsed


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("", "empty entry"), ("Network", "unknown kind 'Network'"),
        ("net", "unknown kind"), ("shell:ls", "unknown kind 'shell'"),
        (":network", "unknown kind ''"), ("network:", "empty target"),
        ("subprocess:", "empty target"), ("filesystem:", "empty target"),
        ("network:example.com", "needs <host>:<port>"), ("network::443", "empty host"),
        ("network:[]:443", "empty host"), ("network:example.com:", "empty port"),
        ("network:h:0", "outside 1..65535"), ("network:h:65536", "outside 1..65535"),
        ("network:h:" + "9" * 900, "outside 1..65535"), ("network:h:-1", "not a number"),
        ("network:h:http", "not a number"),
        ("network:h:\u0664\u0664\u0663", "not a number"),  # Arabic-Indic digits
        ("network:::1:443", "in brackets"), ("network:[::1:443", "not closed"),
        ("network:[::1]", "needs :<port>"), ("network:[::1]443", "needs :<port>"),
        ("network:[127.0.0.1]:443", "not an IPv6 address"),
        ("network:[fe80::1%eth0]:443", "must hold an IPv6 address"),
        ("network:ex/ample:1", "may hold only"),
        ("network:\u212aelvin.example:1", "may hold only"),  # the Kelvin sign lowercases to k
        ("network:" + "a" * 254 + ":1", "longer than 253"),
        ("subprocess:bin/git", "not a relative path"), ("subprocess:./git", "not a relative path"),
        ("subprocess:~/bin/git", "~ is not expanded"), ("subprocess:..", "not a program name"),
        ("subprocess:/usr/bin/../bin/git", ". or .."),
        ("filesystem:var/lib/x", "must be an absolute path"),
        ("filesystem:./x", "must be an absolute path"), ("filesystem:~/data", "~ is not expanded"),
        ("filesystem:~", "~ is not expanded"), ("filesystem:/var/lib/", "trailing /"),
        ("filesystem://x", "empty component"), ("filesystem:/var//lib", "empty component"),
        ("filesystem:/var/../etc", ". or .."), ("filesystem:/var/./lib", ". or .."),
        (" network", "whitespace"), ("network ", "whitespace"),
        ("network\n", "whitespace"), ("network:exa mple.com:1", "whitespace"),
        ("filesystem:/a\tb", "whitespace"), ("filesystem:/a\u00a0b", "whitespace"),
        ("filesystem:/a\x00b", "control character"),
        ("filesystem:/" + "x" * 2000, "longer than 1024"),
    ],
)  # fmt: skip
def test_bad_entries_are_refused_naming_the_entry(entry: str, reason: str) -> None:
    error = refused(["network:ok.example:1", entry])
    assert reason in str(error)
    assert repr(entry)[:40] in str(error)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("network", "must be a list of strings, not str"),
        ({"network"}, "must be a list of strings, not set"),
        (42, "must be a list of strings, not int"),
        ([1], "entries must be strings, not int"),
        (["network", None], "entries must be strings, not NoneType"),
        (["network", "network"], "'network': duplicate entry"),
        (["network:a.example:443", "network:A.example:443"], "the same as 'network:a.example:443'"),
        (["filesystem:/x", "subprocess:git", "filesystem:/x"], "duplicate entry"),
    ],
)
def test_bad_lists_are_refused(value: object, reason: str) -> None:
    assert reason in str(refused(value, "perms"))


# -- property-based: the canonical form round-trips, bad input raises MetadataError only ---
def ipv6_text(address: ipaddress.IPv6Address) -> str:
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else address.compressed


hosts = st.one_of(
    st.from_regex(r"\A[a-z0-9_.*?-]{1,30}\Z"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{ipv6_text(a)}]"),  # type: ignore[arg-type]
    st.from_regex(r"\A[0-9a-f:]{0,8}[*?][0-9a-f:.*?]{0,8}\Z").map(lambda s: f"[{s}]"),
)
ports = st.one_of(st.integers(1, 65535).map(str), st.just("*"))
segment = st.text(
    st.one_of(st.characters(categories=["L", "N"]), st.sampled_from("._-+*?@:[]~")),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in {".", ".."})
absolute = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
bare_program = segment.filter(lambda s: not s.startswith("~"))
valid_entries = st.one_of(
    st.sampled_from(["network", "subprocess", "filesystem", "filesystem:/"]),
    st.builds(lambda h, p: f"network:{h}:{p}", hosts, ports),
    st.builds(lambda p: f"subprocess:{p}", st.one_of(bare_program, absolute)),
    absolute.map(lambda p: f"filesystem:{p}"),
)


@given(st.lists(valid_entries, unique=True, max_size=6))
def test_canonical_entries_round_trip_and_the_schema_accepts_them(entries: list[str]) -> None:
    parsed = Permissions.parse(entries)
    assert parsed.as_list() == entries
    assert Permissions.parse(parsed.as_list()) == parsed
    PluginRegistry.validate({"plugins": [{**VALID, "permissions": entries}]})


whitespace = st.sampled_from([" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000"])
invalid_entries = st.one_of(
    st.builds(lambda e, w, i: e[:i] + w + e[i:], valid_entries, whitespace, st.integers(0, 40)),
    st.builds(
        lambda k, t: f"{k}{t}",
        st.from_regex(r"\A[A-Za-z_]{0,12}\Z").filter(
            lambda k: k not in {"network", "subprocess", "filesystem"}
        ),
        st.sampled_from(["", ":", ":x", ":/x", ":h:1"]),
    ),
    st.sampled_from(["network:", "subprocess:", "filesystem:"]),
    st.builds(
        lambda h, p: f"network:{h}:{p}", hosts, st.one_of(st.just(0), st.integers(min_value=65536))
    ),
    st.builds(lambda h: f"network:{h}", hosts),
    st.builds(lambda s: f"filesystem:{s}", segment.filter(lambda s: not s.startswith("/"))),
    st.builds(lambda a, b: f"subprocess:{a}/{b}", bare_program, segment),
)


@given(st.lists(valid_entries, max_size=3), invalid_entries)
def test_invalid_entries_raise_metadata_error_naming_field_and_entry(
    good: list[str], bad: str
) -> None:
    error = refused([*dict.fromkeys(good), bad], "permissions")
    assert repr(bad)[:40] in str(error)


noise = st.text(alphabet="networksubpcfily:[]/*?0123456789abcdef.~ \t-", max_size=30)


@given(
    st.one_of(
        st.none(),
        st.integers(),
        noise,
        st.lists(st.one_of(noise, st.text(max_size=20), st.integers(), st.none()), max_size=4),
    )
)
def test_arbitrary_input_raises_only_metadata_error(value: object) -> None:
    try:
        parsed = Permissions.parse(value, "p")
    except MetadataError as exc:
        assert exc.field == "p"
    else:  # whatever is accepted is canonical on a second pass and passes the schema
        assert Permissions.parse(parsed.as_list()) == parsed
        PluginRegistry.validate({"plugins": [{**VALID, "permissions": parsed.as_list()}]})


# -- matching ---------------------------------------------------------------------------------
allows = Permissions.parse


def test_nothing_declared_allows_nothing() -> None:
    none = Permissions()
    assert not none.allows_connect("127.0.0.1", 9)
    assert not none.allows_exec("/usr/bin/git")
    assert not none.allows_write("/etc/x")


def test_bare_kinds_allow_anything_of_their_kind_only() -> None:
    every = allows(["network", "subprocess", "filesystem"])
    assert every.allows_connect("/run/x.sock", None) and every.allows_connect("@abstract", None)
    assert every.allows_connect("10.0.0.1", None) and every.allows_exec("relative/tool")
    assert every.allows_write("relative/path") and every.allows_write("/etc/x")
    assert not allows(["network"]).allows_exec("/bin/sh")
    assert not allows(["subprocess"]).allows_write("/etc/x")


def test_names_match_literal_text_only_no_dns() -> None:
    named = allows(["network:api.example.com:443"])
    assert named.allows_connect("api.example.com", 443)
    assert named.allows_connect("API.Example.com", 443)  # names are case-insensitive
    assert not named.allows_connect("api.example.com", 80)
    assert not named.allows_connect("93.184.216.34", 443)  # the name's address: no DNS
    assert not allows(["network:localhost:8080"]).allows_connect("127.0.0.1", 8080)


def test_host_wildcards_and_ports() -> None:
    wild = allows(["network:*.example.com:*"])
    assert wild.allows_connect("a.example.com", 1) and wild.allows_connect("a.b.example.com", 80)
    assert wild.allows_connect("a.example.com", None)  # a * port allows an unknown one
    assert not wild.allows_connect("example.com", 1) and not wild.allows_connect("aexample.com", 1)
    assert allows(["network:10.0.0.?:22"]).allows_connect("10.0.0.7", 22)
    assert not allows(["network:10.0.0.?:22"]).allows_connect("10.0.0.17", 22)
    any_host = allows(["network:*:5432"])
    assert any_host.allows_connect("10.1.2.3", 5432) and any_host.allows_connect("::1", 5432)
    assert not any_host.allows_connect("10.1.2.3", 5433)
    assert not any_host.allows_connect("10.1.2.3", None)  # a fixed port needs a known one


def test_ip_addresses_compare_by_value() -> None:
    v4 = allows(["network:127.0.0.1:8080"])
    assert v4.allows_connect("127.0.0.1", 8080)
    assert v4.allows_connect("::ffff:127.0.0.1", 8080)  # IPv4-mapped is the IPv4 address
    assert not v4.allows_connect("127.0.0.2", 8080)
    v6 = allows(["network:[::1]:*"])
    for seen in ("::1", "[::1]", "0:0:0:0:0:0:0:1", "::0001", "::1%lo"):
        assert v6.allows_connect(seen, 9), seen
    assert not v6.allows_connect("::2", 9) and not v6.allows_connect("127.0.0.1", 9)
    link_local = allows(["network:[fe80::*]:22"])
    assert link_local.allows_connect("fe80::1%eth0", 22)
    assert not link_local.allows_connect("fe81::1", 22)
    assert allows(["network:[::ffff:10.0.0.1]:1"]).allows_connect("::ffff:a00:1", 1)


def test_unix_sockets_need_bare_network() -> None:
    wide = allows(["network:*:*"])
    assert wide.allows_connect("127.0.0.1", 1)
    for unix in ("/run/docker.sock", "@abstract", ""):
        assert not wide.allows_connect(unix, None)
        assert allows(["network"]).allows_connect(unix, None)


def test_programs_by_basename_or_absolute_path() -> None:
    git = allows(["subprocess:git"])
    assert git.allows_exec("/usr/bin/git") and git.allows_exec("/opt/tools/git")
    assert not git.allows_exec("/usr/bin/gitk") and not git.allows_exec("/usr/bin/git-lfs")
    assert allows(["subprocess:python3*"]).allows_exec("/usr/bin/python3.11")
    absolute = allows(["subprocess:/usr/bin/git"])
    assert absolute.allows_exec("/usr/bin/git") and absolute.allows_exec("/usr/lib/../bin/git")
    assert not absolute.allows_exec("/usr/local/bin/git") and not absolute.allows_exec("git")
    assert allows(["subprocess:/usr/bin/*"]).allows_exec("/usr/bin/ls")
    assert not allows(["subprocess:/usr/bin/*"]).allows_exec("/bin/ls")
    assert not git.allows_exec("")


def test_paths_match_at_or_below_never_beside() -> None:
    data = allows(["filesystem:/var/lib/x"])
    assert data.allows_write("/var/lib/x") and data.allows_write("/var/lib/x/y")
    assert data.allows_write("/var/lib/x/y/z") and data.allows_write("//var/lib/x/y")
    assert not data.allows_write("/var/lib/xy") and not data.allows_write("/var/lib")
    assert not data.allows_write("/var/lib/x/../../../etc/passwd")  # folded before matching
    assert not data.allows_write("var/lib/x/y")  # relative: only bare filesystem allows
    logs = allows(["filesystem:/tmp/*.log"])
    assert logs.allows_write("/tmp/a.log") and logs.allows_write("/tmp/a.log/inner")
    assert not logs.allows_write("/tmp/a.txt")
    assert allows(["filesystem:/"]).allows_write("/etc/x")
    literal = allows(["filesystem:/data/[x]"])  # brackets are literal, not a class
    assert literal.allows_write("/data/[x]/f") and not literal.allows_write("/data/x/f")


# -- PluginMetadata, the registry, the metadata check --------------------------------------
def test_metadata_defaults_validates_and_stores_canonical_permissions() -> None:
    assert PluginMetadata(**VALID).permissions == []
    assert PluginMetadata(**VALID, permissions=None).permissions == []  # type: ignore[arg-type]
    meta = PluginMetadata(**VALID, permissions=["network:API.example.com:443", "subprocess"])
    assert meta.permissions == ["network:api.example.com:443", "subprocess"]
    assert meta.to_dict()["permissions"] == meta.permissions
    assert meta.permission_set().allows_exec("/bin/anything")
    meta.permissions.append("bogus")  # the list is mutable: the parsed view checks again
    with pytest.raises(MetadataError, match="'bogus'"):
        meta.permission_set()


@pytest.mark.parametrize("bad", [["network:h:0"], ["filesystem:data"], "network", [3]])
def test_metadata_refuses_bad_permissions(bad: object) -> None:
    with pytest.raises(MetadataError) as info:
        PluginMetadata(**VALID, permissions=bad)  # type: ignore[arg-type]
    assert info.value.field == "permissions"


def test_the_registry_entry_carries_permissions_when_declared() -> None:
    declared = PluginMetadata(**VALID, permissions=["network:[::1]:*", "filesystem:/srv/x"])
    entry = registry_entry(declared.to_dict(), INFO, "ab" * 32)
    assert entry["permissions"] == ["network:[::1]:*", "filesystem:/srv/x"]
    assert "permissions" not in registry_entry(PluginMetadata(**VALID).to_dict(), INFO, "ab" * 32)
    again = RegistryEntry.from_dict(entry)  # an extra the registry keeps, round trip
    assert again.to_dict()["permissions"] == entry["permissions"]


@pytest.mark.parametrize(
    "bad",
    [
        ["network:h:0"],
        ["network:h:65536"],
        ["network:h:0443"],
        ["network:h"],
        ["shell"],
        ["filesystem:relative"],
        ["subprocess:bin/git"],
        ["network:a b:1"],
        ["network", "network"],
        "network",
        [1],
    ],
)
def test_the_schema_refuses_bad_permissions(bad: object) -> None:
    with pytest.raises(RegistryError, match="permissions"):
        PluginRegistry.validate({"plugins": [{**VALID, "permissions": bad}]})


def load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "metadata_probe", REPO / "checks" / "metadata_probe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BadPermissions(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(**{**VALID, "permissions": ["network", "network:db.local:99999"]})

    async def initialize(self) -> bool:
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True


class FakeEntryPoint:
    name = "my-plugin"
    value = "my_plugin.plugin:P"

    def load(self) -> type[BasePlugin]:
        return BadPermissions


def test_the_metadata_check_names_a_bad_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = load_probe()  # the very script certification runs in the plugin environment
    monkeypatch.setattr(probe, "entry_points", lambda group: [FakeEntryPoint()])
    answer = MetadataProbe.from_answer(probe.main("my-plugin"))
    context = CheckContext(
        project=tmp_path, workdir=tmp_path, scratch=tmp_path,
        policy=load_policy(REPO / "checks"), checks_dir=REPO / "checks",
        wheel=tmp_path / "p.whl", plugin=INFO, metadata_probe=Lazy(lambda: answer),
    )  # fmt: skip
    checked = MetadataCheck().run(context)
    assert checked.status is CheckStatus.FAILED
    [finding] = checked.findings
    assert finding.rule == "metadata.invalid"
    assert "permissions: 'network:db.local:99999': the port 99999 is outside" in finding.message
