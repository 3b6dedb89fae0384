"""``--webhook-token-file``: a sink reachable by others takes alert webhooks only with its
token, however the sender can carry it; everything else the sink does is unchanged."""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.procs import ManagedProcess, python_module

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-" + secrets.token_urlsafe(24)
BODY = {"version": "4", "status": "firing", "receiver": "r", "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "groupKey": "k",
        "alerts": [{"status": "firing", "labels": {"alertname": "Tok"}, "annotations": {},
                    "startsAt": "2026-12-02T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "f1"}]}


@pytest.fixture(params=["readygate sink", "python -m sink.server"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    argv = python_module("readygate", "sink", "--grpc-listen", "off", "--webhook-token-file",
                         str(token_file)) if request.param == "readygate sink" else \
        python_module("sink.server", "--db", str(tmp_path / "s.db"), "--webhook-token-file",
                      str(token_file))
    proc = ManagedProcess("sink", argv, cwd=ROOT, log_path=tmp_path / "sink.log")
    proc.start()
    try:
        yield asyncio.run(proc.wait_ready_line(30))
    finally:
        proc.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_webhooks_without_the_token_are_refused_and_stored_nowhere(sink: str) -> None:
    with httpx.Client(timeout=5, trust_env=False) as http:
        for path in ("/alertmanager/webhook", "/webhooks/alertmanager", "/webhooks/grafana",
                     "/webhooks/no-such-vendor"):  # 401 before any word on the vendors
            for headers, params in (({}, {}),
                                    ({"Authorization": "Bearer wrong-" + TOKEN}, {}),
                                    ({"Authorization": "Bearer " + TOKEN[:-1]}, {}),
                                    ({"Authorization": basic("am", "nope")}, {}),
                                    ({"Authorization": "Basic !!notbase64"}, {}),
                                    ({}, {"token": TOKEN.upper()})):
                resp = http.post(sink + path, json=BODY, headers=headers, params=params)
                assert resp.status_code == 401, (path, headers, params, resp.text)
                assert TOKEN not in resp.text and "alertmanager" not in resp.text
        assert http.get(sink + "/api/notifications").json()["notifications"] == []
        unknown = http.post(sink + "/webhooks/no-such-vendor", json=BODY,
                            headers={"Authorization": "Bearer " + TOKEN})
        assert unknown.status_code == 404 and "alertmanager" in unknown.text
        # the rest of the sink is as open as before (OTLP from services, the query API)
        assert http.post(sink + "/v1/traces", json={"resourceSpans": []}).status_code == 200


def test_each_way_of_carrying_the_token_is_taken(sink: str) -> None:
    ways = [({"Authorization": "Bearer " + TOKEN}, {}),         # Alertmanager, Grafana
            ({"Authorization": basic("alertmanager", TOKEN)}, {}),  # basic_auth senders
            ({}, {"token": TOKEN}), ({}, {"auth_token": TOKEN})]  # URL-only senders
    with httpx.Client(timeout=5, trust_env=False) as http:
        for headers, params in ways:
            resp = http.post(sink + "/alertmanager/webhook", json=BODY, headers=headers,
                             params=params)
            assert resp.status_code == 200, (headers, params, resp.text)
        rows = http.get(sink + "/api/notifications").json()["notifications"]
    assert len(rows) == len(ways) and {r["alertname"] for r in rows} == {"Tok"}


@pytest.mark.parametrize("content", ["", "short\n"])
@pytest.mark.parametrize("command", ["readygate sink", "python -m sink.server"])
def test_a_missing_or_short_token_file_is_one_line_exit_3(content: str, command: str,
                                                         tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    argv, prefix = (python_module("readygate", "sink", "--webhook-token-file", str(token_file)),
                    "readygate sink") if command == "readygate sink" else \
        (python_module("sink.server", "--db", str(tmp_path / "s.db"), "--webhook-token-file",
                       str(token_file)), "sink")
    out = subprocess.run(argv, cwd=ROOT, timeout=60, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 3 and out.stdout == "", out.stderr
    assert out.stderr.splitlines() == [f"{prefix}: --webhook-token-file: {token_file}: "
                                       "the webhook token must be at least 16 characters"]
