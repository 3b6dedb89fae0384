"""The user's side of `readygate stack`: their running service, their rules, their receiver."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.procs import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]

RULES = """\
groups:
  - name: app
    rules:
      - alert: AppErrors
        expr: rate(app_errors_total[5s]) > 0
        labels: {severity: page}
        annotations: {summary: the app fails its work}
      - alert: AppDown
        expr: up{job="app"} == 0
        labels: {severity: page}
        annotations: {summary: Prometheus cannot scrape the app}
"""


class App:
    """The user's service (tests/stack/app.py) in its own process."""

    def __init__(self, proc: ManagedProcess) -> None:
        self.proc = proc
        assert proc.url is not None
        self.url = proc.url
        self.address = proc.url.removeprefix("http://")


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Start the test's own service (``--broken``, ``--token T``); stopped by PID afterwards."""
    procs: list[ManagedProcess] = []

    def start(*args: str) -> App:
        proc = ManagedProcess("app", [sys.executable, "-m", "tests.stack.app", *args],
                              log_path=tmp_path / f"app{len(procs)}.log", cwd=ROOT)
        procs.append(proc)
        proc.start()
        asyncio.run(proc.wait_ready_line(20))
        return App(proc)

    yield start
    for proc in procs:
        proc.stop()


class Receiver:
    """The user's own Alertmanager webhook receiver: records every notification it gets."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alertnames(self, status: str = "firing") -> set[str]:
        """Alert names of every notification with this status."""
        return {a["labels"]["alertname"] for p in self.payloads for a in p["alerts"]
                if a["status"] == status}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver of the test's own."""
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(5)


def post_command(url: str) -> str:
    """A shell command that POSTs to ``url`` (a command fault's inject or rollback)."""
    code = f"import urllib.request as u; u.urlopen(u.Request({url!r}, method='POST'), timeout=5)"
    return f"{sys.executable} -c \"{code}\""


def write_config(directory: Path, app_url: str, *, gates: dict[str, Any],
                 stack: dict[str, Any] | None = None) -> Path:
    """readygate.yaml for the app, with the stack scraping it and the test's rules."""
    (directory / "rules.yml").write_text(RULES, encoding="utf-8")
    config = {
        "version": 1,
        "target": {"name": "app", "environment": "ci", "services": {"app": app_url}},
        "stack": {"rules": ["rules.yml"],
                  "scrape": [{"job": "app", "targets": [app_url.removeprefix("http://")],
                              "labels": {"service": "app"}}],
                  **(stack or {})},
        "gates": gates,
    }
    path = directory / "readygate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def readygate(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the readygate CLI in ``cwd`` (where the config's relative paths start)."""
    return subprocess.run([sys.executable, "-m", "readygate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def alive(pid: int) -> bool:
    """Whether a process (zombies aside) with this PID exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(root: int) -> dict[int, str]:
    """PID -> command line of every live descendant of ``root`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
            cmdlines[int(entry.name)] = cmd.strip()
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = cmdlines.get(child, "?")
            todo.append(child)
    return out
