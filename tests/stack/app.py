"""A user's own service for the stack tests: /metrics (prometheus-client) and a switch to break it.

Run as ``python -m tests.stack.app [--broken] [--token T]``; prints ``READY <url>``.
``GET /`` answers 200 (500 while broken); ``POST /break`` and ``POST /fix`` flip the switch.
While broken, the service's own work fails too: ``app_errors_total`` rises every 0.2 s,
so an alert on it does not depend on anyone calling the service.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("app_requests_total", "Requests served", ["status"], registry=REGISTRY)
ERRORS = Counter("app_errors_total", "Units of work that failed", registry=REGISTRY)


class State:
    """The switch, and the bearer token /metrics requires (None: none)."""

    broken = threading.Event()
    token: str | None = None


class Handler(BaseHTTPRequestHandler):
    """/, /metrics, /break, /fix."""

    def do_GET(self) -> None:
        if self.path == "/metrics":
            if State.token is not None and \
                    self.headers.get("Authorization") != f"Bearer {State.token}":
                self._send(401, b"unauthorized\n")
                return
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif self.path == "/":
            status = 500 if State.broken.is_set() else 200
            REQUESTS.labels(status=str(status)).inc()
            self._send(status, b"broken\n" if status == 500 else b"ok\n")
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        if self.path == "/break":
            State.broken.set()
        elif self.path == "/fix":
            State.broken.clear()
        else:
            self._send(404, b"not found\n")
            return
        self._send(200, b"ok\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _failing_work(stop: threading.Event) -> None:
    while not stop.wait(0.2):
        if State.broken.is_set():
            ERRORS.inc()


def main() -> None:
    """Serve on a free loopback port until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--broken", action="store_true", help="start broken")
    parser.add_argument("--token", help="bearer token /metrics requires")
    args = parser.parse_args()
    if args.broken:
        State.broken.set()
    State.token = args.token
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()
    threading.Thread(target=_failing_work, args=(stop,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    sys.stdout.write(f"READY http://{host!s}:{port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        stop.set()
        server.server_close()


if __name__ == "__main__":
    main()
