"""How the GitHub Actions runner reads what the toolkit writes for it: workflow
commands' escaping and ``$GITHUB_OUTPUT``.  The tests' stand-in for the runner's side,
so the toolkit's writers are checked against an independent reader."""

from __future__ import annotations


class OutputsError(ValueError):
    """``$GITHUB_OUTPUT`` text the runner would reject."""


def unescape_data(text: str) -> str:
    """The inverse of :func:`escape_data` (what the runner shows)."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    """The inverse of :func:`escape_property`."""
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def parse_outputs(text: str) -> dict[str, str]:
    """Read ``$GITHUB_OUTPUT`` as the runner does (both forms)."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            try:
                end = lines.index(delimiter, index)
            except ValueError:
                raise OutputsError(f"output {name}: no closing delimiter") from None
            result[name] = "\n".join(lines[index:end])
            index = end + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            result[name] = value
        else:
            raise OutputsError(f"not an output line: {line!r}")
    return result
