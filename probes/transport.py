"""A lean HTTP/1.1 transport for plain ``http://`` targets; everything else goes to httpcore.

Why: httpx's default transport (httpcore over anyio) costs more CPU per request than
blackbox_exporter's whole probe (BENCHMARKS.md section 4), most of it in the pool's
bookkeeping and anyio's cancel scopes, not in HTTP. This transport keeps httpcore's
semantics and replaces only that machinery:

- the wire protocol is h11, driven exactly as httpcore's ``AsyncHTTP11Connection`` drives
  it (same h11 version, same settings), so what is accepted or rejected, framing
  (Content-Length, chunked, close-delimited), keep-alive decisions and the error messages
  are h11's, i.e. the same as before;
- the socket is an asyncio ``Protocol`` (no anyio task groups or cancel scopes), the pool a
  LIFO list per origin with httpcore's limits and keep-alive expiry;
- it emits httpcore's trace events (``connection.connect_tcp.*``, ``http11.*``) at the same
  moments, so :class:`probes.timing.PhaseTrace` measures the same phases;
- errors are the httpx exceptions httpcore's would have become, with the same messages
  (``ConnectError: All connection attempts failed``, ``RemoteProtocolError: Server
  disconnected without sending a response.``, empty ``ReadTimeout`` ...).

Anything else (https, proxies, HTTP/2, CONNECT/Upgrade, request extensions it does not
know, a non-async request body) is handed to an ordinary ``httpx.AsyncHTTPTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h11
import httpx

from core.http import ssl_context

# httpcore's AsyncHTTP11Connection settings, so h11 behaves the same.
READ_NUM_BYTES = 64 * 1024
MAX_INCOMPLETE_EVENT_SIZE = 100 * 1024
# anyio's happy-eyeballs delay: the next address is tried after this long without an answer.
HAPPY_EYEBALLS_DELAY_S = 0.25
# Stop reading from the socket while this much of a body waits for the consumer.
_READ_HIGH_WATER = 256 * 1024
_KNOWN_EXTENSIONS = frozenset({"timeout", "trace"})
_DISCONNECTED = "Server disconnected without sending a response."

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection: an asyncio protocol feeding an h11 client state machine."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.h11 = h11.Connection(our_role=h11.CLIENT,
                                  max_incomplete_event_size=MAX_INCOMPLETE_EVENT_SIZE)
        self.transport: asyncio.Transport | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._eof = False
        self.lost = False
        self._lost_exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self.expire_at: float | None = None
        # the name lookup of this connection (0: an IP literal), for PhaseTrace's resolve
        self.resolve_s: float | None = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > _READ_HIGH_WATER and self.transport is not None \
                and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close our side too: HTTP/1.1 has no use for a half-closed socket

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._lost_exc = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # what the transport uses

    def reusable(self, now: float) -> bool:
        """Idle, open, nothing unsolicited from the server, not past its keep-alive expiry."""
        # httpcore's has_expired(): a readable idle socket means the server is closing it.
        return (not self.lost and not self._eof and not self._buffer
                and (self.expire_at is None or now <= self.expire_at))

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()
        self.lost = True

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send bytes; a connection the server already closed is not an error here.

        httpcore swallows write errors and reads the response anyway (a server may answer
        and close before reading the whole request); reading then reports what happened.
        """
        transport = self.transport
        if not data or transport is None or self.lost or transport.is_closing():
            return
        transport.write(data)
        if self._write_paused and not self.lost:
            loop = asyncio.get_running_loop()
            self._drain = loop.create_future()
            try:
                await _wait(loop, self._drain, timeout, httpx.WriteTimeout)
            finally:
                self._drain = None

    async def read(self, timeout: float | None) -> bytes:
        """Bytes received so far (waiting up to ``timeout``), b"" at EOF."""
        if not self._buffer and not self._eof and not self.lost:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await _wait(loop, self._waiter, timeout, httpx.ReadTimeout)
            finally:
                self._waiter = None
        if self._buffer:
            data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            if self._reading_paused and self.transport is not None and not self.lost:
                self._reading_paused = False
                self.transport.resume_reading()
            return data
        if self._lost_exc is not None:
            # anyio: BrokenResourceError (no message) -> httpcore.ReadError -> httpx.ReadError
            raise httpx.ReadError("")
        return b""

    async def receive_event(self, timeout: float | None) -> Any:
        """The next h11 event, reading as needed (httpcore's ``_receive_event``)."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                data = await self.read(timeout)
                if data == b"" and self.h11.their_state == h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError(_DISCONNECTED)
                self.h11.receive_data(data)
            else:
                return event

    def get_extra_info(self, info: str) -> Any:
        """httpcore's ``network_stream.get_extra_info`` names (response extension)."""
        transport = self.transport
        if info == "ssl_object" or transport is None:
            return None
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            return bool(self._buffer) or self._eof or self.lost
        return None


async def _wait(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None],
                timeout: float | None, error: type[httpx.TimeoutException]) -> None:
    """Await ``fut``, raising ``error("")`` after ``timeout`` seconds.

    A timer on the future instead of ``asyncio.wait_for``: on Python 3.11 wait_for wraps
    every wait in a new Task, which on this path costs more than the read itself.
    """
    if timeout is None:
        await fut
        return

    def expire() -> None:
        if not fut.done():
            fut.set_exception(error(""))

    handle = loop.call_later(timeout, expire)
    try:
        await fut
    finally:
        handle.cancel()


async def _trace(trace: Trace | None, name: str, info: dict[str, Any]) -> None:
    if trace is not None:
        await trace(name, info)


class LeanTransport(httpx.AsyncBaseTransport):
    """Plain-HTTP/1.1 requests on its own keep-alive pool; the rest on ``fallback``."""

    def __init__(self, *, limits: httpx.Limits | None = None,
                 fallback: httpx.AsyncBaseTransport | None = None,
                 verify: ssl.SSLContext | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # https goes to httpcore with readygate's context: the default one honours
        # SSL_CERT_FILE / SSL_CERT_DIR, which httpx reads only with trust_env (core.http).
        self._fallback = fallback or httpx.AsyncHTTPTransport(
            limits=limits, trust_env=False, verify=verify or ssl_context(None))
        self._max_connections = limits.max_connections
        self._max_idle = (limits.max_keepalive_connections
                          if limits.max_keepalive_connections is not None else 1 << 30)
        self._keepalive_s = limits.keepalive_expiry
        self._slots = (asyncio.Semaphore(limits.max_connections)
                       if limits.max_connections is not None else None)
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._n_idle = 0
        self._closed = False

    @staticmethod
    def handles(request: httpx.Request) -> bool:
        """Whether this request takes the lean path (else the fallback transport)."""
        return (request.url.scheme == "http" and request.method != "CONNECT"
                and _KNOWN_EXTENSIONS.issuperset(request.extensions)
                and isinstance(request.stream, typing.AsyncIterable)
                and "upgrade" not in request.headers)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed or not self.handles(request):
            return await self._fallback.handle_async_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        trace: Trace | None = request.extensions.get("trace")
        await self._acquire_slot(timeouts.get("pool"))
        try:
            url = request.url
            key = (url.raw_host.decode("ascii"), url.port or 80)
            conn = self._pop_idle(key)
            if conn is None:
                conn = await self._connect(key, timeouts.get("connect"), trace)
        except BaseException:
            self._release_slot()
            raise
        try:
            return await self._exchange(conn, request, timeouts, trace)
        except BaseException:
            # httpcore closes the connection and says so in the trace.
            await _trace(trace, "http11.response_closed.started", {})
            conn.close()
            self._release_slot()
            await _trace(trace, "http11.response_closed.complete", {"return_value": None})
            raise

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._n_idle = 0
        await self._fallback.aclose()

    # the pool

    async def _acquire_slot(self, timeout: float | None) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            raise httpx.PoolTimeout("") from None

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _pop_idle(self, key: tuple[str, int]) -> _Conn | None:
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            self._n_idle -= 1
            if conn.reusable(now):
                return conn
            conn.close()
        return None

    def _release(self, conn: _Conn) -> None:
        """After a response: back to the pool if h11 says the connection can be reused."""
        self._release_slot()
        state = conn.h11
        # max_keepalive_connections=0: a fresh connection per request (probe serve's /probe)
        if (state.our_state is h11.DONE and state.their_state is h11.DONE and not conn.lost
                and not self._closed and self._max_idle > 0):
            state.start_next_cycle()
            if self._keepalive_s is not None:
                conn.expire_at = time.monotonic() + self._keepalive_s
            if self._n_idle >= self._max_idle:
                self._evict_one()
            self._idle.setdefault(conn.key, []).append(conn)
            self._n_idle += 1
        else:
            conn.close()

    def _evict_one(self) -> None:
        """Close the idle connection that waited longest (httpcore closes the oldest idle)."""
        oldest: tuple[str, int] | None = None
        for key, conns in self._idle.items():
            if conns and (oldest is None or (conns[0].expire_at or 0.0)
                          < (self._idle[oldest][0].expire_at or 0.0)):
                oldest = key
        if oldest is not None:
            self._idle[oldest].pop(0).close()
            self._n_idle -= 1

    async def _connect(self, key: tuple[str, int], timeout: float | None,
                       trace: Trace | None) -> _Conn:
        host, port = key
        kwargs = {"host": host, "port": port, "local_address": None, "timeout": timeout,
                  "socket_options": None}
        await _trace(trace, "connection.connect_tcp.started", kwargs)
        try:
            conn = await _open(host, port, timeout)
        except BaseException as exc:
            await _trace(trace, "connection.connect_tcp.failed", {"exception": exc})
            raise
        await _trace(trace, "connection.connect_tcp.complete", {"return_value": conn})
        return conn

    # one request/response on a connection (httpcore's AsyncHTTP11Connection)

    async def _exchange(self, conn: _Conn, request: httpx.Request,
                        timeouts: dict[str, float | None], trace: Trace | None
                        ) -> httpx.Response:
        info = {"request": request}
        write_timeout = timeouts.get("write")
        await _trace(trace, "http11.send_request_headers.started", info)
        try:
            try:
                event = h11.Request(method=request.method, target=request.url.raw_path,
                                    headers=request.headers.raw)
            except h11.LocalProtocolError as exc:
                raise httpx.LocalProtocolError(str(exc)) from exc
            await conn.write(conn.h11.send(event) or b"", write_timeout)
        except BaseException as exc:
            await _trace(trace, "http11.send_request_headers.failed", {"exception": exc})
            raise
        await _trace(trace, "http11.send_request_headers.complete", {"return_value": None})
        await _trace(trace, "http11.send_request_body.started", info)
        try:
            stream = request.stream
            assert isinstance(stream, typing.AsyncIterable)
            async for chunk in stream:
                await conn.write(conn.h11.send(h11.Data(data=chunk)) or b"", write_timeout)
            await conn.write(conn.h11.send(h11.EndOfMessage()) or b"", write_timeout)
        except BaseException as exc:
            await _trace(trace, "http11.send_request_body.failed", {"exception": exc})
            raise
        await _trace(trace, "http11.send_request_body.complete", {"return_value": None})

        read_timeout = timeouts.get("read")
        await _trace(trace, "http11.receive_response_headers.started", info)
        try:
            while True:
                event = await conn.receive_event(read_timeout)
                if isinstance(event, h11.Response):
                    break
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    break
        except BaseException as exc:
            await _trace(trace, "http11.receive_response_headers.failed", {"exception": exc})
            raise
        http_version = b"HTTP/" + event.http_version
        headers = event.headers.raw_items()
        await _trace(trace, "http11.receive_response_headers.complete", {
            "return_value": (http_version, event.status_code, event.reason, headers)})
        return httpx.Response(
            status_code=event.status_code, headers=headers,
            stream=_ResponseStream(self, conn, request, read_timeout, trace),
            extensions={"http_version": http_version, "reason_phrase": event.reason,
                        "network_stream": conn})


class _ResponseStream(httpx.AsyncByteStream):
    """The response body, read from the connection as it is iterated (like httpcore's)."""

    def __init__(self, owner: LeanTransport, conn: _Conn, request: httpx.Request,
                 timeout: float | None, trace: Trace | None) -> None:
        self._owner = owner
        self._conn = conn
        self._request = request
        self._timeout = timeout
        self._trace = trace
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        trace = self._trace
        try:
            await _trace(trace, "http11.receive_response_body.started",
                         {"request": self._request})
            try:
                while True:
                    event = await self._conn.receive_event(self._timeout)
                    if isinstance(event, h11.Data):
                        yield bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                        break
            except BaseException as exc:
                await _trace(trace, "http11.receive_response_body.failed", {"exception": exc})
                raise
            await _trace(trace, "http11.receive_response_body.complete",
                         {"return_value": None})
        except BaseException:
            # A broken or abandoned body: the connection cannot be reused.
            self._conn.close()
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        trace = self._trace
        await _trace(trace, "http11.response_closed.started", {})
        self._owner._release(self._conn)
        await _trace(trace, "http11.response_closed.complete", {"return_value": None})


def _ip(host: str) -> str | None:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return None


async def _open(host: str, port: int, timeout: float | None) -> _Conn:
    """Connect like anyio's ``connect_tcp`` under httpcore, with the same errors.

    Any OSError of the connection attempts is ``ConnectError("All connection attempts
    failed")``; a failed name lookup keeps its own message; the connect timeout covers the
    lookup too and is an empty ``ConnectTimeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            literal = _ip(host)
            resolve_s = 0.0
            if literal is not None:
                addrs = [literal]
            else:
                t0 = time.perf_counter()
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                resolve_s = time.perf_counter() - t0
                addrs = _order(infos)
            conn = await _connect_any(loop, addrs, (host, port), port)
            conn.resolve_s = resolve_s
            return conn
    except TimeoutError as exc:
        if deadline.expired():
            raise httpx.ConnectTimeout("") from None
        # ETIMEDOUT from the kernel is an OSError like any other failed attempt.
        raise httpx.ConnectError("All connection attempts failed") from exc
    except socket.gaierror as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except OSError as exc:
        raise httpx.ConnectError("All connection attempts failed") from exc


def _order(infos: list[Any]) -> list[str]:
    """anyio's order: the first IPv6 address, then the first IPv4 one, then the rest."""
    v6_found = v4_found = False
    out: list[str] = []
    for family, *_, sockaddr in infos:
        if isinstance(sockaddr[0], int):  # anyio drops these (IPv6 disabled)
            continue
        addr = str(sockaddr[0])
        if family == socket.AF_INET6 and not v6_found:
            v6_found = True
            out.insert(0, addr)
        elif family == socket.AF_INET and not v4_found and v6_found:
            v4_found = True
            out.insert(1, addr)
        else:
            out.append(addr)
    return out


async def _connect_any(loop: asyncio.AbstractEventLoop, addrs: list[str],
                       key: tuple[str, int], port: int) -> _Conn:
    """The first address that connects; the next one starts after 0.25 s or a failure."""
    def factory() -> _Conn:
        return _Conn(key)

    if len(addrs) == 1:  # the common case: no tasks
        _, protocol = await loop.create_connection(factory, addrs[0], port)
        return protocol
    errors: list[OSError] = []
    pending: set[asyncio.Task[tuple[asyncio.Transport, _Conn]]] = set()
    try:
        for addr in addrs:
            pending.add(loop.create_task(loop.create_connection(factory, addr, port)))
            done, pending = await asyncio.wait(pending, timeout=HAPPY_EYEBALLS_DELAY_S,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result()[1]
                errors.append(typing.cast(OSError, task.exception()))
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result()[1]
                errors.append(typing.cast(OSError, task.exception()))
        raise OSError("All connection attempts failed")
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                transport, _ = await task
                transport.close()


def lean_client(*, limits: httpx.Limits | None = None, verify: ssl.SSLContext | None = None,
                **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on :class:`LeanTransport` (no environment proxies).

    https is verified with ``verify`` (default: :func:`core.http.ssl_context`'s default).
    """
    client = httpx.AsyncClient(transport=LeanTransport(limits=limits, verify=verify),
                               trust_env=False, **kwargs)
    skip_cookieless_responses(client)
    return client


def skip_cookieless_responses(client: httpx.AsyncClient) -> None:
    """Let ``client``'s own jar skip responses that set no cookie.

    httpx hands every response to the client's jar, which builds urllib request and
    response adapters (~40 us) just to find no Set-Cookie header; at 1,000 runs/s that
    was 5 % of the exporter's CPU (py-spy, bench.scheduler_scale). The jar only ever reads
    Set-Cookie and Set-Cookie2, so skipping the others changes nothing it stores.
    """
    jar = client.cookies
    extract = jar.extract_cookies

    def extract_cookies(response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            extract(response)

    jar.extract_cookies = extract_cookies  # type: ignore[method-assign]


class DirectSender:
    """``client.build_request`` + ``client.send(follow_redirects=False)`` for a client on
    :class:`LeanTransport`, without the httpx layers probes do not use.

    Why: at 1,000 runs/s the client's request building (header merging, a ``Timeout`` per
    request) and its send layers (auth and redirect generators, hooks, the client's cookie
    jar, response wrapping) were a fifth of a run's CPU (py-spy, bench.scheduler_scale).
    :meth:`for_client` hands one out only for a client that has none of auth, event hooks,
    mounts (proxies), default params or base URL, so what goes on the wire is the same;
    the caller keeps redirects, bodies and cookies on the ordinary path.
    """

    def __init__(self, transport: LeanTransport, default_headers: httpx.Headers) -> None:
        self.transport = transport
        # lower-case name -> (name as the client spells it, value)
        self._defaults = {k.lower(): (k, v) for k, v in default_headers.items()}
        self._timeouts: dict[float, dict[str, float | None]] = {}

    @classmethod
    def for_client(cls, client: httpx.AsyncClient) -> DirectSender | None:
        """A sender for ``client``, or None when the client needs its own layers."""
        transport = getattr(client, "_transport", None)
        if (not isinstance(transport, LeanTransport) or client.auth is not None
                or any(client.event_hooks.values()) or getattr(client, "_mounts", True)
                or client.params or str(client.base_url)):
            return None
        return cls(transport, client.headers)

    def build(self, method: str, url: httpx.URL, headers: dict[str, str],
              params: dict[str, str] | None, timeout: float,
              extensions: dict[str, Any]) -> httpx.Request:
        """The request ``client.build_request`` would build (the client's headers first)."""
        merged = dict(self._defaults)
        for name, value in headers.items():
            merged[name.lower()] = (name, value)
        timeouts = self._timeouts.get(timeout)
        if timeouts is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeouts = self._timeouts[timeout] = httpx.Timeout(timeout).as_dict()
        if params:  # added to the URL's own query, as build_request does
            url = url.copy_merge_params(params)
        return httpx.Request(method, url, headers=list(merged.values()),
                             extensions={**extensions, "timeout": timeouts})

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response, read to its end (``client.send`` without redirects)."""
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response
