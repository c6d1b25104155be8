"""Run the benchmarks and print each as a ratio against its naive alternative.

    python3 .ci/dev.py bench                          # all groups
    python3 .ci/dev.py bench --repeat 3
    python3 .ci/dev.py bench --only sdk,new,help      # skip the slow certify group
    python3 .ci/dev.py bench --only certify --certify-rounds 3

Groups: sdk (the SDK with 1,000 plugins), host (isolated plugins' event round trip and
start-up against in-process, the entry-point listing in a fresh process), new
(`aitbc-plugin new` vs `copier copy`),
help (`aitbc-plugin --help` start-up and imports), certify (`aitbc-plugin certify`
cold, warm and after a one-line edit vs the same tools by hand; needs PyPI for the
cold runs' downloads), hook (the pre-commit hook after a one-line edit),
sandbox (each phase of a certification in the jail, followed by strace, vs bare), osv
(the audit's first queries to a cold advisory index vs parsing every record first),
strace (reading real strace logs vs the character-walking parser it replaced).
Breakdowns (per check, per step, slowest imports) are printed before the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_certify
import bench_cli
import bench_hook
import bench_host
import bench_osv
import bench_sandbox
import bench_sdk
import bench_strace

Group = Callable[[argparse.Namespace], list[dict[str, Any]]]
GROUPS: dict[str, Group] = {
    "sdk": lambda a: bench_sdk.run(a.repeat),
    "host": lambda a: bench_host.run(a.repeat),
    "new": lambda a: bench_cli.bench_new(a.repeat),
    "help": lambda a: bench_cli.bench_help(a.repeat * 4),
    "certify": lambda a: bench_certify.bench_certify(a.certify_rounds),
    "hook": lambda a: bench_hook.bench_hook(a.repeat),
    "sandbox": lambda a: bench_sandbox.bench_jail(a.repeat),
    "osv": lambda a: bench_osv.bench_osv(a.repeat),
    "strace": lambda a: bench_strace.bench_strace(a.repeat),
}


def groups(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in GROUPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown group(s) {', '.join(unknown)}; "
                                         f"choose from {', '.join(GROUPS)}")  # fmt: skip
    return chosen


def row(r: dict[str, Any]) -> str:
    goal = r.get("goal")
    if "value" in r:  # a measured value against an absolute goal (e.g. memory)
        unit = r.get("unit", "")
        measured, ours, naive = f"{r['value']:6.0f}{unit:>3}", "", ""
        verdict = "-" if goal is None else ("ok" if r["value"] <= goal else "MISSED")
        goal_text = "-" if goal is None else f"{goal:.0f}{unit}"
    else:
        r["ratio"] = r["ours_s"] / r["naive_s"]
        measured = f"{r['ratio']:8.2f}x"
        ours, naive = f"{r['ours_s'] * 1000:.1f}ms", f"{r['naive_s'] * 1000:.1f}ms"
        verdict = "-" if goal is None else ("ok" if r["ratio"] <= goal else "MISSED")
        goal_text = "-" if goal is None else f"{goal:.1f}x"
    note = f" ({r['note']})" if r.get("note") else ""
    return (f"{r['benchmark']:48} {ours:>10} {naive:>10} {measured:>9} {goal_text:>7}  "
            f"{r['naive']}{note} [{verdict}]")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--certify-rounds", type=int, default=3)
    parser.add_argument("--only", type=groups, default=list(GROUPS),
                        help=f"comma-separated groups: {','.join(GROUPS)}")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    failed = []
    # Ratios suffer less than absolute times from other work on the machine, but not
    # nothing: say how busy it was.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for name in args.only:
        try:
            results += GROUPS[name](args)
        except Exception as exc:  # report the group's failure, run the others
            traceback.print_exc()
            failed.append(f"{name}: {exc}")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"{'benchmark':48} {'ours':>10} {'naive':>10} {'ratio':>9} {'goal':>7}  "
          "naive alternative [verdict]")  # fmt: skip
    for r in results:
        print(row(r))
    for failure in failed:
        print(f"FAILED {failure}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
