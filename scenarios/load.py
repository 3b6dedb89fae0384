"""Load with Locust, at arm's length: Locust runs in its own processes, never in readygate's.

``import locust`` monkey-patches a process with gevent (FIELD-NOTES), so readygate starts
``python -m locust -f FILE,scenarios/readygate_stats.py --headless ...`` as a child: one
local process, or a master and N local workers (Locust's distributed mode; further workers
on other machines may join the master). FILE is readygate's own locustfile, which runs the
gate's HTTP journeys (one task per journey, with its weight, on the probes' step engine),
or the user's own locustfile (``load.locustfile``), run as is. Either way the stats plugin
prints a ``READYGATE_LOAD {json}`` line per interval; each becomes a
:class:`~core.events.LoadStats` event in the timeline, and the last (``final``) one is the
load summary of the report. The journeys, secrets included, reach the children in one
environment variable (``READYGATE_LOAD_SPEC``), never argv or a file. See docs/load.md.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import to_jsonable_python

from core.errors import ConfigError, StackError
from core.events import Event, LoadStats, Note
from core.http import display_url
from core.procs import ManagedProcess, free_port
from probes.journeys import Journey
from scenarios.config import Load

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
STATS_PLUGIN = Path(__file__).resolve().parent / "readygate_stats.py"
STATS_PREFIX = "READYGATE_LOAD "
SPEC_ENV = "READYGATE_LOAD_SPEC"
# Linux refuses to exec with one environment string over 128 KiB (MAX_ARG_STRLEN).
MAX_SPEC_BYTES = 120_000
_WORKER_WAIT_S = 30
_STOP_TIMEOUT_S = 15.0


def parse_stats_line(line: str) -> dict[str, Any] | None:
    """The JSON of a ``READYGATE_LOAD`` line, or None for any other output."""
    if not line.startswith(STATS_PREFIX):
        return None
    try:
        data = json.loads(line[len(STATS_PREFIX):])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _reveal(value: Any) -> Any:
    """``value`` with every SecretStr replaced by its secret (for the child only)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def journey_document(journey: Journey, weight: int) -> dict[str, Any]:
    """One journey as the locustfile reads it: name, weight, target, files dir, full spec."""
    spec = _reveal(journey.spec.model_dump(mode="python", by_alias=True))
    return {"name": journey.name, "weight": weight, "base_url": journey.base_url,
            "files_dir": str(journey.files_dir) if journey.files_dir else None,
            "spec": to_jsonable_python(spec)}


def child_spec(load: Load, journeys: list[tuple[Journey, int]]) -> str:
    """The READYGATE_LOAD_SPEC document: settings and the HTTP journeys (secrets revealed)."""
    return json.dumps({
        "wait_min_s": load.wait_min_s, "wait_max_s": load.wait_max_s,
        "stats_interval_s": load.stats_interval_s,
        "journeys": [journey_document(j, w) for j, w in journeys]})


class LoadRunner:
    """Starts Locust for a scenario's ``load`` block, streams its stats as events, stops it."""

    def __init__(self, load: Load, host: str, journeys: list[tuple[Journey, int]], *,
                 workdir: Path, emit: Callable[[Event], None]) -> None:
        self.load = load
        self.host = host
        # Browser journeys are not load: a browser per Locust user measures the load box.
        self.journeys = [(j, w) for j, w in journeys if j.kind == "http" and w > 0]
        self.skipped = [j.name for j, _ in journeys if j.kind != "http"]
        self.workdir = Path(workdir).resolve()
        self.emit = emit
        self.procs: list[ManagedProcess] = []
        self.final: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.started_at: float | None = None
        self.running_at: float | None = None  # first stats line with every user running
        self.stopped_at: float | None = None
        self._running: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: list[threading.Thread] = []

    # -- what the children get ---------------------------------------------------------
    def check(self) -> None:
        """Raise ConfigError when there is nothing Locust could run."""
        if self.load.locustfile is not None:
            if "," in self.load.locustfile:  # Locust splits -f on commas
                raise ConfigError("Locust cannot run a locustfile whose path has a comma: "
                                  f"{self.load.locustfile!r}", key="scenario.load.locustfile")
            return
        if not self.journeys:
            skipped = f" (browser journeys are skipped: {', '.join(self.skipped)})" \
                if self.skipped else ""
            raise ConfigError("load has no HTTP journey to run" + skipped,
                              key="scenario.load.journeys")

    def child_env(self) -> dict[str, str]:
        """What the Locust processes get in their environment (secrets go only here)."""
        spec = child_spec(self.load, [] if self.load.locustfile else self.journeys)
        if len(spec.encode()) > MAX_SPEC_BYTES:
            raise ConfigError(f"the load journeys take {len(spec.encode()) // 1024} KiB, more "
                              f"than one environment variable holds (128 KiB): move large "
                              "inline bodies to files (body: {file: ...})",
                              key="scenario.load.journeys")
        env = {SPEC_ENV: spec}
        if display_url(self.host) != self.host:
            env["LOCUST_HOST"] = self.host.rstrip("/")
        return env

    def argvs(self, master_port: int | None = None) -> list[tuple[str, list[str]]]:
        """(name, argv) of every Locust process to start: one, or a master and its workers."""
        locustfile = self.load.locustfile or str(LOCUSTFILE)
        # Locust imports every -f file into one process: the plugin rides along with either.
        base = [sys.executable, "-m", "locust", "-f", f"{locustfile},{STATS_PLUGIN}",
                "--loglevel", "WARNING"]
        # A target with user:password@ goes to Locust as LOCUST_HOST (child_env), never in argv.
        host = [] if display_url(self.host) != self.host else ["--host", self.host.rstrip("/")]
        run = ["--headless", "-u", str(self.load.users), "-r", f"{self.load.spawn_rate:g}",
               "-t", f"{int(self.load.max_duration_s)}s", *host,
               "--only-summary", "--stop-timeout", "1",
               "--json-file", str(self.workdir / "locust-summary")]
        total_workers = self.load.workers + self.load.external_workers
        if total_workers == 0:
            return [("locust", base + run)]
        port = master_port or free_port(self.load.master_bind_host)
        master = base + run + ["--master", "--master-bind-host", self.load.master_bind_host,
                               "--master-bind-port", str(port),
                               "--expect-workers", str(total_workers),
                               "--expect-workers-max-wait", str(_WORKER_WAIT_S)]
        out = [("locust-master", master)]
        connect = "127.0.0.1" if self.load.master_bind_host in ("0.0.0.0", "") \
            else self.load.master_bind_host
        for i in range(self.load.workers):
            out.append((f"locust-worker-{i + 1}",
                        [*base, "--worker", "--master-host", connect, "--master-port", str(port)]))
        return out

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the Locust process(es); stats arrive as events from here on."""
        self.check()
        self._loop = asyncio.get_running_loop()
        self._running = asyncio.Event()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        if self.skipped and not self.load.locustfile:
            self.emit(Note(time.time(), f"load skips browser journey(s) "
                           f"{', '.join(self.skipped)}: a browser per Locust user is not load",
                           level="warning"))
        self.started_at = time.time()
        for name, argv in self.argvs():
            proc = ManagedProcess(name, argv, env=env,
                                  log_path=self.workdir / "logs" / f"{name}.log")
            proc.start()
            self.procs.append(proc)
            reader = threading.Thread(target=self._read, args=(proc,), name=f"{name}-stdout",
                                      daemon=True)
            reader.start()
            self._readers.append(reader)
        mode = (f"a master and {self.load.workers} local worker(s)"
                + (f" + {self.load.external_workers} external" if self.load.external_workers
                   else "")) if self.procs[1:] or self.load.external_workers else "one process"
        what = f"locustfile {self.load.locustfile}" if self.load.locustfile else \
            "journeys " + ", ".join(f"{j.name}={w}" for j, w in self.journeys)
        self.emit(Note(time.time(), f"load: {self.load.users} Locust users on "
                       f"{display_url(self.host)} "
                       f"({mode}) running {what}"))
        await asyncio.sleep(0)
        dead = [p for p in self.procs if not p.alive()]
        if dead:
            raise StackError(f"{dead[0].name} exited at start: {dead[0].log_tail(8)}")

    def _read(self, proc: ManagedProcess) -> None:
        """Reader thread: stats lines → events on the loop's thread."""
        assert proc.proc is not None and proc.proc.stdout is not None
        try:
            for line in proc.proc.stdout:
                data = parse_stats_line(line)
                if data is None:
                    continue
                final = bool(data.pop("final", False))
                self.last = data
                if final:
                    self.final = data
                at = float(data.get("at") or time.time())
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(self.emit, LoadStats(at, data, final))
                    if not final and self.running_at is None and self._is_running(data):
                        self.running_at = at
                        self._loop.call_soon_threadsafe(self._now_running, data)
        except (ValueError, OSError):  # stdout closed by stop(): the reader is done
            return

    def _is_running(self, data: dict[str, Any]) -> bool:
        """Every user spawned, and requests made: the load the scenario asked for is on."""
        return int(data.get("active_users") or 0) >= self.load.users and \
            int(data.get("requests") or 0) > 0

    def _now_running(self, data: dict[str, Any]) -> None:
        assert self._running is not None and self.started_at is not None
        self._running.set()
        self.emit(Note(time.time(), f"load running: {data.get('active_users')} users, "
                       f"{float(data.get('rps') or 0):.1f} rps, "
                       f"{(self.running_at or time.time()) - self.started_at:.1f}s after start"))

    async def wait_running(self) -> None:
        """Return once every user runs and requests go out, or once Locust has exited."""
        assert self._running is not None, "start() first"
        while not self._running.is_set():
            if self.procs and not self.procs[0].alive():
                return
            try:
                await asyncio.wait_for(self._running.wait(), timeout=0.25)
            except TimeoutError:
                continue

    def pids(self) -> list[int]:
        """PIDs of every Locust process started (for leak checks)."""
        return [p.pid for p in self.procs if p.pid is not None]

    async def stop(self) -> dict[str, Any]:
        """SIGTERM the master (it writes its summary and tells workers to quit), then the rest."""
        if not self.procs:
            return self.summary()
        master, workers = self.procs[0], self.procs[1:]
        await asyncio.to_thread(master.stop, _STOP_TIMEOUT_S)
        for reader in self._readers[:1]:
            await asyncio.to_thread(reader.join, 2.0)
        for worker in workers:
            await asyncio.to_thread(worker.stop, 5.0)
        self.stopped_at = time.time()
        if self.final is None:
            self.final = self._json_summary()
        summary = self.summary()
        self.emit(Note(time.time(), "load stopped: " + describe(summary)))
        return summary

    def _json_summary(self) -> dict[str, Any] | None:
        """Totals from Locust's own --json-file, when the final stats line never came."""
        path = self.workdir / "locust-summary.json"
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        requests = sum(int(e.get("num_requests", 0)) for e in entries)
        failures = sum(int(e.get("num_failures", 0)) for e in entries)
        return {"requests": requests, "failures": failures, "source": "locust --json-file"}

    def summary(self) -> dict[str, Any]:
        """The load block of the report."""
        final = self.final or self.last or {}
        source: dict[str, Any] = {"locustfile": self.load.locustfile} if self.load.locustfile \
            else {"journeys": {j.name: w for j, w in self.journeys}}
        return {"users": self.load.users, "workers": self.load.workers,
                "external_workers": self.load.external_workers,
                "host": display_url(self.host), **source,
                "started_at": self.started_at, "running_at": self.running_at,
                "stopped_at": self.stopped_at,
                "pids": self.pids(), **{k: v for k, v in final.items() if k != "at"}}


def describe(summary: dict[str, Any]) -> str:
    """One line: requests, failures, RPS, p95."""
    p95 = summary.get("p95_ms")
    return (f"{summary.get('requests', 0)} requests, {summary.get('failures', 0)} failed, "
            f"{summary.get('rps', 0) or 0:.1f} rps, p95 "
            + (f"{p95:.0f} ms" if isinstance(p95, int | float) else "n/a"))
