"""The toolkit's errors.  A ToolkitError is the user's to fix: the CLI prints its
message as one line and exits 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class ToolkitError(Exception):
    """Bad input or a state the user must change; reaches the terminal as one line."""


class UntrustedTemplateError(ToolkitError):
    """A template that would run its own code, used without --trust."""
