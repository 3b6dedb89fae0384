"""The lean transport answers, times and fails exactly like httpx's default transport.

Every scenario runs twice against the same loopback server, once through httpx's default
transport (httpcore) and once through :class:`probes.transport.LeanTransport`, and the two
outcomes must be equal: status, headers, body, or the exception's type and message; and the
trace events PhaseTrace turns into phases. The misbehaving servers are raw asyncio
servers (close early, send garbage, stall, reset, dribble bytes); the well-behaved one is
uvicorn. Each scenario runs on asyncio's loop and on uvloop (``probe serve`` uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import httpx
import pytest

from probes.http import run_http
from probes.spec import Expect, HttpJourney, Retry, Step
from probes.timing import PhaseTrace
from probes.transport import LeanTransport, lean_client

Outcome = tuple[Any, ...]

try:
    import uvloop
    LOOPS = ["asyncio", "uvloop"]
except ImportError:  # pragma: no cover - uvloop is a dependency; the stock loop still works
    uvloop = None  # type: ignore[assignment]
    LOOPS = ["asyncio"]


def run(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    if loop == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


# --- a raw asyncio server whose behaviour is chosen by the request path ---

BODY = b"hello world\n" * 10


def _resp(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def _answer(path: str, method: str, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> bool:
    """Write the answer for ``path``; False when the connection must end."""
    ok_head = f"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: {len(BODY)}\n"
    if path == "/ok":
        writer.write(_resp(ok_head, b"" if method == "HEAD" else BODY))
    elif path == "/chunked":
        writer.write(_resp("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
                           _chunked(b"hello ", b"chunked ", b"world")))
    elif path == "/gzip":
        data = gzip.compress(BODY)
        writer.write(_resp(f"HTTP/1.1 200 OK\nContent-Encoding: gzip\n"
                           f"Content-Length: {len(data)}\n", data))
    elif path == "/informational":
        writer.write(_resp("HTTP/1.1 103 Early Hints\nLink: </a.css>\n")
                     + _resp(ok_head, BODY))
    elif path == "/redirect":
        writer.write(_resp("HTTP/1.1 303 See Other\nLocation: /ok\nSet-Cookie: s=1\n"
                           "Content-Length: 0\n"))
    elif path == "/dribble":  # one byte per write: every read is partial
        for byte in _resp(ok_head, BODY):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
    elif path == "/conn-close":
        writer.write(_resp(ok_head + "Connection: close\n", BODY))
        return False
    elif path == "/close-delimited":
        writer.write(_resp("HTTP/1.1 200 OK\nConnection: close\n", BODY))
        return False
    elif path == "/http10":
        writer.write(_resp("HTTP/1.0 200 OK\n", BODY))
        return False
    elif path == "/early-close":
        return False
    elif path == "/garbage":
        writer.write(b"this is not http\r\n\r\n")
        return False
    elif path == "/bad-header":
        writer.write(b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n")
        return False
    elif path == "/short-length":
        writer.write(_resp(ok_head, BODY[:7]))
        return False
    elif path == "/short-chunked":
        writer.write(_resp("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", b"5\r\nhello\r\n"))
        return False
    elif path == "/bad-chunk":
        writer.write(_resp("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", b"zz\r\nhello\r\n"))
        return False
    elif path == "/reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    elif path == "/stall-headers":
        await asyncio.Event().wait()  # until the server is stopped
    elif path == "/stall-body":
        writer.write(_resp(ok_head, BODY[:5]))
        await writer.drain()
        await asyncio.Event().wait()
    elif path == "/huge-head":
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        return False
    elif path == "/echo":
        return True  # handled by the caller (it needs the request body)
    else:
        writer.write(_resp("HTTP/1.1 404 Not Found\nContent-Length: 0\n"))
    return True


class RawServer:
    """A loopback HTTP/1.1 server on a free port that misbehaves on purpose, by path."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        body += (await reader.readexactly(size + 2))[:-2]
                        if size == 0:
                            break
                if path == "/echo":
                    seen = {"method": method, "headers": headers, "body": body.decode("latin-1")}
                    data = json.dumps(seen).encode()
                    writer.write(_resp(f"HTTP/1.1 200 OK\nContent-Type: application/json\n"
                                       f"Content-Length: {len(data)}\n", data))
                    keep = True
                else:
                    keep = await _answer(path, method, reader, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()


# --- running one request through a transport, outcome and trace events ---

class Events:
    """A trace extension that records event names (and feeds a PhaseTrace)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.phase = PhaseTrace()

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.names.append(name)
        await self.phase(name, info)


async def outcome(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
                  ) -> tuple[Outcome, list[str]]:
    events = Events()
    try:
        resp = await client.request(method, url, extensions={"trace": events}, **kwargs)
    except httpx.HTTPError as exc:
        return (type(exc).__name__, str(exc)), events.names
    return (resp.status_code, resp.reason_phrase, resp.http_version,
            [(k, v) for k, v in resp.headers.multi_items() if k != "date"],
            resp.content, [r.status_code for r in resp.history]), events.names


def both(loop: str, fn: Callable[[httpx.AsyncClient, RawServer], Awaitable[Any]],
         **client_kwargs: Any) -> tuple[Any, Any]:
    """``fn`` with httpx's default transport and with the lean one, same server."""
    async def go() -> tuple[Any, Any]:
        async with RawServer() as server:
            async with httpx.AsyncClient(trust_env=False, **client_kwargs) as default:
                want = await fn(default, server)
            async with lean_client(**client_kwargs) as lean:
                got = await fn(lean, server)
        return want, got
    result: tuple[Any, Any] = run(loop, go())
    return result


PATHS = ["/ok", "/chunked", "/gzip", "/informational", "/dribble", "/conn-close",
         "/close-delimited", "/http10", "/early-close", "/garbage", "/bad-header",
         "/short-length", "/short-chunked", "/bad-chunk", "/reset", "/huge-head", "/missing"]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("path", PATHS)
def test_same_answer_or_same_error_as_httpcore(loop: str, path: str) -> None:
    want, got = both(loop, lambda c, s: outcome(c, "GET", s.url + path))
    assert got == want


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("path", ["/stall-headers", "/stall-body"])
def test_a_stalled_server_is_the_same_read_timeout(loop: str, path: str) -> None:
    want, got = both(loop, lambda c, s: outcome(c, "GET", s.url + path, timeout=0.2))
    assert want[0] == ("ReadTimeout", "")
    assert got == want


@pytest.mark.parametrize("loop", LOOPS)
def test_refused_connection_is_the_same_connect_error(loop: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        want, got = both(loop, lambda c, s: outcome(c, "GET", url))
    assert want[0] == ("ConnectError", "All connection attempts failed")
    assert got == want


@pytest.mark.parametrize("loop", LOOPS)
def test_an_unknown_host_is_the_same_connect_error(loop: str) -> None:
    url = "http://readygate-no-such-host.invalid/"
    want, got = both(loop, lambda c, s: outcome(c, "GET", url, timeout=5))
    assert want[0][0] == "ConnectError"
    assert got == want


@pytest.mark.parametrize("loop", LOOPS)
def test_bodies_headers_and_redirects_go_out_the_same(loop: str) -> None:
    async def fn(client: httpx.AsyncClient, server: RawServer) -> list[Any]:
        out = [await outcome(client, "POST", server.url + "/echo", json={"a": [1, "é"]}),
               await outcome(client, "PUT", server.url + "/echo", content=b"\x00" * 70_000),
               await outcome(client, "POST", server.url + "/echo", data={"k": "v w"}),
               await outcome(client, "POST", server.url + "/echo",
                             files={"f": ("x.bin", b"abc", "application/octet-stream")}),
               await outcome(client, "HEAD", server.url + "/ok"),
               await outcome(client, "GET", server.url + "/redirect", follow_redirects=True),
               await outcome(client, "GET", server.url + "/echo?q=1&r=%20",
                             headers={"X-Custom": "yes"})]

        async def gen() -> AsyncIterator[bytes]:
            yield b"streamed "
            yield b"body"
        out.append(await outcome(client, "POST", server.url + "/echo", content=gen()))
        return out
    want, got = both(loop, fn)
    # multipart boundaries are random: compare the echoed body without them
    for w, g in zip(want, got, strict=True):
        if w[0][0] == 200 and b"multipart" in w[0][4]:
            w_echo, g_echo = json.loads(w[0][4]), json.loads(g[0][4])
            assert w_echo["headers"].keys() == g_echo["headers"].keys()
            assert len(w_echo["body"]) == len(g_echo["body"])
        else:
            assert g == w


@pytest.mark.parametrize("loop", LOOPS)
def test_keep_alive_reuses_the_connection_and_reconnects_after_close(loop: str) -> None:
    async def fn(client: httpx.AsyncClient, server: RawServer) -> tuple[Any, ...]:
        start = server.connections
        first = await outcome(client, "GET", server.url + "/ok")
        second = await outcome(client, "GET", server.url + "/chunked")
        reused = server.connections - start
        closing = await outcome(client, "GET", server.url + "/conn-close")
        after = await outcome(client, "GET", server.url + "/ok")
        return reused, server.connections - start, first, second, closing, after
    want, got = both(loop, fn)
    assert got == want
    reused, total, first, second, _, after = got
    assert (reused, total) == (1, 2)
    assert "connection.connect_tcp.started" in first[1]
    assert not any(name.startswith("connection.") for name in second[1])
    assert "connection.connect_tcp.complete" in after[1]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_the_server_closed_while_idle_is_not_reused(loop: str) -> None:
    async def fn(client: httpx.AsyncClient, server: RawServer) -> tuple[Any, ...]:
        await outcome(client, "GET", server.url + "/ok")
        await server.__aexit__()  # closes the idle keep-alive connection from the server side
        await server.__aenter__()  # a new listener on a new port
        transport = client._transport
        if isinstance(transport, LeanTransport):  # wait until the FIN arrived (bounded)
            for _ in range(1000):
                if not any(c.reusable(0) for cs in transport._idle.values() for c in cs):
                    break
                await asyncio.sleep(0.001)
        return await outcome(client, "GET", server.url + "/ok")
    want, got = both(loop, fn)
    assert got == want
    assert got[0][0] == 200


@pytest.mark.parametrize("loop", LOOPS)
def test_cancelling_a_request_closes_its_connection_and_frees_the_slot(loop: str) -> None:
    async def go() -> None:
        async with RawServer() as server, lean_client(
                limits=httpx.Limits(max_connections=1)) as client:
            task = asyncio.create_task(client.get(server.url + "/stall-headers"))
            for _ in range(1000):  # bounded: until the request is on the wire
                if server.connections:
                    break
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            resp = await client.get(server.url + "/ok", timeout=5)  # the one slot is free
            assert resp.content == BODY
    run(loop, go())


@pytest.mark.parametrize("loop", LOOPS)
def test_pool_limit_waits_and_times_out_like_httpcore(loop: str) -> None:
    async def fn(client: httpx.AsyncClient, server: RawServer) -> Outcome:
        async with client.stream("GET", server.url + "/ok"):  # holds the only connection
            got, _ = await outcome(client, "GET", server.url + "/ok",
                                   timeout=httpx.Timeout(5, pool=0.1))
        return got
    want, got = both(loop, fn, limits=httpx.Limits(max_connections=1))
    assert want == ("PoolTimeout", "")
    assert got == want


@pytest.mark.parametrize("loop", LOOPS)
def test_https_and_unknown_extensions_take_the_default_transport(loop: str) -> None:
    async def go() -> None:
        seen: list[httpx.Request] = []

        class Fallback(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                seen.append(request)
                return httpx.Response(204)

        async with httpx.AsyncClient(transport=LeanTransport(fallback=Fallback())) as client:
            await client.get("https://127.0.0.1:1/")
            await client.get("http://127.0.0.1:1/", extensions={"sni_hostname": "x"})
            await client.get("http://127.0.0.1:1/", headers={"Upgrade": "websocket"})
        assert [str(r.url) for r in seen] == ["https://127.0.0.1:1/", "http://127.0.0.1:1/",
                                              "http://127.0.0.1:1/"]
    run(loop, go())


# --- the journey engine on top: same results, messages and phases ---

JOURNEY = HttpJourney(
    retry=Retry(attempts=2, on=["network"], backoff_s=0.0),
    steps=[Step(name="ok", url="/ok"),
           Step(name="chunked", url="/chunked", always=True),
           Step(name="echo", method="POST", url="/echo", json_={"x": "{{run_id}}"},
                always=True),
           Step(name="garbage", url="/garbage", always=True),
           Step(name="early", url="/early-close", always=True),
           Step(name="short", url="/short-length", always=True),
           Step(name="stall", url="/stall-headers", timeout_s=0.2, always=True),
           Step(name="status", url="/missing", expect=Expect(status=200), always=True)])


@pytest.mark.parametrize("loop", LOOPS)
def test_a_journey_gives_the_same_results_and_phases(loop: str) -> None:
    async def fn(client: httpx.AsyncClient, server: RawServer) -> list[Any]:
        result = await run_http("parity", JOURNEY, client, server.url)
        return [(s.name, s.status, s.ok, s.attempts, sorted(s.phases), s.ttfb_s is not None,
                 (s.error or "").replace(server.url, "URL")) for s in result.steps]
    want, got = both(loop, fn)
    assert got == want
    ok = got[0]
    assert ok[4] == ["connect", "processing", "resolve", "transfer"] and ok[5]
    assert got[1][4] == ["processing", "transfer"]  # keep-alive: no connect phase
    assert "RemoteProtocolError" in got[3][6] and "(after 2 attempts)" in got[4][6]


# --- a real server: uvicorn ---

@pytest.mark.parametrize("loop", LOOPS)
def test_against_uvicorn(loop: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"len": len(body), "ua": request.headers.get("user-agent"),
                             "cookie": request.headers.get("cookie")},
                            headers={"Set-Cookie": "sid=abc; Path=/"})

    async def stream(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(50):
                yield b"part %d\n" % i
        return StreamingResponse(parts())

    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]),
                            Route("/stream", stream)])

    async def go() -> tuple[Any, Any]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="error", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(5000):  # bounded wait for startup
                if server.started:
                    break
                await asyncio.sleep(0.001)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"

            async def fn(client: httpx.AsyncClient) -> list[Any]:
                out = []
                for _ in range(3):
                    out.append(await outcome(client, "POST", url + "/echo",
                                             content=b"x" * 300_000))
                    out.append(await outcome(client, "GET", url + "/stream"))
                    out.append(await outcome(client, "GET", url + "/echo"))
                return out
            async with httpx.AsyncClient(trust_env=False) as default:
                want = await fn(default)
            async with lean_client() as lean:
                got = await fn(lean)
            return want, got
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()
    want, got = run(loop, go())
    assert got == want
    assert got[0][0][0] == 200 and got[1][0][4].count(b"part") == 50
