"""The `interface` check's run-time half: the metadata probe's description of what a
host calls (the very script certification runs in the jail, run here on classes made in
this process), validated and compared with the SDK's own signatures.  Unit tests over
data first, then one real generated plugin through certify."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from aitbc.plugin_toolkit.certify.checks._signatures import (
    MethodSignature,
    Mismatch,
    Parameter,
    compare,
    interface_names,
    interface_of,
    parse_runtime,
    render,
    shipped_name,
)
from aitbc.plugin_toolkit.certify.runner import CertifyOptions, certify
from aitbc.plugins import (
    AIPlugin,
    BasePlugin,
    BlockchainPlugin,
    EventBus,
    PluginContext,
    PluginMetadata,
)
from aitbc.plugins.kinds import PLUGIN_KINDS
from certify_support import make_project
from conftest import REPO

HERE = Path(__file__).resolve()


def load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "metadata_probe", REPO / "checks" / "metadata_probe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBE = load_probe()


def line_of(text: str) -> int:
    """The first line of this file holding ``text`` (the definition, before its test)."""
    lines = HERE.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def mismatches(cls: type, kind: str = "base", plugin: object = None) -> list[Mismatch]:
    """What certification says of ``cls``: the probe's answer, as JSON carries it,
    validated and compared with the SDK's interface of ``kind``."""
    described = PROBE.runtime(cls, plugin, kind, interface_names(), BasePlugin)
    return compare(interface_of(kind), parse_runtime(described))


class Good(BasePlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(name="good", version="1.0.0", description="d", author="a",
                              license="MIT")  # fmt: skip

    async def initialize(self) -> bool:
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True


# -- the SDK's side: read from its classes -------------------------------------------------
def test_the_interface_is_the_sdks_own() -> None:
    for kind, cls in PLUGIN_KINDS.items():
        methods = interface_of(kind)
        assert set(cls.__abstractmethods__) <= set(methods), kind  # type: ignore[attr-defined]
        assert {"health_check", "handle_event", "get_config_schema"} <= set(methods)
        assert not {"status", "error_count", "_record_failure"} & set(methods)
    events = interface_of("blockchain")["get_contract_events"]
    assert render("get_contract_events", events) == (
        "async def get_contract_events(self, contract_address, event_name, from_block=...)"
    )
    assert render("get_metadata", interface_of("base")["get_metadata"]) == "def get_metadata(self)"
    assert set(interface_names()) == {n for kind in PLUGIN_KINDS for n in interface_of(kind)}


def test_render_marks_every_kind_of_parameter() -> None:
    kinds = [("a", "POSITIONAL_ONLY"), ("b", "POSITIONAL_OR_KEYWORD"), ("c", "KEYWORD_ONLY"),
             ("d", "VAR_KEYWORD")]  # fmt: skip
    signature = MethodSignature(tuple(Parameter(n, k, n == "c") for n, k in kinds), False)
    assert render("f", signature) == "def f(a, /, b, *, c=..., **d)"
    starred = MethodSignature((Parameter("self", "POSITIONAL_OR_KEYWORD"),
                               Parameter("args", "VAR_POSITIONAL"),
                               Parameter("k", "KEYWORD_ONLY")), True)  # fmt: skip
    assert render("g", starred) == "async def g(self, *args, k)"


# -- the comparison, over what the probe describes -----------------------------------------
def test_a_plugin_with_the_sdks_signatures_matches() -> None:
    assert mismatches(Good) == []


def test_compatible_variations_match() -> None:
    """Defaults, *args and **kwargs, a staticmethod without self: hosts' calls all bind."""

    class Loose(Good):
        async def start(self, force: bool = False) -> bool:
            return True

        async def handle_event(self, *args: Any, **kwargs: Any) -> None:
            return None

        @staticmethod
        def get_config_schema() -> dict[str, Any]:
            return {}

    assert mismatches(Loose) == []


class Split(Good):
    if TYPE_CHECKING:  # what mypy reads

        async def start(self) -> bool: ...

    else:  # what runs

        def start(self, force):
            return True


def test_a_type_checking_split_is_compared_as_it_runs() -> None:
    [found] = mismatches(Split)
    assert found.method == "start"
    assert found.message == (
        "`def start(self, force)` runs, but hosts call `async def start(self)`: it is not a "
        "coroutine function, and hosts await what it returns; it requires `force`, which "
        "hosts do not pass"
    )
    assert (found.file, found.line) == (str(HERE), line_of("def start(self, force):"))


def replaced_balance(self: object, account: str, chain: str) -> dict[str, Any]:
    return {}


def test_a_method_replaced_after_the_class_is_made() -> None:
    class Chain(Good, BlockchainPlugin):
        async def connect(self, config: dict[str, Any]) -> bool:
            return True

        async def get_balance(self, address: str) -> dict[str, Any]:
            return {}

        async def send_transaction(self, tx_data: dict[str, Any]) -> str:
            return ""

        async def get_contract_events(
            self, contract_address: str, event_name: str, from_block: int | None = None
        ) -> list[dict[str, Any]]:
            return []

    assert mismatches(Chain, "blockchain") == []
    # mypy would refuse each of these lines: that is the point, it never sees them run.
    setattr(Chain, "get_balance", replaced_balance)
    setattr(Chain, "connect", lambda self: True)
    setattr(Chain, "get_contract_events", lambda self, contract_address, event_name, since=0: [])
    by_method = {m.method: m for m in mismatches(Chain, "blockchain")}
    assert by_method["get_balance"].message == (
        "`def get_balance(self, account, chain)` runs, but hosts call `async def "
        "get_balance(self, address)`: it is not a coroutine function, and hosts await what it "
        "returns; it requires `chain`, which hosts do not pass"
    )
    assert (by_method["get_balance"].file, by_method["get_balance"].line) == (
        str(HERE), line_of("def replaced_balance(")
    )  # fmt: skip
    assert by_method["connect"].message.endswith("it takes no `config`, which hosts pass"), (
        by_method["connect"]
    )
    assert by_method["get_contract_events"].message.endswith(
        "it takes no `from_block=`, which hosts may pass by name"
    )
    assert set(by_method) == {"get_balance", "connect", "get_contract_events"}


def test_a_getattr_provided_method_is_not_implemented() -> None:
    class Lazy(BasePlugin):
        def get_metadata(self) -> PluginMetadata:
            raise NotImplementedError

        def __getattr__(self, name: str) -> Any:
            async def anything(*args: Any) -> bool:
                return True

            return anything

    found = mismatches(Lazy)
    assert [m.method for m in found] == ["initialize", "start", "stop", "cleanup"]
    assert found[1].message == (
        "`start` is not implemented at run time (the abstract method of "
        "aitbc.plugins.base.BasePlugin), but hosts call `async def start(self)`"
    )
    assert found[1].file is not None and found[1].file.endswith("aitbc/plugins/base.py")


def test_an_instance_attribute_shadows_the_method() -> None:
    class Shadowed(Good):
        def __init__(self, context: PluginContext) -> None:
            super().__init__(context)
            self.stop = lambda: True  # type: ignore[method-assign,assignment,return-value]

    context = PluginContext(config={}, data_dir="/nonexistent", temp_dir="/nonexistent",
                            logger=None, event_bus=EventBus())  # fmt: skip
    [found] = mismatches(Shadowed, plugin=Shadowed(context))
    assert found.message == (
        "`def stop()` runs, but hosts call `async def stop(self)`: it is not a coroutine "
        "function, and hosts await what it returns"
    )
    assert found.line == line_of("self.stop = lambda: True")


def test_async_where_the_sdk_is_sync_and_attributes_that_are_no_methods() -> None:
    class Odd(Good, AIPlugin):
        async def predict(self, input_data: dict[str, Any]) -> dict[str, Any]:
            return {}

        train = property(lambda self: None)

        async def get_model_info(self) -> dict[str, Any]:  # type: ignore[override]
            return {}

    found = {m.method: m.message for m in mismatches(Odd, "ai")}
    assert found == {
        "train": "`train` is a property, not a method, at run time, but hosts call "
        "`async def train(self, training_data)`",
        "get_model_info": "`async def get_model_info(self)` runs, but hosts call `def "
        "get_model_info(self)`: it is a coroutine function, and hosts use what it returns "
        "unawaited",
    }


def test_a_class_that_is_no_plugin_at_run_time() -> None:
    class NotAPlugin:
        async def start(self) -> bool:
            return True

    found = mismatches(NotAPlugin)
    assert found[0] == Mismatch("", "the class is not a BasePlugin subclass at run time")
    assert [m.method for m in found[1:]] == [
        "get_metadata",
        "initialize",
        "stop",
        "cleanup",
        "health_check",
        "handle_event",
        "get_config_schema",
    ]
    assert found[1].message == (
        "`get_metadata` is missing at run time, but hosts call `def get_metadata(self)`"
    )
    described = PROBE.runtime(len, None, "base", interface_names(), BasePlugin)
    assert compare(interface_of("base"), parse_runtime(described)) == [
        Mismatch("", "the entry point is a builtin_function_or_method, not a class at run time, "
                 "but hosts construct a BasePlugin")
    ]  # fmt: skip


def test_the_probe_describes_what_it_cannot_read() -> None:
    class Unreadable(Good):
        start = staticmethod(min)  # type: ignore[assignment]  # no signature to read

    [found] = mismatches(Unreadable)
    assert found.message == (
        "`start` (staticmethod) has no signature to read at run time, but hosts call "
        "`async def start(self)`"
    )

    async def looped(self: object) -> bool:
        return True

    looped.__wrapped__ = looped  # type: ignore[attr-defined]  # inspect.unwrap refuses it

    class Looped(Good):
        stop = looped

    [found] = mismatches(Looped)
    assert found.message.startswith("`stop` cannot be looked at at run time (ValueError: wrapper")
    assert found.message.endswith("), but hosts call `async def stop(self)`")


# -- the probe's answer is the plugin process's: its shape is checked ----------------------
def good_section() -> dict[str, Any]:
    described: dict[str, Any] = PROBE.runtime(Good, None, "base", interface_names(), BasePlugin)
    return described


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: [], "the runtime section is not an object"),
        (lambda s: {**s, "kind": "evil"}, "the kind 'evil' is not one of base, cli"),
        (lambda s: {**s, "subclass": "yes"}, "'subclass' is not true or false"),
        (lambda s: {**s, "methods": []}, "'methods' is not an object"),
        (lambda s: {**s, "methods": {}}, "the method 'get_metadata' is not described"),
        (lambda s: {**s, "methods": {**s["methods"], "start": 1}}, "the method 'start': not an"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {"found": 1}}},
         "the method 'start': 'found' is not true or false"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {
            **s["methods"]["start"], "parameters": [{"name": "x y", "kind": "KEYWORD_ONLY",
                                                     "default": False}]}}},
         "the method 'start': a parameter has no valid name and kind"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {
            **s["methods"]["start"], "parameters": [{"name": "a", "kind": "KEYWORD_ONLY",
                                                     "default": False}] * 2}}},
         "the method 'start': the parameters are not a signature: duplicate parameter name"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {
            **s["methods"]["start"], "parameters": [{"name": "a", "kind": "KEYWORD_ONLY",
                                                     "default": False}] * 65}}},
         "the method 'start': the parameters are not a list of at most 64"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {
            **s["methods"]["start"], "line": True}}}, "the method 'start': 'line' is not a"),
        (lambda s: {**s, "methods": {**s["methods"], "start": {
            **s["methods"]["start"], "file": "x" * 5000}}}, "the method 'start': 'file' is not"),
    ],
)  # fmt: skip
def test_a_malformed_section_is_refused(change: Any, reason: str) -> None:
    assert parse_runtime(good_section())  # the unchanged one is fine
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(")):
        parse_runtime(change(good_section()))


def test_where_the_code_runs_is_named_by_the_shipped_file() -> None:
    shipped = ("my_plugin/__init__.py", "my_plugin/plugin.py", "plugin.py")
    installed = "/env/lib/python3.12/site-packages/my_plugin/plugin.py"
    assert shipped_name(installed, shipped) == "my_plugin/plugin.py"
    assert shipped_name("/env/lib/python3.12/site-packages/aitbc/plugins/base.py", shipped) is None
    assert shipped_name("<string>", shipped) is None
    assert shipped_name(None, shipped) is None


# -- a real generated plugin, through certify ---------------------------------------------
SPLIT_START = """    if TYPE_CHECKING:  # mypy reads the SDK's signature

        async def start(self) -> bool: ...

    else:  # and this is what a host calls

        def start(self, force):
            return True

    async def stop(self) -> bool:"""


@pytest.mark.integration
def test_a_type_checking_split_fails_the_interface_check(tmp_path: Path) -> None:
    project = make_project("split-plugin", "base", tmp_path)
    plugin = project / "plugin.py"
    source = plugin.read_text(encoding="utf-8").replace(
        "from typing import Any", "from typing import TYPE_CHECKING, Any"
    )
    stop = "    async def stop(self) -> bool:"
    start, end = source.index("    async def start(self) -> bool:"), source.index(stop) + len(stop)
    plugin.write_text(source[:start] + SPLIT_START + source[end:], encoding="utf-8")
    report = certify(CertifyOptions(project=project, only=("interface",), use_cache=False))
    [check] = [c for c in report.checks if c.id == "interface"]
    assert check.status.value == "failed", check
    [finding] = check.findings
    assert finding.rule == "interface.runtime-signature"
    assert finding.message == (
        "`def start(self, force)` runs, but hosts call `async def start(self)`: it is not a "
        "coroutine function, and hosts await what it returns; it requires `force`, which "
        "hosts do not pass"
    )
    lines = plugin.read_text(encoding="utf-8").splitlines()
    assert finding.file == "plugin.py"
    assert finding.line == 1 + lines.index("        def start(self, force):")
    assert check.details["other_type_errors"] == 0  # mypy saw nothing wrong


def test_inspect_sees_what_the_probe_reports() -> None:
    """The probe follows the SDK's lifecycle wrapper to the plugin's own code."""
    wrapped = Good.__dict__["start"]
    assert hasattr(wrapped, "__aitbc_lifecycle_step__")
    described = PROBE.describe(Good, None, "start")
    assert described["line"] == inspect.unwrap(wrapped).__code__.co_firstlineno
    assert described["coroutine"] is True and described["owner"].endswith("Good")
