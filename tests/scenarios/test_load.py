"""Load with Locust in subprocesses: stats stream into the timeline, everything is stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.events import Event, LoadStats
from scenarios.config import Load
from scenarios.load import LoadRunner, parse_stats_line
from tests.e2e.conftest import assert_all_stopped
from tests.fixtures.demo_system import Demo

pytestmark = pytest.mark.anyio


@pytest.fixture
def web_url(demo: Demo) -> str:
    """A real demo web (started outside the test's event loop)."""
    url = demo.web().url
    assert url is not None
    return url


async def run_load(load: Load, demo: Demo, web_url: str, tmp_path: Path, seconds: float
                   ) -> tuple[LoadRunner, list[Event], dict[str, object]]:
    events: list[Event] = []
    runner = LoadRunner(load, web_url, username=demo.user, password=demo.password,
                        workdir=tmp_path / "load", emit=events.append)
    await runner.start()
    try:
        deadline = time.monotonic() + 30
        # Bounded wait for traffic: run until `seconds` of stats have arrived.
        while sum(1 for e in events if isinstance(e, LoadStats)
                  and int(e.stats.get("requests") or 0) > 0) < seconds:
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.1)
    finally:
        summary = await runner.stop()
    return runner, events, summary


async def test_local_load_reports_rps_failures_and_p95_and_stops(
        demo: Demo, web_url: str, tmp_path: Path) -> None:
    load = Load(users=3, spawn_rate=3, journeys={"health": 1, "login": 1, "upload": 1},
                stats_interval_s=0.5)
    runner, events, summary = await run_load(load, demo, web_url, tmp_path, 2)
    assert len(runner.procs) == 1
    stats = [e for e in events if isinstance(e, LoadStats)]
    assert stats[-1].final and not any(e.final for e in stats[:-1])
    assert any(float(e.stats["rps"]) > 0 for e in stats if not e.final)
    assert int(summary["requests"]) > 0 and summary["failures"] == 0  # type: ignore[call-overload]
    assert isinstance(summary["p95_ms"], float)
    by_request = summary["by_request"]
    assert isinstance(by_request, dict)
    assert {"health: ready", "login: login", "upload: upload"} <= set(by_request)
    assert_all_stopped(runner.pids())
    # the password went through the environment, never into argv or the summary
    assert demo.password not in " ".join(" ".join(p.argv) for p in runner.procs)
    assert demo.password not in str(summary)


async def test_distributed_load_runs_a_master_and_workers_and_stops_them_all(
        demo: Demo, web_url: str, tmp_path: Path) -> None:
    load = Load(users=4, spawn_rate=4, workers=2, journeys={"health": 1},
                stats_interval_s=0.5)
    runner, events, summary = await run_load(load, demo, web_url, tmp_path, 1)
    names = [p.name for p in runner.procs]
    assert names == ["locust-master", "locust-worker-1", "locust-worker-2"]
    assert max(int(e.stats.get("connected_workers") or 0)  # type: ignore[call-overload]
               for e in events if isinstance(e, LoadStats)) == 2
    assert int(summary["requests"]) > 0  # type: ignore[call-overload]
    assert_all_stopped(runner.pids())


def test_distributed_argv_binds_the_master_where_configured() -> None:
    load = Load(workers=1, external_workers=2, master_bind_host="127.0.0.1")
    argvs = dict(LoadRunner(load, "http://127.0.0.1:1", username="u", password="p",
                            workdir=Path("/nonexistent"), emit=lambda e: None)
                 .argvs(master_port=5999))
    master = argvs["locust-master"]
    assert master[master.index("--expect-workers") + 1] == "3"  # local and external
    assert master[master.index("--master-bind-port") + 1] == "5999"
    worker = argvs["locust-worker-1"]
    assert worker[worker.index("--master-port") + 1] == "5999"
    assert "-u" not in worker  # workers take users from the master


def test_only_stats_lines_are_parsed() -> None:
    assert parse_stats_line('READYGATE_LOAD {"rps": 1.5}') == {"rps": 1.5}
    assert parse_stats_line("Type     Name  # reqs") is None
    assert parse_stats_line("READYGATE_LOAD not json") is None
