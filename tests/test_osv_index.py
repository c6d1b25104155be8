"""The OSV index parses only the record files a question can concern; every answer is
the one parsing every file gives (the eager index it replaced, kept here as the
reference): generated directories of records in many spellings, and the real
advisory-db."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from aitbc.plugin_toolkit.certify.osv import (
    OsvIndex,
    OsvRecord,
    OsvRecordError,
    _named_packages,
    _record_files,
    is_affected,
    load_record_file,
    parse_record,
)
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

ADVISORY_DB = REPO.parent / "shared" / "advisory-db"
# A plugin's usual closure: requests, aiohttp, pydantic and jinja2 with what they pull in.
TYPICAL = ["requests", "urllib3", "idna", "certifi", "charset-normalizer", "aiohttp",
           "aiosignal", "frozenlist", "multidict", "yarl", "attrs", "pydantic", "pydantic-core",
           "typing-extensions", "annotated-types", "jinja2", "markupsafe"]  # fmt: skip


@dataclasses.dataclass
class Eager:
    """Every file parsed up front: what the index answered before it was lazy."""

    by_package: dict[str, list[OsvRecord]]
    by_id: dict[str, OsvRecord]
    invalid: list[tuple[Path, str, frozenset[str]]]
    records: int

    @classmethod
    def read(cls, directory: Path) -> Eager:
        index = cls({}, {}, [], 0)
        for path in _record_files(directory):
            data = None
            try:
                data = load_record_file(path)
                record = parse_record(data, path)
            except OsvRecordError as exc:
                index.invalid.append((path, str(exc), frozenset(_named_packages(data))))
                continue
            index.records += 1
            for package in record.packages:
                index.by_package.setdefault(package, []).append(record)
            for key in (record.id, *record.aliases):
                index.by_id.setdefault(key, record)
        return index

    def query(self, package: str, version: str | None) -> list[OsvRecord]:
        found = self.by_package.get(canonicalize_name(package), [])
        return [
            r
            for r in found
            if not r.withdrawn and (version is None or is_affected(r, package, version))
        ]

    def problems(self, package: str) -> set[str]:
        name = canonicalize_name(package)
        return {f"{p}: {why}" for p, why, names in self.invalid if not names or name in names}

    def named_problems(self, package: str) -> set[str]:
        name = canonicalize_name(package)
        return {f"{p}: {why}" for p, why, names in self.invalid if name in names}


def shown(records: list[OsvRecord]) -> list[tuple[OsvRecord, str]]:
    """What a query answer is, served record included (a record's equality leaves it out)."""
    return [(r, json.dumps(r.served, sort_keys=True)) for r in records]


def agree(lazy: OsvIndex, eager: Eager, names: list[str], versions: list[str | None]) -> None:
    for name in names:
        for version in versions:
            assert shown(lazy.query(name, version)) == shown(eager.query(name, version)), (
                name,
                version,
            )
        problems = set(lazy.problems(name))
        # every unusable file naming the package is reported, and none that eager would not
        assert eager.named_problems(name) <= problems <= eager.problems(name), name


# -- generated directories -------------------------------------------------------------
BASES = ["foo-bar", "foo", "bar", "py", "kit", "zope-interface", "a1"]
ODD = ["foo bar", "foo'bar", "straße", "fooΣ", "kΣ-x", "null"]  # found by parsing every file
VERSIONS = ["0.9", "1.0", "1.5", "2.0", "3.0"]


@st.composite
def spellings(draw: st.DrawFn, canonical: str) -> str:
    """``canonical`` as a record may spell it: any case, any separator run, a Kelvin sign."""
    out = []
    for char in canonical:
        if char == "-":
            out.append(draw(st.text(st.sampled_from("-_."), min_size=1, max_size=3)))
        elif char == "k" and draw(st.integers(0, 3)) == 0:
            out.append("\u212a")  # KELVIN SIGN: lowercases to "k"
        else:
            out.append(char.upper() if draw(st.booleans()) else char)
    return "".join(out)


def _escaped(draw: st.DrawFn, text: str, json_text: bool) -> str:
    """A double-quoted scalar (YAML) or a JSON string, some characters as escapes."""
    out = []
    for char in text:
        if char in '"\\' or draw(st.integers(0, 2)) == 0:
            if json_text or draw(st.booleans()):
                out.append(f"\\u{ord(char):04X}")
            else:
                out.append(f"\\x{ord(char):02X}" if ord(char) < 256 else f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _plain_safe(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and name[0] != "-"


@st.composite
def yaml_name(draw: st.DrawFn, name: str) -> tuple[str, str]:
    """(scalar, anchor line) spelling ``name`` in a block mapping at indentation 4."""
    kinds = ["single", "double", "block", "anchor"] + (["plain"] if _plain_safe(name) else [])
    kind = draw(st.sampled_from(kinds))
    single = "'" + name.replace("'", "''") + "'"
    if kind == "plain":
        return name, ""
    if kind == "single":
        return single, ""
    if kind == "double":
        return _escaped(draw, name, json_text=False), ""
    if kind == "block":
        return f"|-\n      {name}", ""
    return "*n", f"x-name: &n {single}\n"


@st.composite
def records(draw: st.DrawFn, number: int, names: list[str]) -> tuple[str, bytes]:
    """One record file: (file name, bytes), YAML or JSON, valid or not."""
    rid = f"TEST-{number}"
    alias = draw(st.sampled_from([f"CVE-{number}", f"GHSA-{number}x", f"TEST-{number + 1}"]))
    name = draw(st.sampled_from(names))
    spelled = draw(spellings(name))
    fixed = draw(st.sampled_from([*VERSIONS, "not a version"]))
    versions = draw(st.lists(st.sampled_from(VERSIONS), max_size=2))
    prose = " ".join(draw(st.lists(st.sampled_from([*BASES, *ODD, "pypi", "setup.py"]),
                                   max_size=3)))  # fmt: skip
    withdrawn = draw(st.booleans()) and draw(st.booleans())
    kind = draw(st.sampled_from(["yaml", "yaml", "json", "junk"]))
    if kind == "junk":
        junk = [b"\xff\xfe not UTF-8 " + name.encode(), b"{{{ [", b"id: X\n", b"[1, 2]",
                f"id: {rid}\naffected: {name}\n".encode()]  # fmt: skip
        return f"{rid}.{draw(st.sampled_from(['yaml', 'json']))}", draw(st.sampled_from(junk))
    if kind == "json":
        text = json.dumps({
            "id": rid, "aliases": [alias], "details": prose,
            "affected": [{"package": {"name": "@NAME@", "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                          "versions": versions}],
            **({"withdrawn": "2021-01-01T00:00:00Z"} if withdrawn else {}),
        }, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))  # fmt: skip
        quoted = _escaped(draw, spelled, json_text=True) if draw(st.booleans()) else None
        text = text.replace('"@NAME@"', quoted or json.dumps(spelled, ensure_ascii=False))
        return f"{rid}.json", text.encode()
    scalar, anchor = draw(yaml_name(spelled))
    quoted_prose = prose.replace("'", "''")
    flow = draw(st.booleans()) and "\n" not in scalar and anchor == ""
    package = (f"- package: {{name: {scalar}, ecosystem: PyPI}}\n" if flow
               else f"- package:\n    name: {scalar}\n    ecosystem: PyPI\n")  # fmt: skip
    text = (
        f"{anchor}id: {rid}\naliases: [{alias}]\ndetails: '{quoted_prose}'\n"
        + ("withdrawn: '2021-01-01T00:00:00Z'\n" if withdrawn else "")
        + "affected:\n"
        + package
        + "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n"
        + f"    - fixed: '{fixed}'\n  versions: {json.dumps(versions)}\n"
    )
    return f"{rid}.{draw(st.sampled_from(['yaml', 'yml']))}", text.encode()


@st.composite
def databases(draw: st.DrawFn) -> tuple[dict[str, bytes], list[str]]:
    """Record files (relative path: bytes) and the names to ask about."""
    names = draw(st.lists(st.sampled_from([*BASES, *ODD]), min_size=1, max_size=4, unique=True))
    files = {}
    for number in range(draw(st.integers(1, 7))):
        file, data = draw(records(number * 2, names))
        folder = draw(st.sampled_from(["", "a/", "b/c/"]))
        files[folder + file] = data
    asked = [*BASES, *ODD, *[draw(spellings(n)) for n in names], "foo-ba", "oo-bar", "bar-foo"]
    return files, asked


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(databases())
def test_a_lazy_answer_is_the_eager_answer(drawn: tuple[dict[str, bytes], list[str]]) -> None:
    files, asked = drawn
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder)
        for relative, data in files.items():
            (db / relative).parent.mkdir(parents=True, exist_ok=True)
            (db / relative).write_bytes(data)
        eager, lazy = Eager.read(db), OsvIndex(db)
        agree(lazy, eager, asked, [None, *VERSIONS, "2.0.0", "junk"])
        unreadable = [f"{db / n}: " for n, data in files.items() if not _utf8(data)]
        for name in asked:  # a file that is not text concerns every package, as before
            wanted = {p for p in eager.problems(name) if p.startswith(tuple(unreadable))}
            assert wanted <= set(lazy.problems(name))
        ids = {f"TEST-{n}" for n in range(16)} | {f"CVE-{n}" for n in range(16)}
        for key in sorted(ids | {f"GHSA-{n}x" for n in range(16)} | {"test-0", "TEST"}):
            assert lazy.record(key) == eager.by_id.get(key), key
        assert lazy.has_records() is (eager.records > 0)
        assert (lazy.records, lazy.invalid) == (eager.records, eager.invalid)


def test_a_name_spelled_with_escapes_or_as_an_alias_is_found(tmp_path: Path) -> None:
    """The examples the prefilter must not miss, one of each, written out."""
    (tmp_path / "a.yaml").write_text(
        'id: A-1\naffected:\n- package: {name: "\\x46oo_Bar", ecosystem: PyPI}\n'
        "  versions: ['1.0']\n"
    )
    (tmp_path / "b.json").write_text(
        '{"id": "B-1", "aliases": ["CVE-\\u0031"], "affected": [{"package": '
        '{"name": "F\\u006fo.bar", "ecosystem": "PyPI"}, "versions": ["1.0"]}]}'
    )
    (tmp_path / "c.yaml").write_text(
        "x: &pkg {name: \u212aIT, ecosystem: PyPI}\nid: C-1\naffected:\n- package: *pkg\n"
        "  versions: ['1.0']\n"
    )
    index = OsvIndex(tmp_path)
    assert [r.id for r in index.query("foo-bar", "1.0")] == ["A-1", "B-1"]
    assert [r.id for r in index.query("kit", "1.0")] == ["C-1"]
    record = index.record("CVE-1")
    assert record is not None and record.id == "B-1"


# -- the real advisory database ---------------------------------------------------------
@pytest.fixture(scope="module")
def eager_db() -> Eager:
    return Eager.read(ADVISORY_DB)


def test_on_the_advisory_db_lazy_answers_are_the_eager_ones(eager_db: Eager) -> None:
    counts = Counter({name: len(found) for name, found in eager_db.by_package.items()})
    most = [name for name, _ in counts.most_common(30)]
    others = ["py", "six", "click", "pip", "python", "pypi", "setup-py", "http", "binderhub",
              "steam", "Jinja2", "PyYAML", "not-a-package", "ecosystem"]  # fmt: skip
    lazy = OsvIndex(ADVISORY_DB)
    for name in [*TYPICAL, *most, *others]:
        records = eager_db.query(name, None)
        named = {str(v) for r in records for a in r.affected for v in a.versions[:3]}
        fixes = {str(v) for r in records for a in r.affected for e in a.ranges for _, v in e if v}
        agree(lazy, eager_db, [name], [None, "0.1", *sorted(named)[:8], *sorted(fixes)[:8]])
    for record in [r for name in most[:5] for r in eager_db.by_package[name][:3]]:
        for key in (record.id, *record.aliases):
            assert lazy.record(key) == eager_db.by_id[key]
    assert lazy.record("PYSEC-0000-0") is None
    assert (lazy.records, lazy.invalid) == (eager_db.records, eager_db.invalid)


def test_a_typical_plugins_audit_parses_a_small_part_of_the_advisory_db() -> None:
    lazy = OsvIndex(ADVISORY_DB)
    for name in TYPICAL:
        lazy.query(name, None)
        lazy.problems(name)
    total = sum(1 for _ in _record_files(ADVISORY_DB))
    assert lazy.parsed < total / 10, (lazy.parsed, total)
