"""`probe serve --workers N` and `--shard I/N` as real processes on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from core.procs import ManagedProcess
from probes.journeys import Journey
from probes.sharding import owned
from probes.spec import HttpJourney, Step
from tests.fakes.server import serve

ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"check-{i:02d}" for i in range(12)]


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """A loopback HTTP server answering 200 to every path."""
    with serve(Starlette(routes=[Route("/{path:path}", _ok)])) as url:
        yield url


def files(tmp: Path, target: str) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "readygate.yaml"
    config.write_text(f'version: 1\ntarget:\n  services: {{web: "{target}"}}\n')
    journeys = tmp / "journeys.yaml"
    journeys.write_text("version: 1\njourneys:\n" + "".join(
        f"  {name}: {{interval_s: 0.5, steps: [{{url: /{name}}}]}}\n" for name in NAMES))
    return config, journeys


def start(tmp: Path, target: str, *extra: str, name: str = "probe-serve") -> ManagedProcess:
    config, journeys = files(tmp, target)
    proc = ManagedProcess(name, [
        sys.executable, "-m", "readygate.cli", "probe", "serve", "--config", str(config),
        "-j", str(journeys), "--listen", "127.0.0.1:0", "--location", "lab", *extra],
        log_path=tmp / f"{name}.log", cwd=ROOT)
    proc.start()
    try:
        asyncio.run(proc.wait_ready_line(60))
    except BaseException:
        proc.stop()
        raise
    return proc


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (the workers of a supervisor)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def series(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name]


def scrape(url: str) -> httpx.Response:
    # A new connection each time: SO_REUSEPORT picks a worker per connection.
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(url + "/metrics", headers={"connection": "close"})


def every_journey_ran(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(url).text
        if {s["journey"] for s in series(text, "probe_success")} >= set(NAMES):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"not every journey ran within {timeout}s:\n{text[:2000]}")
        time.sleep(0.2)


def test_any_worker_answers_metrics_with_every_journey_exactly_once_and_sigterm_stops_all(
        target: str, tmp_path: Path) -> None:
    proc = start(tmp_path, target, "--workers", "2")
    try:
        assert proc.url is not None and proc.pid is not None
        workers = children(proc.pid)
        assert len(workers) == 2
        every_journey_ran(proc.url)
        seen: set[str] = set()
        for _ in range(24):
            resp = scrape(proc.url)
            assert resp.status_code == 200
            seen.add(resp.headers["x-readygate-worker"])
            success = [s["journey"] for s in series(resp.text, "probe_success")]
            assert sorted(success) == NAMES  # each journey once, whichever worker merged
            info = [s["journey"] for s in series(resp.text, "readygate_probe_info")]
            assert sorted(info) == NAMES
            runs = series(resp.text, "readygate_journey_runs_total")
            assert len(runs) == 2 * len(NAMES)  # success and failure, once per journey
            assert resp.text.count("# TYPE probe_success gauge") == 1
        assert seen == {"0", "1"}, seen  # both workers merged scrapes
        # /probe is answered by whichever worker gets the connection
        probe = httpx.get(proc.url + "/probe", params={"target": target + "/x",
                                                       "module": "http_2xx"}, timeout=10)
        assert "probe_success 1" in probe.text
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                    and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
        log = proc.log_tail(40)
        assert log.count("probe serve: stopped cleanly") == 2, log
    finally:
        proc.stop()


def test_a_worker_that_dies_stops_the_others_and_the_exit_status_says_so(
        target: str, tmp_path: Path) -> None:
    proc = start(tmp_path, target, "--workers", "2")
    try:
        assert proc.pid is not None and proc.proc is not None
        workers = children(proc.pid)
        os.kill(workers[0], signal.SIGKILL)
        assert proc.proc.wait(15) == 1
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                    and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
        assert "exited unexpectedly" in proc.log_tail(40)
    finally:
        proc.stop()


def test_shards_split_the_journeys_and_label_every_series(target: str, tmp_path: Path) -> None:
    spec = HttpJourney(steps=[Step(url="/")])
    expected = [{j.name for j in owned([Journey(n, spec, target, 0.5) for n in NAMES], i, 2)}
                for i in range(2)]
    assert expected[0] and expected[1] and not expected[0] & expected[1]
    for index in range(2):
        # the pod-name form a StatefulSet passes: its ordinal is the shard
        proc = start(tmp_path / str(index), target, "--shard", f"readygate-probes-{index}/2",
                     name=f"shard-{index}")
        try:
            assert proc.url is not None
            deadline = time.monotonic() + 30
            while True:
                text = scrape(proc.url).text
                ran = {s["journey"] for s in series(text, "probe_success")}
                if ran >= expected[index] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert ran == expected[index]
            rows = [s for f in text_string_to_metric_families(text) for s in f.samples]
            assert rows and all(s.labels.get("shard") == str(index) for s in rows)
            assert all(s.labels.get("location") == "lab" for s in rows)
            assert series(text, "readygate_shard_journeys")[0]["shard"] == str(index)
        finally:
            proc.stop()


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--shard", "2/2", "--shard '2/2': the index must be 0 to N-1 (pod ordinals start at 0)"),
    ("--workers", "0", "--workers '0' is not a positive number or 'auto'"),
])
def test_bad_fleet_flags_are_one_line_errors_with_exit_3(target: str, tmp_path: Path,
                                                         flag: str, value: str,
                                                         message: str) -> None:
    config, journeys = files(tmp_path, target)
    out = subprocess.run([sys.executable, "-m", "readygate.cli", "probe", "serve", "--config",
                          str(config), "-j", str(journeys), "--listen", "127.0.0.1:0", flag,
                          value], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 3
    assert out.stderr == f"readygate: {message}\n"
