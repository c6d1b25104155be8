"""One root cause, named once.

Some failures stop several checks at once: no usable wheel (every check that needs one
errors), a plugin environment that cannot be made, a metadata probe that fails (each
shared through a ``Lazy`` of the context, which raises the very same exception again to
every check that asks).  The report names such a cause once, in full, at the check it
belongs to (its *owner*), and every other check it stopped says ``blocked by <owner>:
<the cause, briefly>``: still an error, with no finding repeating the message.

Causes are recognised by identity, not by comparing messages: the runner notes each
exception a shared value raised (:meth:`Causes.noted`), and a check's error belongs to a
cause when that exception object is on its chain (``raise ... from``, or raised while
handling it); a check needing the wheel that was not made is stopped by the build.  Words
are compared in one place only: a check that did not stop but quotes, as a finding, the
very text the runner gave it (``structure`` quotes the build's error) keeps its verdict
and points to the owner instead of repeating the text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from .base import Check, CheckContext
from .model import CheckResult, CheckStatus

T = TypeVar("T")
BRIEF = 100  # characters of a cause repeated where it is not the owner's
#: The check a missing wheel belongs to: the one that judges what the build made.
WHEEL_OWNER = "build"


def brief(text: str, limit: int = BRIEF) -> str:
    """``text``'s first line, at most ``limit`` characters (cut at a word when it can)."""
    first = " ".join(next((line for line in text.splitlines() if line.strip()), "").split())
    if len(first) <= limit:
        return first
    cut = first[: limit - 3]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:|") + "..."


@dataclass(eq=False)  # one object per failure: compared, and hashed, by identity
class Cause:
    #: The check it belongs to when one is designated; else the first check (in the
    #: report's order) that it stopped.
    owner: str | None = None
    #: The cause in words, when the runner knows them (the build's error).
    text: str | None = None


class Causes:
    """The failures shared between the checks of one run, noted where they happen."""

    def __init__(self, context: CheckContext) -> None:
        self._lock = threading.Lock()
        self._errors: dict[int, tuple[BaseException, Cause]] = {}
        self.no_wheel: Cause | None = None
        if context.wheel is None or context.plugin is None:
            why = context.build_error or context.plugin_problem or "no wheel"
            self.no_wheel = Cause(owner=WHEEL_OWNER, text=why)

    def noted(self, compute: Callable[[], T]) -> Callable[[], T]:
        """``compute``, each exception it raises noted as a shared cause."""

        def noting() -> T:
            try:
                return compute()
            except Exception as exc:
                # An error may name the check it belongs to (``owner``): the SDK conflict
                # that makes the environment impossible is the audit's finding.
                owner = getattr(exc, "owner", None)
                cause = Cause(owner, str(exc)) if isinstance(owner, str) else Cause()
                with self._lock:  # the object is kept, so its id is not reused
                    self._errors[id(exc)] = (exc, cause)
                raise

        return noting

    def of(self, check: Check, context: CheckContext, error: BaseException | None) -> Cause | None:
        """What stopped ``check`` when it is a shared cause (the deepest on the chain)."""
        if check.needs_wheel and (context.wheel is None or context.plugin is None):
            return self.no_wheel
        found, seen = None, set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            noted = self._errors.get(id(error))
            if noted is not None and noted[0] is error:
                found = noted[1]
            error = error.__cause__ or error.__context__
        return found


def name_once(ran: Sequence[tuple[CheckResult, Cause | None]]) -> list[CheckResult]:
    """The results (in the report's order), each shared cause named once at its owner."""
    stopped: dict[Cause, list[int]] = {}
    for index, (result, cause) in enumerate(ran):
        if cause is not None and result.status is CheckStatus.ERROR:
            stopped.setdefault(cause, []).append(index)
    results = [result for result, _ in ran]
    every = [result.id for result in results]
    for cause, indexes in stopped.items():
        ids = [results[i].id for i in indexes]
        if cause.owner in ids:
            owner = indexes[ids.index(cause.owner)]
        elif cause.owner in every and cause.text is not None:
            owner = every.index(cause.owner)  # it judged the cause itself, and said it
        else:
            owner = indexes[0]
        said = results[owner]
        text = brief(cause.text if cause.text is not None else said.summary)
        others = [i for i in indexes if i != owner]
        details = (
            {**said.details, "blocks": [results[i].id for i in others]} if others else said.details
        )
        # The owner keeps the whole message in its finding; its summary (the reasons,
        # JUnit's message, SARIF's notification) says it briefly.
        if owner in indexes:
            results[owner] = replace(said, summary=brief(said.summary), details=details)
        else:
            results[owner] = replace(said, details=details)
        for i in others:
            results[i] = CheckResult(
                results[i].id,
                CheckStatus.ERROR,  # stopped, never a pass
                results[i].duration_s,
                summary=f"blocked by {said.id}: {text}",
                details={"blocked_by": said.id},
            )
        if cause.text is not None:  # a check that quotes the cause points to it instead
            for i, result in enumerate(results):
                if i != owner and i not in others:
                    results[i] = _pointing(result, cause.text, f"{text} (in full under {said.id})")
    return results


def _pointing(result: CheckResult, quoted: str, pointer: str) -> CheckResult:
    if not any(f.message == quoted for f in result.findings):
        return result
    findings = tuple(
        replace(f, message=pointer) if f.message == quoted else f for f in result.findings
    )
    return replace(result, findings=findings)


def blocked_by(result: CheckResult) -> str | None:
    """The check whose failure stopped ``result``, when one did."""
    owner = result.details.get("blocked_by")
    return owner if isinstance(owner, str) else None


__all__ = ["BRIEF", "Cause", "Causes", "blocked_by", "brief", "name_once"]
