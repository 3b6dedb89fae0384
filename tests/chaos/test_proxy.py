"""The HTTP fault proxy, as a real process between a real client and a real upstream."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from chaos.client import FaultProxyClient
from chaos.faults import FaultTable, LatencyFault
from core.errors import BackendError, ConfigError
from core.procs import ManagedProcess, ProcessSet

from .conftest import closed_port_url, start_proxy

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def url(proxy: ManagedProcess, path: str) -> str:
    assert proxy.url is not None
    return proxy.url + path


def poll_until(predicate: Any, timeout: float, what: str) -> float:
    """Poll ``predicate()`` every 20 ms until true; return the elapsed time or fail."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


# --- data plane --------------------------------------------------------------------------


async def test_forwards_method_path_query_body_and_trace_headers(
        proxy: ManagedProcess, http: httpx.AsyncClient) -> None:
    resp = await http.patch(url(proxy, "/items/42?x=1&y=%20z"), content=b"hello",
                            headers={"traceparent": TRACEPARENT, "tracestate": TRACESTATE,
                                     "X-Request-ID": "req-123", "X-Custom": "kept"})
    assert resp.status_code == 200
    seen = resp.json()
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == (
        "PATCH", "/items/42", "x=1&y=%20z", "hello")
    headers = {k: v for k, v in seen["headers"]}
    assert headers["traceparent"] == TRACEPARENT
    assert headers["tracestate"] == TRACESTATE
    assert headers["x-request-id"] == "req-123"
    assert headers["x-custom"] == "kept"
    assert headers["host"] != httpx.URL(url(proxy, "/")).netloc.decode()  # upstream's own host


async def test_returns_upstream_status_headers_and_drops_hop_by_hop(
        proxy: ManagedProcess, http: httpx.AsyncClient) -> None:
    resp = await http.get(url(proxy, "/status/418"))
    assert (resp.status_code, resp.content) == (418, b"status")

    resp = await http.get(url(proxy, "/echo"),
                          headers={"Connection": "x-hop-only", "X-Hop-Only": "secret"})
    assert resp.headers["x-upstream"] == "yes"
    assert resp.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    names = {k for k, _ in resp.json()["headers"]}
    assert "x-hop-only" not in names and "connection" not in names


async def test_streams_large_upload_and_download_intact(
        proxy: ManagedProcess, http: httpx.AsyncClient) -> None:
    blob = os.urandom(8 * 1024 * 1024)

    async def chunks() -> Any:
        for i in range(0, len(blob), 256 * 1024):
            yield blob[i:i + 256 * 1024]

    resp = await http.post(url(proxy, "/upload"), content=chunks())  # chunked upload
    assert resp.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    resp = await http.put(url(proxy, "/upload"), content=blob)  # Content-Length upload
    assert resp.json()["bytes"] == len(blob)

    resp = await http.get(url(proxy, "/download?n=5000000"))
    assert resp.status_code == 200 and len(resp.content) == 5_000_000


async def test_upstream_down_gives_502(proxy_procs: ProcessSet, http: httpx.AsyncClient,
                                       tmp_path: Path) -> None:
    dead = await start_proxy(proxy_procs, tmp_path, closed_port_url(), name="proxy-dead-upstream")
    resp = await http.get(url(dead, "/anything"))
    assert resp.status_code == 502
    assert "unreachable" in resp.json()["error"]
    # The control plane does not depend on the upstream.
    assert (await http.get(url(dead, "/_readygate/health"))).status_code == 200


# --- faults ------------------------------------------------------------------------------


async def test_http_error_hits_only_matching_prefix_and_method(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    fault = await faults.inject({"kind": "http_error", "status": 503, "rate": 1.0,
                                 "path_prefix": "/upload", "methods": ["post"], "ttl_s": 30,
                                 "name": "upload-errors"})
    assert (fault.kind, fault.status, fault.methods, fault.name) == (
        "http_error", 503, ["POST"], "upload-errors")
    assert fault.expires_at == pytest.approx(fault.started_at + 30)

    hit = await http.post(url(proxy, "/upload"), content=b"x")
    assert hit.status_code == 503
    assert hit.headers["x-readygate-fault"] == fault.id
    assert (await http.post(url(proxy, "/uploads/deeper"), content=b"x")).status_code == 503
    assert (await http.get(url(proxy, "/upload"))).status_code == 200  # other method: no match
    assert (await http.post(url(proxy, "/other"), content=b"x")).status_code == 200

    [active] = await faults.active()
    assert (active.id, active.matched, active.injected) == (fault.id, 2, 2)


async def test_rate_half_over_200_requests_lands_in_binomial_band(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    fault = await faults.inject({"kind": "http_error", "status": 500, "rate": 0.5,
                                 "path_prefix": "/rated", "ttl_s": 30})
    limit = anyio.Semaphore(20)  # concurrent, as a load test would hit it

    async def one() -> int:
        async with limit:
            return (await http.get(url(proxy, "/rated"))).status_code

    statuses = await asyncio.gather(*(one() for _ in range(200)))
    errors = statuses.count(500)
    # Binomial(200, 0.5): sd ~ 7.1; 5 sd either side, so a correct proxy practically never fails.
    assert 65 <= errors <= 135, errors
    assert statuses.count(200) == 200 - errors
    record = await faults.get(fault.id)
    assert (record.matched, record.injected) == (200, errors)


async def test_latency_adds_at_least_latency_ms(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    await faults.inject(LatencyFault(latency_ms=300, jitter_ms=50, path_prefix="/slow",
                                     ttl_s=30))
    start = time.monotonic()
    slow = await http.get(url(proxy, "/slow"))
    elapsed = time.monotonic() - start
    assert slow.status_code == 200  # latency alone still forwards
    assert 0.300 <= elapsed < 0.350 + 2.0

    start = time.monotonic()
    await http.get(url(proxy, "/fast"))
    assert time.monotonic() - start < 0.3


async def test_latency_applies_before_error(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    await faults.inject({"kind": "http_error", "status": 500, "ttl_s": 30, "path_prefix": "/x"})
    await faults.inject({"kind": "latency", "latency_ms": 200, "ttl_s": 30, "path_prefix": "/x"})
    start = time.monotonic()
    resp = await http.get(url(proxy, "/x"))
    assert resp.status_code == 500 and time.monotonic() - start >= 0.2
    assert len(resp.headers["x-readygate-fault"].split(",")) == 2


async def test_abort_makes_httpx_raise(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    fault = await faults.inject({"kind": "abort", "path_prefix": "/drop", "ttl_s": 30})
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(url(proxy, "/drop"))
    # The proxy survives its own aborts and keeps serving.
    assert (await http.get(url(proxy, "/kept"))).status_code == 200
    assert (await faults.get(fault.id)).injected == 1


async def test_fault_stops_applying_at_ttl_and_is_recorded_expired(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    fault = await faults.inject({"kind": "http_error", "status": 500, "ttl_s": 0.5,
                                 "path_prefix": "/ttl"})
    assert (await http.get(url(proxy, "/ttl"))).status_code == 500
    deadline = time.time() + 5
    while (await http.get(url(proxy, "/ttl"))).status_code == 500:
        assert time.time() < deadline, "fault did not expire"
    # It stopped applying at expires_at, not before (requests carry no fault after it).
    assert time.time() >= fault.expires_at

    assert await faults.active() == []
    [ended] = [r for r in await faults.history() if r.id == fault.id]
    assert ended.end_reason == "expired"
    assert ended.ended_at == pytest.approx(ended.expires_at, abs=0.01)


async def test_delete_removes_one_fault_and_is_idempotent(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    gone = await faults.inject({"kind": "http_error", "ttl_s": 30, "path_prefix": "/a"})
    kept = await faults.inject({"kind": "http_error", "ttl_s": 30, "path_prefix": "/b"})
    removed = await faults.remove(gone.id)
    assert removed.end_reason == "removed" and removed.ended_at is not None
    assert removed.ended_at < removed.expires_at
    assert (await http.get(url(proxy, "/a"))).status_code == 200
    assert (await http.get(url(proxy, "/b"))).status_code == 500
    assert [r.id for r in await faults.active()] == [kept.id]
    # Rollback may run after the fault is gone: removing again reports the same end.
    assert (await faults.remove(gone.id)).ended_at == removed.ended_at

    resp = await http.delete(url(proxy, "/_readygate/faults/f-nope"))
    assert resp.status_code == 404
    with pytest.raises(BackendError, match="no fault 'f-nope'"):
        await faults.remove("f-nope")


async def test_clear_ends_every_active_fault(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient) -> None:
    ids = {(await faults.inject({"kind": "abort", "ttl_s": 30, "path_prefix": p})).id
           for p in ("/c1", "/c2")}
    resp = await http.delete(url(proxy, "/_readygate/faults"))
    assert resp.status_code == 200
    assert {r["id"] for r in resp.json()} == ids
    assert {r["end_reason"] for r in resp.json()} == {"cleared"}
    listing = (await http.get(url(proxy, "/_readygate/faults"))).json()
    assert listing["active"] == []
    assert ids <= {r["id"] for r in listing["history"]}


BAD_SPECS = [
    ({"kind": "http_error", "status": 500}, "ttl_s"),
    ({"kind": "http_error", "ttl_s": 0}, "ttl_s"),
    ({"kind": "http_error", "ttl_s": 10, "rate": 1.5}, "rate"),
    ({"kind": "http_error", "ttl_s": 10, "status": 200}, "status"),
    ({"kind": "latency", "ttl_s": 10}, "latency_ms"),
    ({"kind": "latency", "ttl_s": 10, "latency_ms": -1}, "latency_ms"),
    ({"kind": "meteor", "ttl_s": 10}, "kind"),
    ({"ttl_s": 10}, "kind"),
    ({"kind": "abort", "ttl_s": 10, "path_prefix": "no-slash"}, "path_prefix"),
    ({"kind": "abort", "ttl_s": 10, "methods": []}, "methods"),
    ({"kind": "abort", "ttl_s": 10, "tll_s": 5}, "tll_s"),
    ({"kind": "abort", "ttl_s": 61}, "max TTL"),  # the proxy runs with --max-ttl 60
]


@pytest.mark.parametrize(("spec", "names"), BAD_SPECS, ids=[n for _, n in BAD_SPECS])
async def test_invalid_spec_is_rejected_with_one_line(
        proxy: ManagedProcess, http: httpx.AsyncClient, faults: FaultProxyClient,
        spec: dict[str, Any], names: str) -> None:
    resp = await http.post(url(proxy, "/_readygate/faults"), json=spec)
    assert resp.status_code == 422
    message = resp.json()["error"]
    assert names in message and "\n" not in message
    with pytest.raises(ConfigError, match=names) as exc:
        await faults.inject(spec)
    assert "\n" not in str(exc.value)
    assert await faults.active() == []


async def test_non_json_spec_is_rejected(proxy: ManagedProcess, http: httpx.AsyncClient) -> None:
    resp = await http.post(url(proxy, "/_readygate/faults"), content=b"{nope")
    assert resp.status_code == 422 and "not JSON" in resp.json()["error"]


async def test_client_reports_unreachable_proxy_as_backend_error(
        http: httpx.AsyncClient) -> None:
    client = FaultProxyClient(closed_port_url(), http)
    with pytest.raises(BackendError, match="cannot list faults") as exc:
        await client.active()
    assert "\n" not in str(exc.value)


# --- the proxy outlives whoever injected the fault ---------------------------------------

INJECTOR = """
import asyncio, sys, httpx
from chaos.client import FaultProxyClient

async def main():
    async with httpx.AsyncClient(trust_env=False) as http:
        fault = await FaultProxyClient(sys.argv[1], http).inject(
            {"kind": "http_error", "status": 503, "ttl_s": 1.0, "path_prefix": "/orphan"})
    print(fault.id, fault.expires_at, flush=True)

asyncio.run(main())
sys.stdin.read()  # then hang, as a readygate run would, until it is killed
"""


async def test_proxy_expires_fault_after_injector_is_sigkilled(
        proxy_procs: ProcessSet, upstream: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    lone = await start_proxy(proxy_procs, tmp_path, upstream, name="proxy-orphan")
    injector = subprocess.Popen([sys.executable, "-c", INJECTOR, str(lone.url)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert injector.stdout is not None
        fault_id, expires = injector.stdout.readline().split()
        expires_at = float(expires)
        injector.send_signal(signal.SIGKILL)
        injector.wait(5)
    finally:
        if injector.poll() is None:
            injector.kill()
            injector.wait(5)
        if injector.stdin is not None:
            injector.stdin.close()
        if injector.stdout is not None:
            injector.stdout.close()
    assert (await http.get(url(lone, "/orphan"))).status_code == 503

    # No request of any kind reaches the proxy now: its own timer must end the fault.
    log_path = tmp_path / "proxy-orphan.log"
    poll_until(lambda: f"fault {fault_id} expired" in log_path.read_text(), 5,
               "proxy logs the expiry")
    assert time.time() - expires_at < 1.0  # logged at expiry, not on a later request

    listing = (await http.get(url(lone, "/_readygate/faults"))).json()
    assert listing["active"] == []
    [ended] = listing["history"]
    assert (ended["id"], ended["end_reason"]) == (fault_id, "expired")
    assert ended["ended_at"] == pytest.approx(expires_at, abs=0.01)
    assert (await http.get(url(lone, "/orphan"))).status_code == 200


# --- the decision rules, without a server ------------------------------------------------


def test_table_latency_adds_up_and_first_error_wins() -> None:
    now = [1000.0]
    table = FaultTable(clock=lambda: now[0])
    slow1 = table.add({"kind": "latency", "latency_ms": 100, "ttl_s": 10})
    slow2 = table.add({"kind": "latency", "latency_ms": 50, "ttl_s": 10})
    first = table.add({"kind": "http_error", "status": 502, "ttl_s": 10})
    second = table.add({"kind": "abort", "ttl_s": 5})
    decision = table.decide("GET", "/")
    assert decision.delay_s == pytest.approx(0.15)
    assert (decision.status, decision.abort, decision.forward) == (502, False, False)
    assert decision.fault_ids == [slow1.id, slow2.id, first.id]
    assert (second.matched, second.injected) == (1, 0)

    now[0] = 1005.0  # exactly at the abort fault's expires_at: it no longer applies
    table.decide("GET", "/")
    assert second.end_reason == "expired" and second.ended_at == 1005.0
    assert second.matched == 1
    assert table.next_expiry() == 1010.0
