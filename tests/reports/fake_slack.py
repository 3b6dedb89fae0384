"""A local stand-in for Slack speaking its documented wire format (tests only).

Incoming webhooks: ``POST /services/...`` with a JSON body, answered ``200 ok`` (text).
Web API: ``POST /api/chat.postMessage`` with ``Authorization: Bearer <token>``, answered
``{"ok": true, "channel": ..., "ts": ...}`` or ``{"ok": false, "error": "invalid_auth"}``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Received:
    """One request the fake got."""

    path: str
    headers: dict[str, str]
    raw: str
    body: dict[str, Any]


@dataclass
class FakeSlack:
    """Runs on a free loopback port; ``received`` holds every request."""

    token: str = "xoxb-fake-token-for-tests"
    received: list[Received] = field(default_factory=list)
    webhook_status: int = 200

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                fake.received.append(Received(self.path, dict(self.headers), raw, body))
                if self.path.startswith("/services/"):
                    self._answer(fake.webhook_status, "text/plain",
                                 "ok" if fake.webhook_status == 200 else "invalid_payload")
                elif self.path == "/api/chat.postMessage":
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        self._answer(200, "application/json",
                                     json.dumps({"ok": False, "error": "invalid_auth"}))
                    else:
                        self._answer(200, "application/json", json.dumps(
                            {"ok": True, "channel": "C0123", "ts": "1700000000.000100",
                             "message": {"text": body.get("text", "")}}))
                elif self.path == "/hook":
                    self._answer(202, "application/json", "{}")
                else:
                    self._answer(404, "text/plain", "no_service")

            def _answer(self, status: int, ctype: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
