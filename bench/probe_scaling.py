"""All cores: ``probe serve --workers 2`` vs 1, beside blackbox_exporter GOMAXPROCS=2 vs 1.

    .venv/bin/python -m bench.probe_scaling [--rounds 3] [--seconds 5] [--connections 32]

Four exporters answer ``/probe?module=http_2xx`` for the same target (bench.target) from
the same blackbox.yml: readygate with one worker and blackbox_exporter with GOMAXPROCS=1,
each on CPU 0 only (``taskset -c 0``), and readygate ``--workers 2`` and blackbox_exporter
with GOMAXPROCS=2, each on CPUs 0 and 1. The load generator is ``wrk`` (C; far cheaper
per request than any Python client, apt-get install wrk) with a Lua check that counts
only answers carrying ``probe_success 1``; without wrk, bench.loadgen. The target and the
load generator may run on both CPUs in every configuration, so on a 2-CPU machine the
2-core exporters share their cores with them: the ratios are read side by side, and each
row states the CPU the exporter itself got. Rounds alternate the order of the four.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import cpu_seconds, machine, python, start_ready
from bench.loadgen import run_load
from bench.probe_throughput import BLACKBOX, BLACKBOX_CONFIG
from core.procs import ManagedProcess, free_port

SUCCESS = b"\nprobe_success 1\n"
WRK_SCRIPT = r"""
ok, bad = 0, 0  -- globals: done() reads them from each thread with thread:get
function response(status, headers, body)
  if status == 200 and string.find(body, "\nprobe_success 1\n", 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
  end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT ok=%d bad=%d errors=%d p50us=%d\n", o, b,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout, latency:percentile(50)))
end
"""


@dataclass
class Exporter:
    """One exporter configuration under test."""

    name: str
    cores: int
    proc: ManagedProcess
    url: str

    def pids(self) -> list[int]:
        """The exporter's processes: itself and, for readygate's workers, its children."""
        assert self.proc.pid is not None
        return [self.proc.pid, *children(self.proc.pid)]


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


NICE = [0]


def prioritize(pid: int | None, nice: int) -> None:
    """Give ``pid``'s session ``nice`` against the machine's other sessions.

    With ``kernel.sched_autogroup_enabled`` (Debian's default) the CPU is shared between
    sessions first, and a process's own nice counts only inside its session; every child
    readygate starts has a session of its own. So ``nice -n`` alone changes nothing
    against other engineers' test runs; the session's (autogroup's) nice does.
    """
    if not nice or pid is None:
        return
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def taskset(cores: int, argv: list[str]) -> list[str]:
    """``argv`` on CPUs 0..cores-1, at the benchmark's --nice."""
    prefix = ["nice", "-n", str(NICE[0])] if NICE[0] else []
    return [*prefix, "taskset", "-c", ",".join(str(c) for c in range(cores)), *argv]


async def start_readygate(workers: int, tmp: Path, config: Path) -> Exporter:
    proc = await start_ready(f"readygate-w{workers}", taskset(workers, python(
        "readygate", "probe", "serve", "--blackbox-config", str(config), "--listen",
        "127.0.0.1:0", "--workers", str(workers))), tmp, timeout=60)
    assert proc.url is not None
    prioritize(proc.pid, NICE[0])
    return Exporter(f"readygate --workers {workers}", workers, proc, proc.url)


async def start_blackbox(procs: int, tmp: Path, config: Path) -> Exporter:
    binary = shutil.which(BLACKBOX)
    if binary is None:
        raise SystemExit(f"{BLACKBOX} is not installed (apt-get install -y {BLACKBOX})")
    for attempt in range(2):
        port = free_port()
        proc = ManagedProcess(f"blackbox-{procs}-{attempt}", taskset(procs, [
            binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn"]), env={"GOMAXPROCS": str(procs)},
            log_path=tmp / f"blackbox-{procs}-{attempt}.log")
        proc.start()
        url = f"http://127.0.0.1:{port}"
        try:
            await proc.wait_http(url + "/-/healthy", timeout=15)
        except Exception:
            proc.stop()
            continue
        prioritize(proc.pid, NICE[0])
        return Exporter(f"blackbox GOMAXPROCS={procs}", procs, proc, url)
    raise SystemExit("blackbox_exporter did not start")


async def load(url: str, args: argparse.Namespace, tmp: Path,
               seconds: float) -> tuple[float, int, float]:
    """(successful probes/s, failed answers, p50 ms) of ``seconds`` of closed-loop load."""
    wrk = shutil.which("wrk")
    if wrk is None:
        res = await run_load(url, concurrency=args.connections, max_requests=10**7,
                             max_seconds=seconds, expect=SUCCESS)
        p50 = statistics.median(res.latencies) * 1000 if res.latencies else 0.0
        return res.rate, res.errors + res.bad_bodies, p50
    script = tmp / "count.lua"
    script.write_text(WRK_SCRIPT)
    t0 = time.monotonic()
    out = await asyncio.to_thread(
        subprocess.run, [*taskset(2, [wrk]), "-t", "2", "-c", str(args.connections), "-d",
                         f"{seconds:g}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60)
    elapsed = time.monotonic() - t0
    found = re.search(r"RESULT ok=(\d+) bad=(\d+) errors=(\d+) p50us=(\d+)", out.stdout)
    if found is None:
        raise SystemExit(f"wrk said:\n{out.stdout}\n{out.stderr}")
    ok, bad, errors, p50 = (int(x) for x in found.groups())
    duration = re.search(r"requests in ([\d.]+)(m?s)", out.stdout)
    if duration is not None:
        elapsed = float(duration.group(1)) / (1000 if duration.group(2) == "ms" else 1)
    return ok / elapsed, bad + errors, p50 / 1000


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_round(exp: Exporter, target: ManagedProcess, args: argparse.Namespace,
                    tmp: Path) -> dict[str, float]:
    assert target.url is not None and target.pid is not None
    url = f"{exp.url}/probe?target={target.url}/&module=http_2xx"
    await load(url, args, tmp, 1.0)  # warm-up
    pids = exp.pids()
    cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
    tcpu0, lcpu0 = cpu_seconds(target.pid), children_cpu() + time.process_time()
    rate, failed, p50 = await load(url, args, tmp, args.seconds)
    wall = time.monotonic() - t0
    cpu = (sum(cpu_seconds(p) for p in pids) - cpu0) / wall
    return {"rate": rate, "failed": failed, "p50_ms": p50, "cpu": cpu,
            "us_per_probe": cpu / max(rate, 1e-9) * 1e6,
            "target_cpu": (cpu_seconds(target.pid) - tcpu0) / wall,
            "load_cpu": (children_cpu() + time.process_time() - lcpu0) / wall}


async def main(args: argparse.Namespace) -> int:
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs")
    NICE[0] = args.nice
    info = machine()
    tool = "wrk" if shutil.which("wrk") else "bench.loadgen (wrk not installed)"
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}; {info['blackbox_exporter']}; "
          f"load generator {tool}, {args.connections} connections; {args.rounds} rounds of "
          f"{args.seconds:g}s; nice {args.nice}; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    rows: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="rg-bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "blackbox.yml"
        config.write_text(BLACKBOX_CONFIG)
        started: list[ManagedProcess] = []
        try:
            target = await start_ready("target", taskset(2, python("bench.target")), tmp)
            started.append(target)
            prioritize(target.pid, args.nice)
            prioritize(os.getpid(), args.nice)  # this process's session: wrk runs in it
            assert target.url is not None
            exporters: list[Exporter] = []
            for kind, cores in (("readygate", 1), ("readygate", 2), ("blackbox", 1),
                                ("blackbox", 2)):
                exp = await (start_readygate(cores, tmp, config) if kind == "readygate"
                             else start_blackbox(cores, tmp, config))
                started.append(exp.proc)
                exporters.append(exp)
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                for exp in exporters:
                    resp = await client.get(f"{exp.url}/probe", params={
                        "target": target.url + "/", "module": "http_2xx"})
                    if SUCCESS not in resp.content:
                        raise SystemExit(f"{exp.name}: probe failed:\n{resp.text[:1500]}")
            print(f"{'round':>5}  {'exporter':<26} {'cores':>5} {'probes/s':>9} {'p50 ms':>7} "
                  f"{'failed':>6} {'exporter CPU':>12} {'CPU/probe':>10} {'target CPU':>10} "
                  f"{'loadgen CPU':>11}")
            for r in range(args.rounds):
                order = exporters if r % 2 == 0 else list(reversed(exporters))
                for exp in order:
                    row = await one_round(exp, target, args, tmp)
                    rows.setdefault(exp.name, []).append(row)
                    print(f"{r + 1:>5}  {exp.name:<26} {exp.cores:>5} {row['rate']:9.0f} "
                          f"{row['p50_ms']:7.2f} {row['failed']:6.0f} "
                          f"{row['cpu']:11.0%} {row['us_per_probe']:8.0f}us "
                          f"{row['target_cpu']:10.0%} {row['load_cpu']:11.0%}")
        finally:
            for proc in reversed(started):
                proc.stop()
    med = {name: statistics.median(r["rate"] for r in rs) for name, rs in rows.items()}
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in rows.items()}
    rg = med["readygate --workers 2"] / med["readygate --workers 1"]
    bb = med["blackbox GOMAXPROCS=2"] / med["blackbox GOMAXPROCS=1"]
    print(f"\nmedian probes/s: readygate {med['readygate --workers 1']:.0f} -> "
          f"{med['readygate --workers 2']:.0f} ({rg:.2f}x); blackbox_exporter "
          f"{med['blackbox GOMAXPROCS=1']:.0f} -> {med['blackbox GOMAXPROCS=2']:.0f} "
          f"({bb:.2f}x)")
    print(f"exporter CPU (cores): readygate {cpu['readygate --workers 1']:.2f} -> "
          f"{cpu['readygate --workers 2']:.2f}; blackbox_exporter "
          f"{cpu['blackbox GOMAXPROCS=1']:.2f} -> {cpu['blackbox GOMAXPROCS=2']:.2f}")
    per_core = {n: med[n] / max(cpu[n], 1e-9) for n in med}
    print(f"probes per CPU-second of the exporter: readygate "
          f"{per_core['readygate --workers 1']:.0f} -> {per_core['readygate --workers 2']:.0f}; "
          f"blackbox_exporter {per_core['blackbox GOMAXPROCS=1']:.0f} -> "
          f"{per_core['blackbox GOMAXPROCS=2']:.0f}")
    print(f"readygate/blackbox at 2 cores: "
          f"{med['readygate --workers 2'] / med['blackbox GOMAXPROCS=2']:.2f}x")
    print(f"goal (readygate --workers 2 >= 1.8x --workers 1): {'met' if rg >= 1.8 else 'NOT met'}"
          f"; load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--nice", type=int, default=0,
                        help="run the exporters, target and wrk at this niceness, their "
                             "sessions too (root may go below 0: less noise from other work "
                             "on a shared machine)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
