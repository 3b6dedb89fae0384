"""The demo's journeys (demo/journeys.yaml) against the real demo web service, and their ids."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest

from probes.journeys import build_catalog, resolve
from probes.model import ProbeResult
from tests.fixtures.demo_system import Demo

CATALOG = build_catalog([Path(__file__).resolve().parents[2] / "demo" / "journeys.yaml"])


def run(journey: str, base_url: str, password: str, *,
        transport: httpx.AsyncBaseTransport | None = None) -> ProbeResult:
    """One run of a demo journey, resolved exactly as a gate resolves it."""
    (resolved,) = resolve([journey], CATALOG, base_url=base_url, username="demo",
                          password=password, timeout_s=5)

    async def go() -> ProbeResult:
        async with httpx.AsyncClient(transport=transport) as client:
            return await resolved.run(client)
    return asyncio.run(go())


@pytest.mark.parametrize("journey", ["health", "login", "upload"])
def test_journey_passes_on_the_healthy_demo(demo: Demo, journey: str) -> None:
    web = demo.web()
    assert web.url is not None
    result = run(journey, web.url, demo.password)
    assert result.success, result.error
    assert all(step.ok for step in result.steps)
    assert re.fullmatch(r"[0-9a-f]{32}", result.trace_id)


def test_login_with_a_wrong_password_fails_precisely(demo: Demo) -> None:
    web = demo.web()
    assert web.url is not None
    result = run("login", web.url, "not-the-password")
    assert not result.success
    assert result.error == "login: POST /api/login returned 401, expected 200"


def test_health_and_upload_fail_when_storage_is_down(demo: Demo) -> None:
    demo.dead_storage()
    web = demo.web(storage="storage-dead")
    assert web.url is not None
    health = run("health", web.url, demo.password)
    assert health.error == "ready: GET /health/ready returned 503, expected 200"
    upload = run("upload", web.url, demo.password)
    assert upload.error == "upload: POST /api/uploads returned 502, expected 201"


def test_unreachable_target_is_a_failed_result_not_an_exception() -> None:
    result = run("health", "http://127.0.0.1:9", "pw")
    assert not result.success and result.error is not None
    assert result.error.startswith("live: GET /health/live: ConnectError")


def file_part(request: httpx.Request) -> bytes:
    """The bytes of the multipart field ``file`` (what the real web service stores)."""
    raw = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw + request.read())
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no file part")


def fake_web(stored: dict[str, bytes], seen: list[httpx.Request], *,
             corrupt: bool = False) -> httpx.MockTransport:
    """Answers like the demo web's API (same paths, same JSON) for client-side checks."""
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/api/login":
            return httpx.Response(200, json={"token": "tok-123", "user": "demo"})
        if path == "/api/uploads" and request.method == "POST":
            body = file_part(request)
            stored["u1"] = body
            return httpx.Response(201, json={"id": "u1", "size": len(body),
                                             "sha256": hashlib.sha256(body).hexdigest()})
        if path == "/api/uploads/u1" and request.method == "GET":
            data = stored["u1"]
            return httpx.Response(200, content=data[:-1] + b"x" if corrupt else data)
        if path == "/api/uploads/u1" and request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(404)
    return httpx.MockTransport(handler)


def test_a_corrupted_upload_fails_and_is_still_cleaned_up() -> None:
    seen: list[httpx.Request] = []
    result = run("upload", "http://web.test", "pw", transport=fake_web({}, seen, corrupt=True))
    assert not result.success
    assert result.error is not None and "came back corrupted" in result.error
    assert [r.method for r in seen][-1] == "DELETE"


def test_every_request_carries_the_journeys_trace_id_request_id_and_user_agent() -> None:
    seen: list[httpx.Request] = []
    result = run("upload", "http://web.test", "pw", transport=fake_web({}, seen))
    assert result.success
    assert len(seen) == 4
    request_ids = set()
    for request in seen:
        version, trace_id, span_id, flags = request.headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", result.trace_id, "01")
        assert len(span_id) == 16
        request_ids.add(request.headers["x-request-id"])
        assert request.headers["user-agent"].startswith("readygate/")
        assert "journey=upload" in request.headers["user-agent"]
    assert request_ids == set(result.request_ids) and len(request_ids) == 4


def test_the_password_is_not_kept_in_the_result() -> None:
    seen: list[httpx.Request] = []
    result = run("upload", "http://web.test", "sup3r-secret-pw", transport=fake_web({}, seen))
    assert "sup3r-secret-pw" not in json.dumps(result.to_dict())
