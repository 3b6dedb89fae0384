"""The HTTP fault proxy: a reverse proxy that injects errors, latency and aborts on command.

It runs as its own process (``python -m chaos.proxy --upstream URL``) so that every fault
ends at its TTL even if readygate itself is SIGKILLed. Requests under ``/_readygate/`` are
the control plane; everything else is forwarded to the upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import json
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.faults import CONTROL_PREFIX, DEFAULT_MAX_TTL_S, FaultRecord, FaultTable
from core.serve import run_asgi

log = logging.getLogger("chaos.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 9110 §7.6.1 connection-specific headers, plus Host (httpx sets the upstream's).
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
_INCOMPLETE_RESPONSE_MSG = "ASGI callable returned without completing response."
FAULT_HEADER = "x-readygate-fault"


def _record_json(record: FaultRecord) -> dict[str, Any]:
    return record.model_dump(mode="json")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _strip_hop_by_hop(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers and any header the Connection header names."""
    named = set(_HOP_BY_HOP)
    for key, value in raw:
        if key.lower() == b"connection":
            named.update(t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip())
    return [(k, v) for k, v in raw if k.decode("latin-1").lower() not in named]


class FaultProxy:
    """The ASGI app: control plane under ``/_readygate/``, a fault-injecting forwarder elsewhere."""

    def __init__(self, upstream: str, *, max_ttl_s: float = DEFAULT_MAX_TTL_S,
                 seed: int | None = None, client: httpx.AsyncClient | None = None,
                 upstream_timeout_s: float = 30.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.table = FaultTable(max_ttl_s=max_ttl_s, rng=random.Random(seed),
                                on_end=self._log_end)
        self._client = client
        self._own_client = client is None
        self._upstream_timeout_s = upstream_timeout_s
        self._wake = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self.control = Starlette(
            routes=[
                Route("/_readygate/health", self._health, methods=["GET"]),
                Route("/_readygate/faults", self._list, methods=["GET"]),
                Route("/_readygate/faults", self._inject, methods=["POST"]),
                Route("/_readygate/faults", self._clear, methods=["DELETE"]),
                Route("/_readygate/faults/{fault_id}", self._get, methods=["GET"]),
                Route("/_readygate/faults/{fault_id}", self._remove, methods=["DELETE"]),
            ],
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope["path"].startswith(CONTROL_PREFIX):
            await self.control(scope, receive, send)
        elif scope["type"] == "http":
            await self._data_plane(scope, receive, send)
        else:  # websocket: not proxied
            await send({"type": "websocket.close", "code": 1003})

    # lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._upstream_timeout_s, connect=5.0),
                limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
                # A proxy must not read proxy env vars, keep cookies, or follow redirects.
                trust_env=False, follow_redirects=False, cookies=_no_cookies(),
            )
        self._wake = asyncio.Event()
        self._reaper = asyncio.create_task(self._reap(), name="fault-reaper")
        try:
            yield
        finally:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            if self._own_client:
                await self._client.aclose()

    async def _reap(self) -> None:
        """End faults at their expiry even when no request arrives to notice."""
        while True:
            self.table.expire_due()
            nxt = self.table.next_expiry()
            self._wake.clear()
            timeout = None if nxt is None else max(0.0, nxt - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    @staticmethod
    def _log_end(record: FaultRecord) -> None:
        log.info("fault %s %s (%s, matched %d, injected %d)", record.id, record.end_reason,
                 record.kind, record.matched, record.injected)

    # control plane ---------------------------------------------------------------------

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstream": self.upstream,
                             "active": len(self.table.active())})

    async def _inject(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            return _error(422, f"invalid fault spec: body is not JSON ({exc})")
        try:
            record = self.table.add(data)
        except ValueError as exc:
            return _error(422, str(exc))
        self._wake.set()  # the reaper may be sleeping past this fault's expiry
        log.info("fault %s injected: %s", record.id,
                 json.dumps(record.model_dump(mode="json", exclude_none=True,
                                              exclude={"matched", "injected"})))
        return JSONResponse(_record_json(record), status_code=201)

    async def _list(self, _request: Request) -> Response:
        return JSONResponse({"active": [_record_json(r) for r in self.table.active()],
                             "history": [_record_json(r) for r in self.table.history()]})

    async def _get(self, request: Request) -> Response:
        self.table.expire_due()
        record = self.table.get(request.path_params["fault_id"])
        if record is None:
            return _error(404, f"no fault {request.path_params['fault_id']!r}")
        return JSONResponse(_record_json(record))

    async def _remove(self, request: Request) -> Response:
        record = self.table.remove(request.path_params["fault_id"])
        if record is None:
            return _error(404, f"no fault {request.path_params['fault_id']!r}")
        return JSONResponse(_record_json(record))

    async def _clear(self, _request: Request) -> Response:
        return JSONResponse([_record_json(r) for r in self.table.clear()])

    # data plane ------------------------------------------------------------------------

    async def _data_plane(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        decision = self.table.decide(method, scope["path"])
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        marker = (FAULT_HEADER.encode(), ",".join(decision.fault_ids).encode())
        if decision.abort:
            # ASGI has no "reset": start a response and never finish it, so the server closes
            # the connection and the client sees a truncated message (httpx raises).
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-length", b"1024"), marker]})
            return
        if decision.status is not None:
            body = json.dumps({"error": "injected by readygate fault proxy",
                               "faults": decision.fault_ids}).encode()
            await _send_simple(send, decision.status, body, [marker])
            return
        await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._client is not None
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + raw_path.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = _strip_hop_by_hop([(k, v) for k, v in scope["headers"] if k.lower() != b"host"])
        headers.extend(_forwarded_headers(scope))
        request = httpx.Request(scope["method"], url, headers=headers,
                                content=_request_body(scope, receive))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            message = f"upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}"
            await _send_simple(send, 502, json.dumps({"error": message}).encode(), [])
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": _strip_hop_by_hop(list(response.headers.raw))})
            # aiter_raw: pass the body through byte for byte, still content-encoded.
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:
            # Headers are out; all we can do is cut the response short, as the upstream did.
            log.warning("upstream %s broke off %s %s: %s: %s", self.upstream, scope["method"],
                        scope["path"], type(exc).__name__, exc)
        finally:
            await response.aclose()


def _no_cookies() -> http.cookiejar.CookieJar:
    """A jar that accepts no cookie, so one client's Set-Cookie never reaches another."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _forwarded_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    client = scope.get("client")
    if client:
        out.append((b"x-forwarded-for", str(client[0]).encode()))
    host = next((v for k, v in scope["headers"] if k.lower() == b"host"), None)
    if host is not None:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
    return out


def _request_body(scope: Scope, receive: Receive) -> bytes | AsyncIterator[bytes] | None:
    """The request body as a stream, or nothing when the client sent none."""
    headers = {k.lower(): v for k, v in scope["headers"]}
    if b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") == b"0":
        return b"" if b"content-length" in headers else None

    async def stream() -> AsyncIterator[bytes]:
        # Stream chunk by chunk so a large upload is never held whole in memory.
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise httpx.ReadError("client disconnected during upload")
            body: bytes = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return

    return stream()


async def _send_simple(send: Send, status: int, body: bytes,
                       headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _DropAbortNoise(logging.Filter):
    """uvicorn logs every deliberate abort as an error; those are expected, not failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INCOMPLETE_RESPONSE_MSG


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m chaos.proxy``."""
    parser = argparse.ArgumentParser(prog="python -m chaos.proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="base URL requests are forwarded to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--max-ttl", type=float, default=DEFAULT_MAX_TTL_S,
                        help="longest TTL a fault may ask for, in seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault rates")
    parser.add_argument("--upstream-timeout", type=float, default=30.0)
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fault proxy until SIGTERM; print ``READY <url>`` once listening."""
    args = build_parser().parse_args(argv)
    upstream = httpx.URL(args.upstream)
    if upstream.scheme not in ("http", "https") or not upstream.host:
        print(f"chaos.proxy: --upstream {args.upstream!r}: need an http(s) URL", file=sys.stderr)
        return 3
    if not args.max_ttl > 0:
        print("chaos.proxy: --max-ttl must be > 0", file=sys.stderr)
        return 3
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_DropAbortNoise())
    # httpx logs every forwarded request at INFO; under load that drowns the fault events.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = FaultProxy(args.upstream, max_ttl_s=args.max_ttl, seed=args.seed,
                     upstream_timeout_s=args.upstream_timeout)
    run_asgi(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
