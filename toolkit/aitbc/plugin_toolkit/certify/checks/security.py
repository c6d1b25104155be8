"""`security`: bandit and the toolkit's dynamic-code rule over every Python file that
ships or runs (scanned.py says which), failing at the policy's threshold.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitbc.plugins import process

from ..base import CheckContext, CheckError, result, timed
from ..model import CheckResult, Finding, Severity
from ..policy import Policy
from . import _shipped, scanned
from .dynamic_code import RULES, UnscannableSource, scan_source
from .scanned import Target

RANK = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
_SEVERITY = {"UNDEFINED": Severity.LOW, "LOW": Severity.LOW, "MEDIUM": Severity.MEDIUM,
             "HIGH": Severity.HIGH}  # fmt: skip
# bandit's own marker (case-sensitive, as bandit reads it), up to the next comment.
_NOSEC = re.compile(r"#\s*nosec\b:?(?P<rest>[^#]*)")
# A leading test id: B602, one of the toolkit's rules (dynamic-exec), or a test's name
# (subprocess_popen_with_shell_equals_true).
_TEST = re.compile(rf"[\s,]*(B\d{{3}}|{'|'.join(RULES)}|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?!\w)")
_SEPARATORS = " \t-\u2013\u2014:;,."
MAX_FILES = 5000


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


@dataclass(frozen=True)
class Issue:
    """One issue of bandit's or of the dynamic-code rule, at a scanned file's line."""

    test_id: str  # B602, or one of the toolkit's RULES
    test_name: str
    severity: str  # in bandit's words: UNDEFINED | LOW | MEDIUM | HIGH
    confidence: str
    message: str
    target: Target
    line: int
    lines: tuple[int, ...]  # where a `# nosec` for it may sit

    @property
    def tool(self) -> str:
        return f"rule {self.test_id}" if self.test_id in RULES else f"bandit {self.test_id}"


def _rank(value: Any) -> int:
    if value not in RANK:
        raise ValueError(f"unknown bandit level {value!r}")
    return RANK[str(value)]


def _at_threshold(issue: Issue, policy: Policy) -> bool:
    return _rank(issue.severity) >= _rank(policy.security_severity.upper()) and _rank(
        issue.confidence
    ) >= _rank(policy.security_confidence.upper())


def _key(path: Any) -> str:
    return Path(str(path)).as_posix()  # bandit echoes the target it was given


def _unique(targets: list[Target]) -> list[Target]:
    """Each file once (a shipped module is its project file), the first reason kept."""
    seen: dict[Path, Target] = {}
    for target in targets:
        seen.setdefault(target.path.resolve(), target)
    return list(seen.values())


class SecurityCheck:
    """bandit and the toolkit's own rule find no issue at the policy's threshold in the
    code that ships or runs.

    Every Python file that ships or runs is scanned: the wheel's modules whatever their
    names, and the project's `setup.py`, in-tree build backend, `conftest.py` files,
    tests and the project modules they import.  Every bandit test runs, and so does the
    toolkit's own rule for code run where bandit does not look (exec reached through
    the builtins, imports of computed names, decoded data executed).  An issue fails
    the check when its severity and its confidence are both at or above the policy's
    `[security]` thresholds; issues below are listed in the details.  A `# nosec`
    comment suppresses an issue only when it names the test and gives a reason
    (`# nosec B602 - the command is fixed`).  Bytecode without its source fails."""

    id = "security"
    title = (
        "bandit and the toolkit's own rule find no issue at the policy's threshold in the "
        "code that ships or runs"
    )
    security = True
    needs_wheel = True
    uses_environment = False
    typical_s = 0.35

    def run(self, context: CheckContext) -> CheckResult:
        with timed() as elapsed:
            return self._run(context, elapsed)

    def _run(self, context: CheckContext, elapsed: Callable[[], float]) -> CheckResult:
        wheel, _ = context.built_plugin()
        project, root = context.workdir.resolve(), context.scratch / "shipped"
        shipped = _shipped.extract(wheel, root, project)
        data = scanned.extract_data_code(wheel, root)
        bytecode = scanned.bytecode_findings(root, [*shipped.files, *data], project)
        targets = _unique(
            [*scanned.shipped_targets(shipped, data, project), *scanned.project_targets(project)]
        )
        if not targets and not bytecode:
            raise CheckError("the wheel ships no Python module to scan")
        if len(targets) > MAX_FILES:  # more than bandit's command line would hold
            raise CheckError(
                f"{len(targets)} Python files ship or run: at most {MAX_FILES} are scanned"
            )
        return self.scan(context, targets, bytecode, elapsed)

    def scan(
        self, context: CheckContext, targets: list[Target], bytecode: list[Finding],
        elapsed: Callable[[], float],
    ) -> CheckResult:  # fmt: skip
        """The verdict on ``targets`` (bandit and the toolkit's rule), with ``bytecode``'s
        findings."""
        issues = [*self._bandit(context, targets), *_dynamic(targets)] if targets else []
        # B101 warns that `python -O` strips asserts from installed code: in tests and
        # build scripts, which are never installed, an assert is how they check.
        issues = [i for i in issues if i.test_id != "B101" or i.target.why == scanned.SHIPS]
        return self._verdict(context, targets, issues, bytecode, elapsed())

    def _bandit(self, context: CheckContext, targets: list[Target]) -> list[Issue]:
        report = context.scratch / "bandit.json"
        by_key = {_key(t.path): t for t in targets}
        timeout = context.policy.tool_timeout_s
        run = process.run(
            [sys.executable, "-m", "bandit", "--configfile",
             str(context.checks_dir / "bandit.yaml"), "--format", "json", "--output",
             str(report), "--ignore-nosec", "--quiet",
             # bandit's default excludes match anywhere in a path ("CVS", ".git", ...):
             # none, so no file of ours is skipped for its name.  Targets are files,
             # so no .bandit file of the project is read either.
             "--exclude", "", "--", *by_key],
            cwd=context.scratch,
            timeout=timeout,
        )  # fmt: skip
        if run.timed_out:
            raise CheckError(f"bandit took longer than {timeout:g}s")
        if run.returncode not in (0, 1) or not report.is_file():
            raise CheckError(f"bandit failed: {run.tail(3)}")
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
            found, problems = list(data["results"]), list(data["errors"])
            scanned_keys = {_key(name) for name in data["metrics"]}
            failed = [by_key.get(_key(p["filename"])) for p in problems]
        except (ValueError, KeyError, TypeError):
            raise CheckError(f"unreadable bandit report: {run.tail(3)}") from None
        if problems:
            names = ", ".join(t.shown for t in failed if t is not None)
            raise CheckError(f"bandit could not scan {names or 'a file'}")
        missed = [t.shown for key, t in by_key.items() if key not in scanned_keys]
        if missed:
            raise CheckError(f"bandit did not scan {', '.join(missed)}")
        if run.returncode == 1 and not found:
            raise CheckError(f"bandit failed: {run.tail(3)}")
        try:
            return [_from_bandit(item, by_key[_key(item["filename"])]) for item in found]
        except (KeyError, TypeError, ValueError):
            raise CheckError(f"unreadable bandit report: {run.tail(3)}") from None

    def _verdict(
        self,
        context: CheckContext,
        targets: list[Target],
        issues: list[Issue],
        bytecode: list[Finding],
        duration: float,
    ) -> CheckResult:
        policy = context.policy
        comments: dict[Path, dict[int, Nosec]] = {}
        findings: list[Finding] = list(bytecode)
        below: list[dict[str, Any]] = []
        suppressed: list[dict[str, Any]] = []
        for issue in issues:
            path = issue.target.path
            if path not in comments:
                comments[path] = nosec_comments(path)
            here = comments[path]
            nosec = next(
                (
                    here[n]
                    for n in issue.lines
                    if n in here and here[n].covers(issue.test_id, issue.test_name)
                ),
                None,
            )
            entry: dict[str, Any] = {
                "rule": f"security.{issue.test_id}",
                "severity": issue.severity.lower(),
                "confidence": issue.confidence.lower(),
                "message": issue.message,
                "file": issue.target.shown,
                "line": issue.line,
            }
            if nosec is not None and (nosec.reason or not policy.nosec_needs_reason):
                suppressed.append({**entry, "reason": nosec.reason})
                continue
            note = ""
            if nosec is not None:
                note = (
                    f"; # nosec without a reason does not count: "
                    f"write `# nosec {issue.test_id} - <why this is safe>`"
                )
            if not _at_threshold(issue, policy):
                below.append({**entry, "note": note.lstrip("; ")} if note else entry)
                continue
            name = f" {issue.test_name}" if issue.test_name != issue.test_id else ""
            message = (
                f"{issue.message} [{issue.tool}{name}: severity {entry['severity']}, "
                f"confidence {entry['confidence']}]{note}"
            )
            severity = _SEVERITY[issue.severity]
            findings.append(Finding(entry["rule"], severity, message, entry["file"], issue.line))
        findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule))
        threshold = (
            f"{policy.security_severity} severity and {policy.security_confidence} confidence"
        )
        summary = (
            f"{len(findings)} security issue(s) at or above {threshold}"
            if findings
            else f"no issue at or above {threshold} in {len(targets)} file(s) that ship or run"
        )
        if bytecode:
            summary = f"{len(findings)} security issue(s), bytecode without its source included"
        extras = [f"{len(below)} below the threshold"] if below else []
        extras += [f"{len(suppressed)} suppressed with a reason"] if suppressed else []
        return result(
            self.id,
            findings,
            duration,
            summary + (f" ({', '.join(extras)})" if extras else ""),
            scanned=len(targets),
            scanned_files=[{"file": t.shown, "why": t.why} for t in targets],
            below_threshold=below,
            suppressed=suppressed,
        )

    def cache_inputs(self, context: CheckContext) -> list[Path] | None:
        """The wheel, the build files, every Python file and bytecode of the project
        (any of them may be scanned), and the bandit settings."""
        config = context.checks_dir / "bandit.yaml"
        base = _shipped.cache_inputs(context.workdir, context.wheel, config)
        if base is None:
            return None
        suffixes = (*scanned.PYTHON_SUFFIXES, ".pyc")
        return [*base, *(p for p in scanned.project_files(context.workdir) if p.suffix in suffixes)]


def _from_bandit(item: dict[str, Any], target: Target) -> Issue:
    line = int(item["line_number"])
    lines = (line, *(int(n) for n in item.get("line_range", [])))
    return Issue(
        str(item["test_id"]),
        str(item.get("test_name", "")),
        str(item["issue_severity"]),
        str(item["issue_confidence"]),
        str(item["issue_text"]),
        target,
        line,
        lines,
    )


def _dynamic(targets: list[Target]) -> list[Issue]:
    """The dynamic-code rule's issues in every scanned file."""
    issues = []
    for target in targets:
        try:
            found = scan_source(target.path.read_bytes())
        except OSError as exc:
            raise CheckError(f"cannot read {target.shown}: {exc.strerror}") from None
        except UnscannableSource as exc:
            raise CheckError(f"the dynamic-code rule cannot read {target.shown}: {exc}") from None
        issues += [
            Issue(f.rule, f.rule, f.severity, f.confidence, f.message, target, f.line, f.lines)
            for f in found
        ]
    return issues
