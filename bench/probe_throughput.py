"""Probe throughput: readygate's ``/probe`` vs blackbox_exporter's, one core each.

    .venv/bin/python -m bench.probe_throughput [--rounds 3] [--seconds 5] [--concurrency 16]

Both exporters read the same blackbox.yml (``http_2xx``: ``prober: http``, ip4 preferred)
and probe the same local target (bench.target, a raw asyncio server); readygate is
``readygate probe serve --blackbox-config blackbox.yml``. Each exporter runs pinned to
core A (``taskset -c``, one at a time); the load generator (this process) and the target
share core B. Rounds alternate which exporter goes first, so drift on a shared machine
hits both. A probe counts only when the exporter answered 200 with ``probe_success 1``.

The work each side did is stated, not assumed: the target counts the connections it
accepted and the requests it answered in each round (``/-/stats``), so "connections per
probe" shows whether an exporter opened a fresh connection for every probe (1.00, as
blackbox_exporter does) or reused keep-alive connections. The exporter's own CPU use is
printed: near 100% of its core means the exporter, not the load generator, was the
bottleneck. The load average before and after says how busy the shared machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import cores, cpu_seconds, machine, pin_self, pinned, python, start_ready
from bench.loadgen import run_load
from core.procs import ManagedProcess

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""
LOADAVG = Path("/proc/loadavg")
# --journey: the same GET as a readygate journey module (the step engine on httpx)
JOURNEY = """\
version: 1
journeys:
  get:
    base_url: {target}
    interval_s: 3600
    steps: [{{url: /}}]
"""


@dataclass
class Exporter:
    """One exporter under test."""

    name: str
    proc: ManagedProcess
    url: str
    success: bytes  # what a successful probe's exposition contains
    module: str = "http_2xx"


async def start_blackbox(core: int, tmp: Path) -> Exporter:
    """blackbox_exporter on a free port (it cannot report one: pick, start, retry once)."""
    binary = shutil.which(BLACKBOX)
    if binary is None:
        raise SystemExit(f"{BLACKBOX} is not installed: run `bash scripts/install-os-deps.sh` "
                         f"(or apt-get install -y {BLACKBOX}) and try again")
    config = tmp / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    from core.procs import free_port

    last = ""
    for attempt in range(2):
        port = free_port()
        proc = ManagedProcess(f"blackbox-{attempt}", pinned(core, [
            binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn"]), log_path=tmp / f"blackbox-{attempt}.log")
        proc.start()
        url = f"http://127.0.0.1:{port}"
        try:
            await proc.wait_http(url + "/-/healthy", timeout=15)
        except Exception as exc:  # a port clash: the child exits; try another port once
            proc.stop()
            last = str(exc)
            continue
        return Exporter("blackbox_exporter", proc, url, b"\nprobe_success 1\n")
    raise SystemExit(f"blackbox_exporter did not start: {last}")


async def start_readygate(core: int, tmp: Path, target: str, journey: bool) -> Exporter:
    """``readygate probe serve`` with blackbox_exporter's own blackbox.yml (it prints READY).

    ``journey``: also the one-step journey ``get`` (scheduled hourly, so idle), for
    ``--journey``'s third row.
    """
    config = tmp / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    extra: list[str] = []
    if journey:
        (tmp / "journeys.yaml").write_text(JOURNEY.format(target=target))
        extra = ["-j", str(tmp / "journeys.yaml")]
    proc = await start_ready("readygate", pinned(core, python(
        "readygate", "probe", "serve", "--blackbox-config", str(config), *extra,
        "--listen", "127.0.0.1:0")), tmp)
    assert proc.url is not None
    return Exporter("readygate", proc, proc.url, b"\nprobe_success 1\n")


async def target_stats(client: httpx.AsyncClient, target: str) -> tuple[int, int]:
    """(connections accepted, requests answered) by the target so far."""
    resp = await client.get(f"{target}/-/stats")
    connections, requests = resp.text.split()
    return int(connections), int(requests)


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(LOADAVG.read_text().split()[:3])


async def one_round(exp: Exporter, target: str, args: argparse.Namespace,
                    target_pid: int, client: httpx.AsyncClient) -> dict[str, float]:
    url = f"{exp.url}/probe?target={target}/&module={exp.module}"
    # warm up: connections, imports, JIT-free but cache-warm paths
    await run_load(url, concurrency=args.concurrency, max_requests=10**9, max_seconds=0.5,
                   expect=exp.success)
    assert exp.proc.pid is not None
    conns0, reqs0 = await target_stats(client, target)
    cpu0, tcpu0, own0 = cpu_seconds(exp.proc.pid), cpu_seconds(target_pid), time.process_time()
    res = await run_load(url, concurrency=args.concurrency, max_requests=args.max_requests,
                         max_seconds=args.seconds, expect=exp.success)
    cpu = cpu_seconds(exp.proc.pid) - cpu0
    conns1, reqs1 = await target_stats(client, target)
    probes = max(1, res.requests)
    return {"rate": res.rate, "errors": res.errors + res.bad_bodies,
            "cpu": cpu / res.seconds, "target_cpu": (cpu_seconds(target_pid) - tcpu0)
            / res.seconds, "load_cpu": (time.process_time() - own0) / res.seconds,
            "p50_ms": statistics.median(res.latencies) * 1000 if res.latencies else 0.0,
            "cpu_per_probe_us": cpu / max(1, res.requests) * 1e6,
            "conns_per_probe": (conns1 - conns0) / probes,
            "reqs_per_probe": (reqs1 - reqs0) / probes, "connections": conns1 - conns0}


async def main(args: argparse.Namespace) -> int:
    exporter_core, load_core = cores()
    pin_self(load_core)
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}; {info['blackbox_exporter']}")
    print(f"exporters pinned to CPU {exporter_core}; load generator and target on CPU "
          f"{load_core}; concurrency {args.concurrency}; {args.rounds} rounds of "
          f"{args.seconds:g}s each; load average at start {loadavg()}\n")
    rows: dict[str, list[dict[str, float]]] = {"readygate": [], "blackbox_exporter": [],
                                               "readygate journey": []}
    with tempfile.TemporaryDirectory(prefix="rg-bench-tput-") as tmp_name:
        tmp = Path(tmp_name)
        target = await start_ready("target", pinned(load_core, python("bench.target")), tmp)
        started: list[ManagedProcess] = [target]
        try:
            assert target.url is not None and target.pid is not None
            blackbox = await start_blackbox(exporter_core, tmp)
            started.append(blackbox.proc)
            readygate = await start_readygate(exporter_core, tmp, target.url, args.journey)
            others = [Exporter("readygate journey", readygate.proc, readygate.url,
                               b'probe_success{journey="get"} 1.0', "get")] \
                if args.journey else []
            started.append(readygate.proc)
            async with httpx.AsyncClient(trust_env=False) as client:
                for exp in (blackbox, readygate, *others):  # sanity: one probe each, passing
                    resp = await client.get(f"{exp.url}/probe", params={
                        "target": target.url + "/", "module": exp.module})
                    if exp.success not in resp.content:
                        raise SystemExit(f"{exp.name} probe failed:\n{resp.text[:2000]}")
                print(f"{'round':>5}  {'exporter':<18} {'probes/s':>9} {'p50 ms':>7} "
                      f"{'errors':>6} {'exporter CPU':>12} {'CPU/probe':>10} "
                      f"{'target CPU':>10} {'loadgen CPU':>11} {'conns/probe':>11} "
                      f"{'reqs/probe':>10}")
                for r in range(args.rounds):
                    pair = (readygate, blackbox) if r % 2 == 0 else (blackbox, readygate)
                    order = (*pair, *others)
                    for exp in order:
                        row = await one_round(exp, target.url, args, target.pid, client)
                        rows[exp.name].append(row)
                        print(f"{r + 1:>5}  {exp.name:<18} {row['rate']:9.0f} "
                              f"{row['p50_ms']:7.2f} {row['errors']:6.0f} {row['cpu']:11.0%} "
                              f"{row['cpu_per_probe_us']:8.0f}us {row['target_cpu']:10.0%} "
                              f"{row['load_cpu']:11.0%} {row['conns_per_probe']:11.2f} "
                              f"{row['reqs_per_probe']:10.2f}")
        finally:
            for proc in reversed(started):
                proc.stop()
    rg = statistics.median(r["rate"] for r in rows["readygate"])
    bb = statistics.median(r["rate"] for r in rows["blackbox_exporter"])
    rg_cpu = statistics.median(r["cpu_per_probe_us"] for r in rows["readygate"])
    bb_cpu = statistics.median(r["cpu_per_probe_us"] for r in rows["blackbox_exporter"])
    print(f"\nmedian probes/s: readygate {rg:.0f}, blackbox_exporter {bb:.0f}; "
          f"ratio readygate/blackbox {rg / bb:.2f}x (goal: >= 1.00x)")
    print(f"median CPU per probe: readygate {rg_cpu:.0f} us, blackbox_exporter {bb_cpu:.0f} us")
    if args.journey:
        rj = statistics.median(r["rate"] for r in rows["readygate journey"])
        rj_cpu = statistics.median(r["cpu_per_probe_us"] for r in rows["readygate journey"])
        print(f"journey module: {rj:.0f} probes/s, ratio {rj / bb:.2f}x, CPU per probe "
              f"{rj_cpu:.0f} us")
    for name in [n for n in rows if rows[n]]:
        conns = sum(r["connections"] for r in rows[name])
        per = statistics.median(r["conns_per_probe"] for r in rows[name])
        print(f"work: the target accepted {conns:.0f} connections from {name} "
              f"({per:.2f} per probe)")
    print(f"load average at end {loadavg()}")
    print("goal met" if rg >= bb else "goal NOT met")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--journey", action="store_true",
                        help="also measure the same GET as a readygate journey module")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="stop a round after this many requests")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
