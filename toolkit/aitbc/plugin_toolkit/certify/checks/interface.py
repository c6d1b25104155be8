"""`interface`: the plugin implements its kind's interface, checked statically by mypy.

The wheel's packages are extracted into scratch with the probe (checks/
mypy_probe.py.tmpl, filled in for the entry point's class) beside them, and mypy
checks the probe with checks/mypy.ini, resolving the SDK and the plugin's dependencies
from the plugin environment (``--python-executable``: a stand-in for its Python, see
:func:`._mypy.python_stand_in`).  What counts: every error in
the probe (an abstract method left, a call the SDK's signature allows but the plugin's
does not, a result of the wrong type or not awaitable), and the errors at the plugin's
definitions about an override, a base class or an abstract method.  Other type errors
in the plugin's own code are listed in the details, not failed.  ``# type: ignore`` and
``# mypy:`` comments in the shipped code do not hide interface errors: they are
removed from the extracted copy first (lines keep their numbers).

Then the run-time half (_signatures.py): the metadata probe's description of each
interface method as the plugin's class holds it when it runs, compared with the SDK's
own signatures, for what mypy was not shown.  The probe is started before mypy runs
and is shared with the metadata check (made once per run).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import string
import threading
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import CheckContext, CheckError, result, timed
from ..cache import mypy_cache
from ..model import CheckResult, Finding, Severity
from . import _shipped
from ._hints import with_hint
from ._mypy import PROBE_FILE, parse_mypy_output, python_stand_in, run_mypy
from ._signatures import compare, interface_of, parse_runtime, shipped_name

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
#: A plugin-side error about the interface rather than the plugin's own code.
_INTERFACE_MESSAGE = re.compile(r"supertype|base class|abstract|overrid", re.IGNORECASE)
_INTERFACE_CODES = frozenset({"override", "abstract", "syntax"})
_SUPPRESSION = re.compile(r"#\s*(type:\s*ignore|mypy:)")
_PROBE_LABEL = re.compile(r"#\s*probe:\s*(.+?)\s*$")
_QUOTED_NAME = re.compile(r'"(\w+)"')
_CALLED_NAME = re.compile(r"plugin\.(\w+)\(")
RUNTIME_RULE = "interface.runtime-signature"
_KEPT_IGNORED = 20  # how many ignored (non-interface) errors the details list


def split_entry_point(entry_point: str) -> tuple[str, str]:
    module, _, attribute = entry_point.partition(":")
    module, attribute = module.strip(), attribute.strip()
    if not _DOTTED.match(module) or not _DOTTED.match(attribute):
        raise ValueError(f"the entry point {entry_point!r} is not 'module:Class'")
    return module, attribute


def render_probe(template: str, entry_point: str) -> str:
    module, attribute = split_entry_point(entry_point)
    head, *rest = attribute.split(".")
    return string.Template(template).substitute(
        module=module,
        attribute=attribute,
        head=head,
        tail="".join(f".{part}" for part in rest),
        entry_point=entry_point,
    )


def probe_labels(probe: str) -> dict[int, str]:
    """Line number -> what that line of the probe tries (its ``# probe:`` comment)."""
    labels = {}
    for number, line in enumerate(probe.splitlines(), start=1):
        found = _PROBE_LABEL.search(line)
        if found:
            labels[number] = found.group(1)
    return labels


def strip_suppressions(path: Path) -> int:
    """Remove ``# type: ignore`` and ``# mypy:`` comments; return how many went."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    cuts: list[tuple[int, int]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                found = _SUPPRESSION.search(token.string)
                if found:
                    cuts.append((token.start[0], token.start[1] + found.start()))
    except (tokenize.TokenError, SyntaxError):
        return 0  # mypy reports the syntax error itself
    for row, column in cuts:
        line = lines[row - 1]
        ending = line[len(line.rstrip("\r\n")) :]
        lines[row - 1] = line[:column].rstrip() + ending
    if cuts:
        path.write_text("".join(lines), encoding="utf-8", errors="surrogateescape")
    return len(cuts)


def class_location(root: Path, module: str, name: str, depth: int = 0) -> tuple[str, int | None]:
    """Where the class the entry point names is defined: shipped path and line."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (root / candidate).is_file():
            relative = candidate.as_posix()
            break
    else:
        return module.replace(".", "/") + ".py", None
    try:
        tree = ast.parse((root / relative).read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return relative, None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return relative, node.lineno
    for node in tree.body:  # re-exported: follow the import (a few levels at most)
        if isinstance(node, ast.ImportFrom) and depth < 4:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    base = parts if relative.endswith("__init__.py") else parts[:-1]
                    prefix = base[: len(base) - node.level + 1] if node.level else []
                    source = ".".join([*prefix, *([node.module] if node.module else [])])
                    return class_location(root, source, alias.name, depth + 1)
    return relative, None


def _hint(record: dict[str, Any]) -> str:
    kept = [
        line.strip()
        for line in str(record.get("hint") or "").splitlines()
        if line.strip() and not line.strip().startswith(("See https://", "This violates"))
    ]
    return f" ({' '.join(kept)})" if kept else ""


@dataclass(frozen=True)
class StaticHalf:
    """What mypy found: interface findings, other type errors, the ``# type: ignore``
    comments disregarded, and where the plugin's class is (file, line)."""

    findings: list[Finding]
    ignored: list[str]
    disregarded: int
    where: tuple[str, int | None]


class InterfaceCheck:
    """The plugin implements its kind's interface, checked statically with mypy against
    the SDK.

    The shipped code is read as the wheel ships it, beside a probe that constructs the
    plugin's class and uses every method of its kind's interface the way a host does.
    An abstract method left unimplemented, an override whose signature is incompatible
    with the SDK's, or a plain `def` where the SDK declares `async def` (or the
    reverse) fails the check, at the plugin's own file and line.  Other type errors in
    the plugin's code are listed, not failed.  `# type: ignore` comments do not hide
    interface errors.  A mypy that cannot run makes the check an error.

    What runs is compared too: the metadata probe, in the jail, describes each method
    of the interface as the plugin's class holds it at run time, and a method missing
    or left abstract, a plain `def` where the SDK declares `async def` (or the
    reverse), an argument hosts pass that it has no parameter for, or a parameter it
    requires that hosts leave out fails the check (`interface.runtime-signature`), at
    the file and line of the code that runs.  So a signature mypy is not shown (under
    `if TYPE_CHECKING:`, a method replaced after the class is made, an instance
    attribute) does not slip past.  A description that cannot be had or read makes the
    check an error."""

    id = "interface"
    title = "The plugin implements its kind's interface (mypy against the SDK)"
    security = False
    needs_wheel = True
    uses_environment = True
    typical_s = 0.3

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            return self._run(context, elapsed)

    def _run(self, context: CheckContext, elapsed: Any) -> CheckResult:
        wheel, plugin = context.built_plugin()
        environment = context.environment()
        _ask_in_background(context)
        entry_point = plugin.entry_point
        shipped = _shipped.extract(wheel, context.scratch / "src", context.workdir)
        if any(name.startswith(("aitbc/plugins/", PROBE_FILE)) for name in shipped.files):
            raise CheckError("the wheel ships files over the SDK's own")
        kind = context.plugin.kind if context.plugin is not None else None
        static = self.static_half(context, shipped, entry_point, environment.site_packages, kind)
        findings, where = static.findings, static.where
        at_run_time, compared = self._runtime(context, shipped, where, findings)
        findings += at_run_time
        checked = "mypy found no interface error"
        if compared:
            checked += "; its run-time signatures are the SDK's"
        summary = (
            f"{len(findings)} interface error(s) in {entry_point}"
            if findings
            else f"{entry_point} implements its kind's interface ({checked})"
        )
        return result(
            self.id,
            findings,
            elapsed(),
            summary,
            other_type_errors=len(static.ignored),
            other_type_errors_sample=static.ignored[:_KEPT_IGNORED],
            disregarded_suppressions=static.disregarded,
            runtime_signatures=compared or "not compared: no metadata probe to ask",
        )

    def static_half(
        self, context: CheckContext, shipped: _shipped.ShippedCode, entry_point: str,
        site_packages: Path, kind: str | None,
    ) -> StaticHalf:  # fmt: skip
        """mypy over ``shipped`` (extracted where mypy may change it) with the probe for
        ``entry_point``, the SDK and dependencies resolved from ``site_packages``."""
        module, attribute = split_entry_point(entry_point)
        root = shipped.root
        for name in shipped.sources:
            if name.endswith(".pyi") and name[:-1] in shipped.files:
                (root / name).unlink()  # the module that runs is the one checked
        modules = [root / name for name in shipped.sources if name.endswith(".py")]
        disregarded = sum(strip_suppressions(path) for path in modules)
        template = (context.checks_dir / "mypy_probe.py.tmpl").read_text(encoding="utf-8")
        probe = render_probe(template, entry_point)
        (root / PROBE_FILE).write_text(probe, encoding="utf-8")
        python = python_stand_in(context.scratch, site_packages)
        with mypy_cache(context.project) as cache_dir:
            run = run_mypy(
                context.checks_dir, root, python, cache_dir, context.policy.tool_timeout_s
            )
        if run.timed_out:
            raise CheckError(f"mypy took longer than {context.policy.tool_timeout_s:g}s")
        try:
            records = parse_mypy_output(run)
        except ValueError:
            raise CheckError(f"unreadable mypy output: {run.tail(3)}") from None
        errors = [r for r in records if r.get("severity", "error") == "error"]
        if run.returncode not in (0, 1, 2) or (run.returncode != 0 and not errors):
            raise CheckError(f"mypy failed: {run.tail(3)}")
        missing_sdk = [
            r
            for r in errors
            if str(r.get("code", "")).startswith("import") and "aitbc" in r["message"]
        ]
        if missing_sdk:
            reason = f"mypy could not resolve the SDK: {missing_sdk[0]['message']}"
            raise CheckError(reason)
        where = class_location(root, module, attribute.split(".")[-1])
        findings, ignored = self._classify(errors, shipped, probe_labels(probe), where)
        findings = [with_hint(f, kind, shipped, attribute.split(".")[-1]) for f in findings]
        return StaticHalf(findings, ignored, disregarded, where)

    def _classify(
        self,
        errors: list[dict[str, Any]],
        shipped: _shipped.ShippedCode,
        labels: dict[int, str],
        where: tuple[str, int | None],
    ) -> tuple[list[Finding], list[str]]:
        plugin_side: list[Finding] = []
        probe_side: list[tuple[str, Finding]] = []
        ignored: list[str] = []
        class_file = shipped.project_path(where[0])
        for record in errors:
            file = Path(str(record["file"])).as_posix()
            line = record.get("line") if isinstance(record.get("line"), int) else None
            code = str(record.get("code") or "error")
            message = str(record["message"])
            if file == PROBE_FILE:
                label = labels.get(line or 0, "the interface probe")
                if code == "no-any-return":
                    text = (
                        f"`{label}`: the method returns Any (a plain `def` without annotations) "
                        "where the SDK declares `async def`"
                    )
                else:
                    text = f"`{label}`: {message}{_hint(record)}"
                probe_side.append((label, Finding(f"interface.{code}", Severity.HIGH, text,
                                                  class_file, where[1])))  # fmt: skip
            elif file in shipped.files and (
                code in _INTERFACE_CODES or _INTERFACE_MESSAGE.search(message)
            ):
                plugin_side.append(
                    Finding(
                        f"interface.{code}",
                        Severity.HIGH,
                        f"{message}{_hint(record)}",
                        shipped.project_path(file),
                        line,
                    )
                )
            elif file in shipped.files:
                ignored.append(f"{shipped.project_path(file)}:{line}: {message} [{code}]")
        # A method already reported at its own definition is not reported again by the
        # probe line that calls it.
        reported = {n for f in plugin_side for n in _QUOTED_NAME.findall(f.message)}
        findings = plugin_side + [
            finding
            for label, finding in probe_side
            if not any(f"plugin.{name}(" in label for name in reported)
        ]
        return findings, ignored

    def _runtime(
        self,
        context: CheckContext,
        shipped: _shipped.ShippedCode,
        where: tuple[str, int | None],
        static: list[Finding],
    ) -> tuple[list[Finding], str | None]:
        """The run-time mismatches mypy has not already reported, and what was compared
        (None: there is no probe to ask, as in a context made by hand)."""
        if context.metadata_probe is None:
            return [], None
        answer = context.metadata_probe.get()  # its CheckError is this check's too
        if answer.runtime is None:
            why = answer.error or "the metadata probe described no method"
            raise CheckError(f"the plugin's run-time signatures are unknown: {why}")
        try:
            runtime = parse_runtime(answer.runtime)
        except ValueError as exc:
            raise CheckError(f"the probe's run-time signatures are malformed: {exc}") from None
        # A method mypy reported is not reported again (the check fails either way).
        said = [f.message for f in static]
        reported = {n for m in said for n in _QUOTED_NAME.findall(m) + _CALLED_NAME.findall(m)}
        class_reported = any("BasePlugin subclass" in m for m in said)
        findings = []
        for found in compare(interface_of(runtime.kind), runtime):
            if found.method in reported or (not found.method and class_reported):
                continue
            name = shipped_name(found.file, shipped.files)  # else: at the class
            file, line = (name, found.line) if name else where
            where_it_is = (shipped.project_path(file), line)
            findings.append(Finding(RUNTIME_RULE, Severity.HIGH, found.message, *where_it_is))
        return findings, f"the {runtime.kind} interface's {len(runtime.methods)} methods"

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return _shipped.cache_inputs(
            context.workdir,
            context.wheel,
            context.checks_dir / "mypy.ini",
            context.checks_dir / "mypy_probe.py.tmpl",
            context.checks_dir / "metadata_probe.py",
        )


def _ask_in_background(context: CheckContext) -> None:
    """Start the metadata probe (jailed, a second or so) while mypy runs; the run-time
    comparison then waits for its answer, or for the metadata check asking the same."""
    probe = context.metadata_probe
    if probe is not None:
        threading.Thread(target=_quietly, args=(probe.get,), daemon=True).start()


def _quietly(ask: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the Lazy keeps it, to raise again to the check
        ask()
