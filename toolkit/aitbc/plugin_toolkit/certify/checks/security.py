"""`security`: bandit over the plugin's code as its wheel ships it (not its tests, not
the project's scaffolding), failing at the policy's threshold.

bandit runs with ``--ignore-nosec`` so it reports everything; the check then honours a
``# nosec`` comment itself, and (with ``nosec_needs_reason``, the default) only one
that says why: ``# nosec B602 - the command is a constant``.  A bare ``# nosec`` hides
nothing: its finding stays, with a note saying the reason is missing.  Issues below
the threshold, and those suppressed with a reason, are kept in the details.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitbc.plugins import process

from ..base import CheckContext, CheckError, result, timed
from ..model import CheckResult, Finding, Severity
from ..policy import Policy
from . import _shipped

RANK = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
_SEVERITY = {"UNDEFINED": Severity.LOW, "LOW": Severity.LOW, "MEDIUM": Severity.MEDIUM,
             "HIGH": Severity.HIGH}  # fmt: skip
# bandit's own marker (case-sensitive, as bandit reads it), up to the next comment.
_NOSEC = re.compile(r"#\s*nosec\b:?(?P<rest>[^#]*)")
# A leading test id: B602, or a test's name (subprocess_popen_with_shell_equals_true).
_TEST = re.compile(r"[\s,]*(B\d{3}|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?!\w)")
_SEPARATORS = " \t-\u2013\u2014:;,."


@dataclass(frozen=True)
class Nosec:
    tests: frozenset[str]  # empty: every test on the line
    reason: str

    def covers(self, test_id: str, test_name: str) -> bool:
        return not self.tests or test_id in self.tests or test_name in self.tests


def parse_nosec(comment: str) -> Nosec | None:
    """The ``# nosec`` in a comment: which tests it names and the reason it gives."""
    found = _NOSEC.search(comment)
    if found is None:
        return None
    rest, position, tests = found.group("rest"), 0, set()
    while listed := _TEST.match(rest, position):
        tests.add(listed.group(1))
        position = listed.end()
    reason = rest[position:].strip(_SEPARATORS)
    return Nosec(frozenset(tests), reason if re.search(r"[^\W\d_]", reason) else "")


def nosec_comments(path: Path) -> dict[int, Nosec]:
    """Line -> its ``# nosec`` (comments only: a string holding "# nosec" is not one)."""
    found: dict[int, Nosec] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                nosec = parse_nosec(token.string)
                if nosec is not None:
                    found[token.start[0]] = nosec
    except (tokenize.TokenError, SyntaxError):
        pass  # bandit reports a file it cannot parse; the check errors on that
    return found


def _rank(value: Any) -> int:
    if value not in RANK:
        raise ValueError(f"unknown bandit level {value!r}")
    return RANK[str(value)]


def _at_threshold(issue: dict[str, Any], policy: Policy) -> bool:
    return _rank(issue["issue_severity"]) >= _rank(policy.security_severity.upper()) and _rank(
        issue["issue_confidence"]
    ) >= _rank(policy.security_confidence.upper())


def _shipped_name(filename: Any) -> str:
    return Path(str(filename)).as_posix()  # bandit echoes the target: "./pkg/mod.py"


class SecurityCheck:
    """bandit finds no issue at the policy's threshold in the shipped code.

    Every bandit test runs over the Python modules of the wheel, as a user installs
    them (not the project's tests or build scaffolding).  An issue fails the check
    when its severity and its confidence are both at or above the policy's
    `[security]` thresholds; issues below are listed in the details.  bandit runs with
    `--ignore-nosec`: a `# nosec` comment suppresses an issue only when it names the
    test and gives a reason (`# nosec B602 - the command is fixed`)."""

    id = "security"
    title = "bandit finds no issue at the policy's threshold in the shipped code"
    security = True
    needs_wheel = True

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            return self._run(context, elapsed)

    def _run(self, context: CheckContext, elapsed: Any) -> CheckResult:
        wheel, _ = context.built_plugin()
        root = context.scratch / "shipped"
        shipped = _shipped.extract(wheel, root, context.workdir)
        targets = [
            name
            for name in shipped.sources
            if name.endswith(".py") and not _shipped.is_test_or_scaffolding(name)
        ]
        if not targets:
            raise CheckError("the wheel ships no Python module to scan")
        report = context.scratch / "bandit.json"
        run = process.run(
            [
                sys.executable,
                "-m",
                "bandit",
                "--configfile",
                str(context.checks_dir / "bandit.yaml"),
                "--format",
                "json",
                "--output",
                str(report),
                "--ignore-nosec",
                "--quiet",
                *targets,
            ],
            cwd=root,
            timeout=context.policy.tool_timeout_s,
        )
        if run.timed_out:
            raise CheckError(f"bandit took longer than {context.policy.tool_timeout_s:g}s")
        if run.returncode not in (0, 1) or not report.is_file():
            raise CheckError(f"bandit failed: {run.tail(3)}")
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
            issues, problems = list(data["results"]), list(data["errors"])
        except (ValueError, KeyError, TypeError):
            raise CheckError(f"unreadable bandit report: {run.tail(3)}") from None
        if problems:
            names = ", ".join(shipped.project_path(_shipped_name(p["filename"])) for p in problems)
            raise CheckError(f"bandit could not scan {names}")
        if run.returncode == 1 and not issues:
            raise CheckError(f"bandit failed: {run.tail(3)}")
        return self._verdict(context, shipped, issues, len(targets), elapsed())

    def _verdict(
        self,
        context: CheckContext,
        shipped: _shipped.ShippedCode,
        issues: list[dict[str, Any]],
        scanned: int,
        duration: float,
    ) -> CheckResult:
        policy = context.policy
        comments: dict[str, dict[int, Nosec]] = {}
        findings: list[Finding] = []
        below: list[dict[str, Any]] = []
        suppressed: list[dict[str, Any]] = []
        for issue in issues:
            name = _shipped_name(issue["filename"])
            if name not in comments:
                comments[name] = nosec_comments(shipped.root / name)
            test_id, test_name = str(issue["test_id"]), str(issue.get("test_name", ""))
            lines = [int(issue["line_number"]), *(int(n) for n in issue.get("line_range", []))]
            nosec = next(
                (
                    comments[name][n]
                    for n in lines
                    if n in comments[name] and comments[name][n].covers(test_id, test_name)
                ),
                None,
            )
            entry: dict[str, Any] = {
                "rule": f"security.{test_id}",
                "severity": str(issue["issue_severity"]).lower(),
                "confidence": str(issue["issue_confidence"]).lower(),
                "message": str(issue["issue_text"]),
                "file": shipped.project_path(name),
                "line": int(issue["line_number"]),
            }
            if nosec is not None and (nosec.reason or not policy.nosec_needs_reason):
                suppressed.append({**entry, "reason": nosec.reason})
                continue
            note = ""
            if nosec is not None:
                note = (
                    f"; # nosec without a reason does not count: "
                    f"write `# nosec {test_id} - <why this is safe>`"
                )
            if not _at_threshold(issue, policy):
                below.append({**entry, "note": note.lstrip("; ")} if note else entry)
                continue
            message = (
                f"{entry['message']} [bandit {test_id} {test_name}: severity "
                f"{entry['severity']}, confidence {entry['confidence']}]{note}"
            )
            severity = _SEVERITY[str(issue["issue_severity"])]
            findings.append(Finding(entry["rule"], severity, message, entry["file"], entry["line"]))
        findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule))
        threshold = (
            f"{policy.security_severity} severity and {policy.security_confidence} confidence"
        )
        summary = (
            f"{len(findings)} security issue(s) at or above {threshold}"
            if findings
            else f"bandit found no issue at or above {threshold} in {scanned} shipped module(s)"
        )
        extras = [f"{len(below)} below the threshold"] if below else []
        extras += [f"{len(suppressed)} suppressed with a reason"] if suppressed else []
        return result(
            self.id,
            findings,
            duration,
            summary + (f" ({', '.join(extras)})" if extras else ""),
            scanned=scanned,
            below_threshold=below,
            suppressed=suppressed,
        )

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        return _shipped.cache_inputs(
            context.workdir, context.wheel, context.checks_dir / "bandit.yaml"
        )
