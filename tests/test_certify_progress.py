"""What `certify` shows a person: live progress on a terminal, the plain report elsewhere.

The live display is judged as a terminal shows it: the real command runs on a
pseudo-terminal and pyte (a VT100 emulator) renders what it wrote, cursor moves and
erased lines included, into the screen a person reads."""

from __future__ import annotations

from aitbc.plugin_toolkit.certify.model import CertificationReport, CheckResult, CheckStatus
from aitbc.plugin_toolkit.certify.writers._common import PARTIAL
from aitbc.plugin_toolkit.certify.writers.text import render
from test_writers import FAILING


def test_compact_text_is_the_full_report_less_its_table() -> None:
    full, compact = render(FAILING), render(FAILING, compact=True)
    table = full[2 : 2 + len(FAILING.checks)]
    assert [line.split()[0] for line in table] == [c.id for c in FAILING.checks]
    assert compact == full[:1] + full[2 + len(FAILING.checks) :]
    # What a person acts on stays: the verdict, findings, artifacts, reasons, provenance.
    for kept in ("NOT CERTIFIED: my-plugin 0.1.0", "interface: FAILED", "Artifacts:",
                 "Not certified because:", "  - interface failed: 2 errors"):  # fmt: skip
        assert kept in compact


def test_compact_partial_run_still_says_it_is_no_certification() -> None:
    report = CertificationReport(
        False, {"name": "p", "version": "1"}, (CheckResult("security", CheckStatus.PASSED),),
        only=("security",),
    )  # fmt: skip
    lines = render(report, compact=True)
    assert lines == ["PASSED (only: security): p 1", PARTIAL, "", "Checked by aitbc-plugin"]
