"""Whole demo gate: `readygate demo` wall time from a cold start, and where the time goes.

    .venv/bin/python -m bench.demo_wall --runs 3

Each run is a fresh `readygate demo` process (interpreter start, imports, stack start,
phases, checks, report, stop). The breakdown comes from the run's own report.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(out: Path) -> dict[str, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "readygate", "demo", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"readygate demo exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    row = {"wall": wall, "stack_start": report["stack"]["start_timings_s"]["total"]}
    for phase in report["phases"]:
        row[phase["phase"]] = phase["finished_at"] - phase["started_at"]
    row["gate"] = report["finished_at"] - report["started_at"]
    row["other"] = wall - row["stack_start"] - row["gate"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rg-bench-demo-") as tmp:
        for i in range(args.runs):
            rows.append(one_run(Path(tmp) / f"run{i}"))
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:.2f}s" for k, v in rows[-1].items()))
    print("\nmedian over", len(rows), "runs:")
    for key in rows[0]:
        print(f"  {key:<12} {statistics.median(r[key] for r in rows):7.2f}s")
    print("  (other = interpreter start, imports, report writing, stopping the stack; "
          "goal: wall <= 90 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
