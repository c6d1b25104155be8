"""The audit's first questions to a cold advisory index: a typical plugin's seventeen
dependency names asked of a new index over the PyPA advisory-db (every file's text read,
only the files that can concern a name parsed), against parsing every record file
first (what the index did before on a cold user cache), in the same process, rounds
interleaved.  Both sides answer the same, which is checked."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from aitbc.plugin_toolkit.certify.osv import (
    OsvIndex,
    OsvRecord,
    OsvRecordError,
    _record_files,
    fingerprint,
    load_record_file,
    parse_record,
)
from packaging.utils import canonicalize_name

VULN_DB = Path("/work/shared/advisory-db")
# requests, aiohttp, pydantic and jinja2 with what they pull in
NAMES = ["requests", "urllib3", "idna", "certifi", "charset-normalizer", "aiohttp",
         "aiosignal", "frozenlist", "multidict", "yarl", "attrs", "pydantic", "pydantic-core",
         "typing-extensions", "annotated-types", "jinja2", "markupsafe"]  # fmt: skip


def _lazy() -> tuple[list[list[str]], int]:
    index = OsvIndex(VULN_DB, fingerprint(VULN_DB))
    answers = [[r.id for r in index.query(name, None)] for name in NAMES]
    return answers, index.parsed


def _eager() -> list[list[str]]:
    by_package: dict[str, list[OsvRecord]] = {}
    fingerprint(VULN_DB)
    for path in _record_files(VULN_DB):
        try:
            record = parse_record(load_record_file(path), path)
        except OsvRecordError:
            continue
        for package in record.packages:
            by_package.setdefault(package, []).append(record)
    found = [by_package.get(canonicalize_name(name), []) for name in NAMES]
    return [[r.id for r in records if not r.withdrawn] for records in found]


def bench_osv(repeat: int) -> list[dict[str, Any]]:
    samples: dict[str, list[float]] = {"lazy": [], "eager": []}
    parsed = 0
    for i in range(repeat):
        sides = ["lazy", "eager"] if i % 2 == 0 else ["eager", "lazy"]
        answers = {}
        for side in sides:
            began = time.perf_counter()
            if side == "lazy":
                answers[side], parsed = _lazy()
            else:
                answers[side] = _eager()
            samples[side].append(time.perf_counter() - began)
        if answers["lazy"] != answers["eager"]:
            raise RuntimeError("the lazy index answered otherwise than parsing every file")
    lazy, eager = (statistics.median(samples[k]) for k in ("lazy", "eager"))
    total = sum(1 for _ in _record_files(VULN_DB))
    return [
        {"benchmark": "audit's first 17 queries, cold advisory index", "ours_s": lazy,
         "naive_s": eager, "naive": "parse all record files first",
         "note": f"{parsed} of {total} files parsed", "goal": 0.5},
    ]  # fmt: skip
