"""Reading strace's log of a jailed step (certification reads one per jailed phase, on
its critical path): the parser against the character-walking one it replaced (kept as
the tests' oracle, tests/strace_reference.py), and the whole behaviour record with each,
on real logs (tests/data/strace), rounds interleaved, in one process."""

from __future__ import annotations

import contextlib
import lzma
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import strace_reference as reference  # noqa: E402 - needs tests/ on sys.path
from aitbc.plugins.sandbox import strace_log, trace  # noqa: E402

LOGS = sorted((TESTS / "data" / "strace").glob("*.strace.xz"))


@contextlib.contextmanager
def reference_parser() -> Iterator[None]:
    """read_behaviour as it read logs before: the same reader, the old parser."""
    with (
        mock.patch.multiple(trace, parse=reference.parse, string_arg=reference.string_arg,
                            string_args=reference.string_args, fd_path=reference.fd_path),
        mock.patch.object(strace_log, "string_args", reference.string_args),
    ):  # fmt: skip
        yield


def _behaviour(lines: list[str]) -> trace.Behaviour:
    return trace.read_behaviour(lines, scratch=["/tmp/work"], cwd="/tmp/work")


def _old_behaviour(lines: list[str]) -> trace.Behaviour:
    with reference_parser():
        return _behaviour(lines)


def _parsed(parser: Callable[[list[str]], Iterator[object]], lines: list[str]) -> object:
    return list(parser(lines))


def _medians(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(rounds + 1):
        order = list(sides) if round_ % 2 else list(reversed(sides))  # who goes first alternates
        for name in order:
            began = time.perf_counter()
            sides[name]()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(times[1:]) for name, times in samples.items()}  # warm only


def bench_strace(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for log in LOGS:
        with lzma.open(log, "rt", encoding="utf-8") as file:
            lines = file.readlines()
        if list(strace_log.parse(lines)) != list(reference.parse(lines)):
            raise RuntimeError(f"the parsers disagree on {log.name}")
        if _behaviour(lines) != _old_behaviour(lines):
            raise RuntimeError(f"the behaviours read from {log.name} differ")
        med = _medians({
            "parse": partial(_parsed, strace_log.parse, lines),
            "parse_old": partial(_parsed, reference.parse, lines),
            "read": partial(_behaviour, lines),
            "read_old": partial(_old_behaviour, lines),
        }, repeat * 4)  # fmt: skip
        name = log.name.removesuffix(".strace.xz")
        rows += [
            {"benchmark": f"parse strace log ({name}, {len(lines)} lines)",
             "ours_s": med["parse"], "naive_s": med["parse_old"], "goal": 1 / 3,
             "naive": "the character-walking parser"},
            {"benchmark": f"read_behaviour ({name})", "ours_s": med["read"],
             "naive_s": med["read_old"], "goal": None,
             "naive": "the same reader with the character-walking parser"},
        ]  # fmt: skip
    return rows


if __name__ == "__main__":  # pragma: no cover - run through benchmarks/run.py
    for found_row in bench_strace(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(found_row["benchmark"], f"{found_row['ours_s'] / found_row['naive_s']:.2f}x")
