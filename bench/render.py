"""Benchmark: render all four report files for a run with many probe results.

Usage: .venv/bin/python bench/render.py [N_PROBES] [REPEATS]   (default 10000, 5)
Prints the best and median time per renderer and for the whole write (scrubbing included).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import redact
from reports.writer import RENDERERS, write_reports
from tests.reports.conftest import make_check, make_report, many_probes


def main() -> None:
    """Time each renderer and the full write."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    redact.register("bench-secret-value")  # scrubbing costs something: measure it
    checks = [make_check(s, f"check {i}") for i, s in
              enumerate(["pass"] * 10 + ["fail", "error", "skipped"])]
    report = make_report(*checks, probes=many_probes(n))
    print(f"{n} probe results, {len(checks)} checks, best/median of {repeats}")
    for name, render in RENDERERS.items():
        times, size = [], 0
        for _ in range(repeats):
            t = time.perf_counter()
            size = len(render(report))
            times.append(time.perf_counter() - t)
        print(f"  {name:<12} {min(times) * 1000:7.1f} ms  {statistics.median(times) * 1000:7.1f} ms"
              f"  {size / 1024:8.0f} KiB")
    with tempfile.TemporaryDirectory() as out:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            write_reports(report, out)
            times.append(time.perf_counter() - t)
    best, median = min(times) * 1000, statistics.median(times) * 1000
    print(f"  {'all four':<12} {best:7.1f} ms  {median:7.1f} ms"
          "  (write_reports: render + scrub + atomic write)")


if __name__ == "__main__":
    main()
