"""The security check's dynamic-code rule (checks/dynamic_code.py): each construct it
reports, a close construct it must not, and that no parseable source crashes it.  Unit
tests: the rule only reads source, so nothing here builds or runs a plugin."""

from __future__ import annotations

import ast
import textwrap
import warnings

import pytest
from aitbc.plugin_toolkit.certify.checks._bindings import Bindings
from aitbc.plugin_toolkit.certify.checks.dynamic_code import (
    ENCODED,
    EXEC,
    IMPORT,
    RULES,
    DynamicFinding,
    UnscannableSource,
    scan_source,
)
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st


def scan(source: str) -> list[DynamicFinding]:
    return scan_source(textwrap.dedent(source))


def only(source: str) -> DynamicFinding:
    [finding] = scan(source)
    return finding


# (construct, source, rule, line, words the message must hold)
FOUND = [
    ("getattr on builtins", "import builtins\ngetattr(builtins, 'exec')(code)\n",
     EXEC, 2, "`getattr(builtins, 'exec')` reaches exec() through the builtins"),
    ("builtins attribute", "import builtins\nbuiltins.eval(text)\n",
     EXEC, 2, "`builtins.eval` reaches eval()"),
    ("aliased builtins module", "import builtins as b\ngetattr(b, 'compile')\n",
     EXEC, 2, "reaches compile()"),
    ("builtins.__dict__", "import builtins\nbuiltins.__dict__['exec'](code)\n",
     EXEC, 2, "`builtins.__dict__['exec']` reaches exec()"),
    ("vars(builtins)", "import builtins\nrun = vars(builtins).get('eval')\n",
     EXEC, 2, "`vars(builtins).get('eval')` reaches eval()"),
    ("globals()['__builtins__']", "x = 1\nglobals()['__builtins__']['exec'](code)\n",
     EXEC, 2, "`globals()['__builtins__']['exec']` reaches exec()"),
    ("__builtins__ by name", "__builtins__.exec(code)\n", EXEC, 1, "reaches exec()"),
    ("sys.modules", "import sys\nsys.modules['builtins'].eval(code)\n", EXEC, 2, "reaches eval()"),
    ("an alias of the builtins' namespace",
     "ns = globals()['__builtins__']\n\n\ndef run(code):\n    ns['ex' + 'ec'](code)\n",
     EXEC, 5, "`ns['ex' + 'ec']` reaches exec()"),
    ("computed name on builtins", "import builtins\n\n\ndef pick(name):\n"
     "    return getattr(builtins, name)\n", EXEC, 5,
     "`getattr(builtins, name)` reads a builtin by a computed name: it may be exec"),
    ("name spelled in pieces", "def run(x):\n    return getattr(x, 'ex' + 'ec')\n",
     EXEC, 2, "spells the attribute name 'exec' out of pieces"),
    ("name reversed", "import os\ngetattr(os, 'metsys'[::-1])('id')\n",
     EXEC, 2, "spells the attribute name 'system'"),
    ("name joined", "import builtins\ngetattr(builtins, ''.join(['e', 'v', 'a', 'l']))\n",
     EXEC, 2, "reaches eval()"),
    ("name from a constant", "import builtins\nNAME = f'{\"ex\"}ec'\ngetattr(builtins, NAME)\n",
     EXEC, 3, "reaches exec()"),
    ("exec as a value", "run = exec\nrun(code)\n", EXEC, 1,
     "exec is used as a value (`run = exec`)"),
    ("eval mapped", "values = list(map(eval, lines))\n", EXEC, 1, "eval is used as a value"),
    ("from builtins import", "from builtins import exec as run\n",
     EXEC, 1, "`from builtins import exec` gives exec, eval or compile another name"),
    ("namespace as a whole", "import builtins\nfor name, value in vars(builtins).items():\n"
     "    pass\n", EXEC, 2, "reads the builtins' namespace as a whole"),
    ("import_module of a parameter", "import importlib\n\n\ndef load(name):\n"
     "    return importlib.import_module(name)\n", IMPORT, 5,
     "`importlib.import_module(name)`: importlib.import_module() is given a module name "
     "that is not a constant"),
    ("__import__ of input", "module = __import__(input())\n", IMPORT, 1, "__import__() is given"),
    ("aliased import_module", "from importlib import import_module as im\nim(NAMES[0])\n",
     IMPORT, 2, "`im(NAMES[0])`: importlib.import_module()"),
    ("exec of base64", "import base64\nexec(base64.b64decode(b'cHJpbnQoMSk='))\n", ENCODED, 2,
     "`exec(base64.b64decode(b'cHJpbnQoMSk='))`: exec() runs data decoded by "
     "base64.b64decode (line 2)"),
    ("nested decoders", "import base64, zlib\neval(zlib.decompress(base64.b64decode(s)))\n",
     ENCODED, 2, "eval() runs data decoded by"),
    ("through names", "import zlib\n\n\ndef go(blob):\n    raw = zlib.decompress(blob)\n"
     "    text = raw.decode()\n    exec(text)\n", ENCODED, 7,
     "`exec(text)`: exec() runs data decoded by zlib.decompress (line 5)"),
    ("a function returning it", "from base64 import b64decode as d\n\n\ndef payload():\n"
     "    return d('eA==')\n\n\nexec(compile(payload(), 'x', 'exec'))\n", ENCODED, 8,
     "returned by payload()"),
    ("marshal into FunctionType", "import marshal, codecs, types\n"
     "f = types.FunctionType(marshal.loads(codecs.decode(blob, 'hex')), {})\n",
     ENCODED, 2, "types.FunctionType() runs data decoded by marshal.loads (line 2)"),
    ("bytes.fromhex", "exec(bytes.fromhex('7072696e74283129'))\n", ENCODED, 1,
     "data decoded by bytes.fromhex"),
    ("global name", "import base64\n\n\ndef a():\n    global blob\n    blob = base64.b64decode(s)\n"
     "\n\ndef b():\n    exec(blob)\n", ENCODED, 10, "exec() runs data decoded by base64.b64decode"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "rule", "line", "words"), [c[1:] for c in FOUND],
                         ids=[c[0] for c in FOUND])  # fmt: skip
def test_each_construct_is_found_with_its_line(
    source: str, rule: str, line: int, words: str
) -> None:
    finding = only(source)
    assert (finding.rule, finding.line) == (rule, line)
    assert words in finding.message


# Close to the above, and harmless (or bandit's to judge): no finding.
NOT_FOUND = {
    "getattr with a literal on an object": "def mode(model):\n"
    "    return getattr(model, 'eval')()\n",
    "getattr with a computed name on an object": "def handler(self, event):\n"
    "    return getattr(self, 'on_' + event)\n",
    "another builtin by name": "import builtins\nshow = getattr(builtins, 'print')\n",
    "patching open in a test": "import builtins\n\n\ndef test(monkeypatch):\n"
    "    monkeypatch.setattr(builtins, 'open', None)\n",
    "decoded and only returned": "import base64\n\n\ndef token(s):\n"
    "    return base64.b64decode(s)\n",
    "decoded and stored": "import base64\n\n\ndef load(s):\n    data = base64.b64decode(s)\n"
    "    print(data)\n    return len(data)\n",
    "exec of a constant (bandit's B102)": "exec('x = 1')\n",
    "a method named eval": "model.eval()\nre.compile('x')\n",
    "compile imported from re": "from re import compile\nPATTERN = compile('a+')\n",
    "import_module of a constant": "import importlib\nPACKAGE = 'good_base'\n\n\ndef f():\n"
    "    return importlib.import_module(PACKAGE)\n",
    "import_module of an f-string of constants": "import importlib\nPACKAGE = 'p'\n"
    "importlib.import_module(f'{PACKAGE}.plugin', package=None)\n",
    "a local exec": "def exec(x):\n    return x\n\n\nrun = exec\n",
    "a decoder's result used as a key": "import base64\nd = {}\nd[base64.b64decode(k)] = 1\n",
}


@pytest.mark.parametrize("source", NOT_FOUND.values(), ids=NOT_FOUND.keys())
def test_close_constructs_are_not_found(source: str) -> None:
    assert scan(source) == []


def test_the_statement_lines_are_where_a_nosec_may_sit() -> None:
    finding = only("import builtins\nrun = getattr(\n    builtins,\n    'exec',\n)\n")
    assert finding.line == 2 and finding.lines == (2, 3, 4, 5)


def test_one_finding_per_rule_and_line() -> None:
    findings = scan("import base64 as b\nexec(compile(b.b64decode(s), 'x', 'exec'))\n")
    assert [(f.rule, f.line) for f in findings] == [(ENCODED, 2)]


def test_severity_and_confidence() -> None:
    assert (only("import builtins\nbuiltins.exec(c)\n").severity, "HIGH") == ("HIGH", "HIGH")
    computed = only("import builtins\ngetattr(builtins, n)\n")
    assert (computed.severity, computed.confidence) == ("HIGH", "MEDIUM")
    imported = only("__import__(n)\n")
    assert (imported.severity, imported.confidence) == ("MEDIUM", "HIGH")


def test_source_python_cannot_parse_is_left_to_bandit() -> None:
    assert scan_source("def broken(:\n") == []
    assert scan_source(b"\x00\xff") == []


def test_source_nested_too_deeply_is_unscannable() -> None:
    with pytest.raises(UnscannableSource, match="nested too deeply"):
        scan_source("x = " + "-" * 200_000 + "1")


def test_the_sdk_makes_no_finding_but_its_computed_imports() -> None:
    """The SDK's own patterns (entry points, discovery) import computed names, which is
    reported in plugin code by design; nothing else of its code is."""
    rules = {
        (path.name, f.rule)
        for path in sorted((REPO / "toolkit").rglob("*.py"))
        for f in scan_source(path.read_bytes())
    }
    assert {rule for _, rule in rules} <= {IMPORT}
    assert ("discovery.py", IMPORT) in rules


# -- the rule never crashes on parseable source ---------------------------------------

NAMES = st.sampled_from(["b", "x", "name", "exec", "eval", "compile", "getattr", "vars",
                         "globals", "__builtins__", "builtins", "base64", "zlib", "__import__",
                         "importlib", "marshal", "types", "sys"])  # fmt: skip
ATTRS = st.sampled_from(["exec", "__dict__", "get", "b64decode", "decompress", "import_module",
                         "modules", "loads", "FunctionType", "join", "decode", "x"])  # fmt: skip
LEAVES = NAMES | st.sampled_from(["'exec'", "'ex'", "'ec'", "b'eA=='", "1", "-1", "None", "''"])
# Composite strategies: small programs built from templates, depth-bounded.
EXPRESSION_FORMS = ["{0}.{attr}", "{0}({1}, {2})", "{0}({1})", "{0}[{1}]", "({0} + {1})",
                    "{0}[::-1]", "f'{{{name}}}x'", "(lambda {name}: {0})",
                    "[{0} for {name} in {1}]", "({name} := {0})"]  # fmt: skip


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.booleans()):
        return draw(LEAVES)
    form = draw(st.sampled_from(EXPRESSION_FORMS))
    parts = [draw(expressions(depth + 1)) for _ in range(3)]
    return form.format(*parts, attr=draw(ATTRS), name=draw(NAMES))


SIMPLE_FORMS = ["{name} = {0}", "{name}, *{other} = {0}", "{name}[{0}] = {1}", "{name} += {0}",
                "import builtins as {name}", "import base64, importlib", "del {name}", "{0}",
                "from builtins import *", "from zlib import decompress as {name}",
                "from importlib import import_module"]  # fmt: skip


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines] or ["    pass"]


@st.composite
def statements(draw: st.DrawFn, depth: int = 0) -> list[str]:
    name, other = draw(NAMES), draw(NAMES)
    if depth >= 2 or draw(st.booleans()):
        form = draw(st.sampled_from(SIMPLE_FORMS))
        return [form.format(draw(expressions()), draw(expressions()), name=name, other=other)]
    body = [line for _ in range(draw(st.integers(1, 3))) for line in draw(statements(depth + 1))]
    value = draw(expressions())
    return draw(st.sampled_from([
        [f"def {name}({other}):", f"    global {draw(NAMES)}", *_indent(body),
         f"    return {value}"],
        [f"class {name.title()}:", *_indent(body)],
        [f"for {name} in {value}:", *_indent(body)],
        [f"with {value} as {name}:", *_indent(body)],
        ["try:", *_indent(body), f"except Exception as {name}:", *_indent(body)],
    ]))  # fmt: skip


@given(st.lists(statements(), min_size=1, max_size=6))
def test_the_rule_never_crashes_on_parseable_source(statements: list[list[str]]) -> None:
    source = "\n".join(line for statement in statements for line in statement) + "\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "'str' object is not callable", and such
            ast.parse(source)
    except SyntaxError:
        return  # e.g. `(x := 1) = 2`: Python refuses it, and so would bandit
    findings = scan_source(source)
    lines = source.count("\n")
    for finding in findings:
        assert finding.rule in RULES
        assert 1 <= finding.line <= lines and finding.line in finding.lines
        assert finding.message


@given(st.binary(max_size=300))
def test_the_rule_never_crashes_on_any_bytes(data: bytes) -> None:
    assert isinstance(scan_source(data), list)


# -- what the rule folds is what Python computes ---------------------------------------

PIECES = st.text(alphabet="exc_alv", max_size=4).map(repr)


STRING_FORMS = ["({0} + {1})", "{0}[::-1]", "{0}[{lo}:{hi}]", "f'{{{0}}}-'",
                "{piece}.join([{0}, {1}])", "''.join(reversed({0}))", "{0}.upper()",
                "str({0})"]  # fmt: skip


@st.composite
def string_expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 4 or draw(st.booleans()):
        return draw(PIECES)
    form = draw(st.sampled_from(STRING_FORMS))
    parts = [draw(string_expressions(depth + 1)) for _ in range(2)]
    lo, hi = draw(st.integers(-3, 3)), draw(st.integers(-3, 3))
    return form.format(*parts, piece=draw(PIECES), lo=lo, hi=hi)


def _depth(node: ast.AST) -> int:
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return deepest


@given(string_expressions())
def test_a_folded_name_is_what_python_computes(expression: str) -> None:
    try:
        tree = ast.parse(f"NAME = {expression}\n")
    except SyntaxError:
        return  # an f-string inside an f-string with the same quotes, before 3.12
    names = Bindings(tree)
    assign = tree.body[0]
    assert isinstance(assign, ast.Assign)
    folded = names.fold(assign.value, names.module)
    expected = eval(expression, {"__builtins__": {"reversed": reversed, "str": str}})
    assert folded is None or folded == expected  # never a wrong name
    if len(expected) <= 200 and _depth(assign.value) <= 12:
        assert folded == expected  # and, short of the limits, always the name
