"""The direct send path (probes.transport.DirectSender) puts the same request on the wire
as httpx's client path, and is used only where the client adds nothing of its own."""

from __future__ import annotations

import asyncio

import httpx

import probes.http as probe_http
from probes.spec import HttpJourney
from probes.transport import DirectSender, LeanTransport, lean_client


async def _capture_server() -> tuple[asyncio.Server, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            seen.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def _headers(head: bytes) -> list[tuple[str, str]]:
    """Header names (lower-cased) and values, in order, minus the per-run ids."""
    lines = head.decode().split("\r\n")[1:]
    pairs = [tuple(part.strip() for part in line.split(":", 1)) for line in lines if line]
    per_run = {"traceparent", "x-request-id", "user-agent", "tracestate", "baggage"}
    return [(k.lower(), v) for k, v in pairs if k.lower() not in per_run]


def test_the_direct_path_sends_what_the_client_path_sends() -> None:
    spec = HttpJourney.model_validate({"steps": [{
        "method": "GET", "url": "/health?a=1", "query": {"b": "2"},
        "headers": {"X-Team": "sre", "accept": "application/json"}}]})

    async def go() -> tuple[list[bytes], bool]:
        server, seen = await _capture_server()
        port = server.sockets[0].getsockname()[1]
        client = lean_client()
        direct = probe_http.direct_sender(client) is not None
        try:
            ok = await probe_http.run_http("j", spec, client, f"http://127.0.0.1:{port}")
            probe_http._DIRECT[id(client)] = (client, None)  # the client's own path
            ok2 = await probe_http.run_http("j", spec, client, f"http://127.0.0.1:{port}")
            assert ok.success and ok2.success, (ok.error, ok2.error)
        finally:
            probe_http._DIRECT.pop(id(client), None)
            await client.aclose()
            server.close()
            await server.wait_closed()
        return seen, direct

    seen, direct = asyncio.run(go())
    assert direct
    assert len(seen) == 2
    assert seen[0].split(b"\r\n", 1)[0] == seen[1].split(b"\r\n", 1)[0] == \
        b"GET /health?a=1&b=2 HTTP/1.1"
    assert sorted(_headers(seen[0])) == sorted(_headers(seen[1]))
    assert ("accept", "application/json") in _headers(seen[0])  # the step's header wins


def test_clients_with_layers_of_their_own_keep_the_client_path() -> None:
    async def go() -> list[DirectSender | None]:
        clients = [
            httpx.AsyncClient(transport=LeanTransport(), auth=("u", "p4ss")),
            httpx.AsyncClient(transport=LeanTransport(), base_url="http://127.0.0.1:1"),
            httpx.AsyncClient(transport=LeanTransport(), params={"k": "v"}),
            httpx.AsyncClient(transport=LeanTransport(),
                              event_hooks={"request": [lambda r: None]}),
            httpx.AsyncClient(),  # httpx's own transport
        ]
        try:
            return [DirectSender.for_client(c) for c in clients]
        finally:
            for c in clients:
                await c.aclose()

    assert asyncio.run(go()) == [None] * 5


def test_credentials_in_the_url_and_redirects_take_the_client_path() -> None:
    spec = HttpJourney.model_validate({"steps": [
        {"method": "GET", "url": "/a"},
        {"method": "GET", "url": "/b", "follow_redirects": True}]})

    async def go() -> list[bytes]:
        server, seen = await _capture_server()
        port = server.sockets[0].getsockname()[1]
        client = lean_client()
        try:
            r = await probe_http.run_http("j", spec, client,
                                          f"http://user:s3cret-pw@127.0.0.1:{port}")
            assert r.success, r.error
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()
        return seen

    seen = asyncio.run(go())
    assert len(seen) == 2
    assert all(b"authorization: Basic" in h.lower().replace(b"basic", b"Basic") for h in seen)
