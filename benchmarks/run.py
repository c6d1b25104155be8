"""Run the benchmarks and print each as a ratio against its naive alternative.

    python3 .ci/dev.py bench            # all
    python3 .ci/dev.py bench --repeat 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sdk  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = bench_sdk.run(args.repeat)
    print(f"{'benchmark':48} {'ours':>9} {'naive':>9} {'ratio':>7} {'goal':>6}  naive alternative")
    for r in results:
        r["ratio"] = r["ours_s"] / r["naive_s"]
        verdict = "ok" if r["ratio"] <= r["goal"] else "MISSED"
        print(
            f"{r['benchmark']:48} {r['ours_s'] * 1000:7.2f}ms {r['naive_s'] * 1000:7.2f}ms "
            f"{r['ratio']:6.2f}x {r['goal']:5.1f}x  {r['naive']} [{verdict}]"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
