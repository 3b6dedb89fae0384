"""Load with Locust, at arm's length: Locust runs in its own processes, never in readygate's.

``import locust`` monkey-patches a process with gevent (FIELD-NOTES), so readygate starts
``python -m locust -f scenarios/locustfile.py --headless ...`` as a child: one local
process, or a master and N local workers (Locust's distributed mode; further workers on
other machines may join the master). The locustfile prints a ``READYGATE_LOAD {json}``
line per interval; each becomes a :class:`~core.events.LoadStats` event in the
timeline, and the last (``final``) one is the load summary of the report.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import StackError
from core.events import Event, LoadStats, Note
from core.procs import ManagedProcess
from scenarios.config import Load

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
STATS_PREFIX = "READYGATE_LOAD "
_WORKER_WAIT_S = 30
_STOP_TIMEOUT_S = 15.0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def parse_stats_line(line: str) -> dict[str, Any] | None:
    """The JSON of a ``READYGATE_LOAD`` line, or None for any other output."""
    if not line.startswith(STATS_PREFIX):
        return None
    try:
        data = json.loads(line[len(STATS_PREFIX):])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class LoadRunner:
    """Starts Locust for a scenario's ``load`` block, streams its stats as events, stops it."""

    def __init__(self, load: Load, host: str, *, username: str, password: str,
                 workdir: Path, emit: Callable[[Event], None],
                 upload_size_bytes: int = 1024) -> None:
        self.load = load
        self.host = host
        self.username = username
        self._password = password
        self.workdir = Path(workdir)
        self.emit = emit
        self.upload_size_bytes = upload_size_bytes
        self.procs: list[ManagedProcess] = []
        self.final: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: list[threading.Thread] = []

    # -- argv ------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        spec = {"journeys": dict(self.load.journeys), "username": self.username,
                "wait_min_s": self.load.wait_min_s, "wait_max_s": self.load.wait_max_s,
                "upload_size_bytes": self.upload_size_bytes,
                "stats_interval_s": self.load.stats_interval_s}
        return {"READYGATE_LOAD_SPEC": json.dumps(spec),
                "READYGATE_LOAD_PASSWORD": self._password}

    def argvs(self, master_port: int | None = None) -> list[tuple[str, list[str]]]:
        """(name, argv) of every Locust process to start: one, or a master and its workers."""
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
        run = ["--headless", "-u", str(self.load.users), "-r", f"{self.load.spawn_rate:g}",
               "-t", f"{int(self.load.max_duration_s)}s", "--host", self.host.rstrip("/"),
               "--only-summary", "--stop-timeout", "1",
               "--json-file", str(self.workdir / "locust-summary")]
        total_workers = self.load.workers + self.load.external_workers
        if total_workers == 0:
            return [("locust", base + run)]
        port = master_port or _free_port(self.load.master_bind_host)
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
        self._loop = asyncio.get_running_loop()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self._env()
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
        self.emit(Note(time.time(), f"load: {self.load.users} Locust users on {self.host} "
                       f"({mode})"))
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
        except (ValueError, OSError):  # stdout closed by stop(): the reader is done
            return

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
        return {"users": self.load.users, "workers": self.load.workers,
                "external_workers": self.load.external_workers, "host": self.host,
                "started_at": self.started_at, "stopped_at": self.stopped_at,
                "pids": self.pids(), **{k: v for k, v in final.items() if k != "at"}}


def describe(summary: dict[str, Any]) -> str:
    """One line: requests, failures, RPS, p95."""
    p95 = summary.get("p95_ms")
    return (f"{summary.get('requests', 0)} requests, {summary.get('failures', 0)} failed, "
            f"{summary.get('rps', 0) or 0:.1f} rps, p95 "
            + (f"{p95:.0f} ms" if isinstance(p95, int | float) else "n/a"))
