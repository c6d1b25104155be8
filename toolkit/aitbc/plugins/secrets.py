"""Values read from the environment: usable as strings, never shown.

``SecretStr`` hides itself in ``repr`` (so dicts, dataclasses and tracebacks of
the config never show it); :class:`Redactor` removes the raw values from log
records, error reasons and health output, which format with ``str``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"


class SecretStr(str):
    """A string taken from the environment; ``repr`` shows ``'***'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


class Redactor:
    """Replaces every known secret value with ``***`` in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(str.__str__(s) for s in secrets if s)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.data(v) for v in value)
        return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the fully formatted message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            message = record.getMessage()
            masked = self.redactor.text(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True
