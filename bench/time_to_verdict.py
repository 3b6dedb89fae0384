"""Time to verdict vs the detection floor, for the demo's HighErrorRate alert.

The floor is when the alert's notification reached the sink minus the fault start (what
the observability pipeline itself takes); readygate's figure is when it declared the
notification check passed minus the fault start. The difference is readygate's overhead.

    .venv/bin/python -m bench.time_to_verdict --runs 10 [--poll 0.1]

One demo stack is started once; the gate runs ``--runs`` times on it (each run waits for
the alert's resolved notification, so the next fault starts from a clean state).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from demo.stack import DemoStack, StackOptions
from readygate.config import load_config, parse_config
from readygate.runner import RunOptions, run_gate, with_stack

GATE = """
gates:
  bench:
    scenario:
      baseline: {min_duration_s: 1, max_duration_s: 30}
      fault: {kind: http_error, service: storage, status: 500, path_prefix: /objects, ttl_s: 60}
      fault_phase: {max_duration_s: 30}
      recovery: {max_duration_s: 40}
    checks:
      - {signal: alert, alertname: HighErrorRate, labels: {service: web}, deadline_s: 20}
      - {signal: notification, alertname: HighErrorRate, deadline_s: 20}
      - {signal: notification, phase: recovery, alertname: HighErrorRate, status: resolved,
         anchor: fault_end, deadline_s: 35}
"""


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(runs: int, poll: float) -> int:
    base = load_config(Path(__file__).resolve().parent.parent / "readygate.yaml")
    bench_gate = parse_config(GATE).gates["bench"]
    config = base.model_copy(update={"gates": {"bench": bench_gate}})
    password = config.target.credentials.password
    assert password is not None
    rows: list[tuple[float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        stack = DemoStack(StackOptions(password=password.get_secret_value()), Path(tmp))
        urls = await stack.start()
        try:
            filled = with_stack(config, urls)
            options = RunOptions(out_dir=Path(tmp) / "out", stdout=io.StringIO(),
                                 stderr=io.StringIO(), poll_interval_s=poll)
            print(f"{'run':>3}  {'floor_s':>8}  {'verdict_s':>9}  {'overhead_s':>10}  "
                  f"{'alert_seen_s':>12}  verdict")
            for i in range(1, runs + 1):
                report = await run_gate(filled, "bench", options)
                fault_start = report.faults[0]["started_at"]
                notif = report.checks[1]
                alert = report.checks[0]
                if notif.status != "pass" or notif.settled_at is None:
                    print(f"{i:>3}  notification check {notif.status}: {notif.message}")
                    continue
                floor = float(notif.evidence["received_at"]) - fault_start
                verdict = notif.settled_at - fault_start
                alert_seen = (alert.latency_s or float("nan"))
                rows.append((floor, verdict, verdict - floor, alert_seen))
                print(f"{i:>3}  {floor:8.3f}  {verdict:9.3f}  {verdict - floor:10.3f}  "
                      f"{alert_seen:12.3f}  {report.verdict}")
        finally:
            stack.stop()
    if not rows:
        print("no successful run")
        return 1
    over = [r[2] for r in rows]
    floors = [r[0] for r in rows]
    print(f"\nruns={len(rows)} poll_interval={poll}s")
    print(f"detection floor (fault → notification at sink): median {statistics.median(floors):.3f}s"
          f"  p95 {quantile(floors, 0.95):.3f}s")
    print(f"readygate overhead (verdict − floor): median {statistics.median(over):.3f}s  "
          f"p95 {quantile(over, 0.95):.3f}s  max {max(over):.3f}s  (goal: median <= 0.25s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.1, help="check poll interval (s)")
    args = parser.parse_args()
    t0 = time.monotonic()
    code = asyncio.run(main(args.runs, args.poll))
    print(f"wall time {time.monotonic() - t0:.1f}s", file=sys.stderr)
    raise SystemExit(code)
