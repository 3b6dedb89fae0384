"""The sink's HTTP side: OTLP/HTTP, Sentry, PostHog, alert webhooks in; the JSON query API out.

``python -m sink.server --db PATH [--host 127.0.0.1] [--port 0]`` prints ``READY <url>``
(the demo stack starts the sink this way; OTLP/gRPC stays off). ``readygate sink``
(:mod:`sink.cli`) runs the same server with OTLP/gRPC and its own limits. Every row
records ``received_at`` (unix seconds) at arrival, so readygate can measure how long each
signal took to show up. See docs/sink.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import errno
import hmac
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import EXIT_BAD_INPUT
from core.serve import run_asgi
from sink.formats import (
    MAX_BODY_BYTES,
    BadPayload,
    Json,
    TooLarge,
    decompress,
    envelope_events,
    error_row,
    loads,
)
from sink.otlp import LOGS, METRICS, TRACES, Signal, decode_http
from sink.posthog import CAPTURE_PATHS, exception_rows
from sink.store import DEFAULT_MAX_BYTES, DEFAULT_RETENTION_S, SinkDB
from sink.webhooks import PARSERS, Parser

T = TypeVar("T")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
GRPC_PREFIX = "OTLP_GRPC "
# Request bodies that cannot be decoded or stored are the sender's fault: 400, not 500.
# OverflowError: an integer SQLite cannot hold (over 2**63 - 1).
CLIENT_ERRORS = (BadPayload, ValueError, TypeError, AttributeError, KeyError, OverflowError,
                 RecursionError)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    try:
        return max(1, min(MAX_LIMIT, int(raw))) if raw else DEFAULT_LIMIT
    except ValueError:
        raise BadPayload(f"limit must be an integer, got {raw!r}") from None


def _since(request: Request) -> float | None:
    raw = request.query_params.get("since")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadPayload(f"since must be unix seconds, got {raw!r}") from None


def _monotonic_bool(row: Json) -> None:
    # SQLite has no booleans: the column holds 1/0 (sums) or NULL (other types).
    if row.get("monotonic") is not None:
        row["monotonic"] = bool(row["monotonic"])


def bad(exc: Exception) -> Response:
    """The 400 answer for a request the sink cannot take."""
    message = str(exc) if isinstance(exc, BadPayload) else f"malformed payload: {exc}"
    return JSONResponse({"error": message}, status_code=413 if isinstance(exc, TooLarge)
                        else 400)


Handler = Callable[[Request], Awaitable[Response]]
# Browser SDKs (@sentry/browser, posthog-js) post from the page's own origin: the ingest
# routes answer CORS like Sentry's and PostHog's do; the query API stays same-origin.
_CORS_PREFLIGHT = {"Access-Control-Allow-Origin": "*",
                   "Access-Control-Allow-Methods": "POST, OPTIONS",
                   "Access-Control-Allow-Headers": "Content-Type, Content-Encoding",
                   "Access-Control-Max-Age": "600"}


def cors(handler: Handler) -> Handler:
    """``handler`` answering CORS preflights and allowing any origin to post."""

    async def wrapped(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS_PREFLIGHT)
        resp = await handler(request)
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp
    return wrapped


def webhook_token_given(request: Request, token: str) -> bool:
    """Whether a webhook request carries ``token``: ``Authorization: Bearer <token>``, Basic
    auth with it as the password (any user), or a ``token`` / ``auth_token`` query parameter
    (for senders that can only put it in the URL, e.g. Cloud Monitoring's token channels)."""
    given: list[str] = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given.append(value.strip())
    elif scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, ValueError):
            given.append(base64.b64decode(value.strip(), validate=True)
                         .decode("utf-8", "replace").partition(":")[2])
    given += [request.query_params.get(k, "") for k in ("token", "auth_token")]
    expected = token.encode()
    # compare_digest over every candidate: the time taken says nothing about the token
    return any([hmac.compare_digest(g.encode(), expected) for g in given if g])


def read_token_file(path: Path) -> str:
    """The webhook token: the file's first line, at least 16 characters."""
    text = path.read_text(encoding="utf-8").strip()
    token = text.splitlines()[0].strip() if text else ""
    if len(token) < 16:
        raise ValueError(f"{path}: the webhook token must be at least 16 characters")
    return token


def create_app(db: SinkDB, *, webhook_token: str | None = None) -> Starlette:
    """The sink's ASGI app, storing into ``db``. ``webhook_token``: alert webhooks
    (``/alertmanager/webhook``, ``/webhooks/*``) must carry it (401 otherwise)."""

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise TooLarge(f"request body of {declared} bytes is over {MAX_BODY_BYTES}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise TooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return decompress(b"".join(chunks), request.headers.get("content-encoding"))

    async def store(table: str, rows: list[Json]) -> Response | None:
        try:
            await run(db.insert, table, rows)
        except OverflowError as exc:
            return bad(BadPayload(f"a number is out of range: {exc}"))
        return None

    async def otlp(request: Request, signal: Signal) -> Response:
        received_at = time.time()
        content_type = request.headers.get("content-type", "application/x-protobuf")
        try:
            rows = decode_http(signal, await read_body(request), content_type, received_at)
        except CLIENT_ERRORS as exc:
            return bad(exc)
        if (failed := await store(signal.table, rows)) is not None:
            return failed
        if "json" in content_type:
            return JSONResponse({})
        return Response(signal.response().SerializeToString(),
                        media_type="application/x-protobuf")

    async def v1_traces(request: Request) -> Response:
        return await otlp(request, TRACES)

    async def v1_logs(request: Request) -> Response:
        return await otlp(request, LOGS)

    async def v1_metrics(request: Request) -> Response:
        return await otlp(request, METRICS)

    async def envelope(request: Request) -> Response:
        received_at = time.time()
        project_id = request.path_params["project_id"]
        try:
            rows = [error_row(event, project_id, received_at)
                    for event in envelope_events(await read_body(request))]
        except CLIENT_ERRORS as exc:
            return bad(exc)
        if (failed := await store("errors", rows)) is not None:
            return failed
        return JSONResponse({"id": rows[0]["event_id"] if rows else None})

    async def legacy_store(request: Request) -> Response:
        received_at = time.time()
        try:
            event = loads(await read_body(request))
            if not isinstance(event, dict):
                raise BadPayload("event must be a JSON object")
            row = error_row(event, request.path_params["project_id"], received_at)
        except CLIENT_ERRORS as exc:
            return bad(exc)
        if (failed := await store("errors", [row])) is not None:
            return failed
        return JSONResponse({"id": row["event_id"]})

    def unauthorized(request: Request) -> Response | None:
        """401 for a webhook without the token (checked before anything else is said)."""
        if webhook_token is None or webhook_token_given(request, webhook_token):
            return None
        return JSONResponse({"error": "this sink takes webhooks only with its token "
                             "(Authorization: Bearer, Basic password, or ?token=)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def notifications(request: Request, parser: Parser) -> Response:
        """A webhook body turned into notification rows by ``parser`` (sink.webhooks)."""
        received_at = time.time()
        if (refused := unauthorized(request)) is not None:
            return refused
        try:
            payload = loads(await read_body(request))
            if not isinstance(payload, dict):
                raise BadPayload("webhook payload must be a JSON object")
            rows = parser(payload, received_at)
        except CLIENT_ERRORS as exc:
            return bad(exc)
        if (failed := await store("notifications", rows)) is not None:
            return failed
        return JSONResponse({"stored": len(rows)})

    async def alertmanager(request: Request) -> Response:
        return await notifications(request, PARSERS["alertmanager"])

    async def posthog_capture(request: Request) -> Response:
        received_at = time.time()
        try:
            count, rows = exception_rows(
                await read_body(request), received_at,
                content_type=request.headers.get("content-type"),
                compression=request.query_params.get("compression"))
        except CLIENT_ERRORS as exc:
            return bad(exc)
        if (failed := await store("errors", rows)) is not None:
            return failed
        # PostHog answers {"status": 1}; only $exception events are kept (docs/sink.md)
        return JSONResponse({"status": 1, "events": count, "stored": len(rows)})

    async def vendor_webhook(request: Request) -> Response:
        vendor = request.path_params["vendor"]
        parser = PARSERS.get(vendor)
        if (refused := unauthorized(request)) is not None:
            return refused  # the vendor list is not told to a caller without the token
        if parser is None:
            return JSONResponse({"error": f"unknown webhook vendor {vendor!r} (one of: "
                                 f"{', '.join(sorted(PARSERS)) or 'none'})"}, status_code=404)
        return await notifications(request, parser)

    async def get_trace(request: Request) -> Response:
        trace_id = request.path_params["trace_id"].lower()
        rows = await run(db.query, (
            "SELECT trace_id, span_id, parent_span_id, name, service, kind, status_code,"
            " start_unix_nano, end_unix_nano, attributes, received_at FROM spans"
            " WHERE trace_id = ? ORDER BY start_unix_nano, id"), (trace_id,))
        return JSONResponse({"trace_id": trace_id, "spans": rows})

    def equals(q: Any, keys: tuple[str, ...]) -> tuple[list[str], list[Any]]:
        """``key = ?`` filters for the query parameters given (trace ids compare lowercase)."""
        where: list[str] = []
        params: list[Any] = []
        for key in keys:
            if q.get(key):
                where.append(f"{key} = ?")
                params.append(q[key].lower() if key == "trace_id" else q[key])
        return where, params

    async def select(request: Request, table: str, columns: str, where: list[str],
                     params: list[Any], post: Callable[[Json], object] | None = None
                     ) -> Response:
        """The filtered rows of ``table`` in arrival order, under ``{table: [...]}``."""
        try:
            limit = _limit(request)
            since = _since(request)
        except BadPayload as exc:
            return bad(exc)
        if since is not None:
            where, params = [*where, "received_at >= ?"], [*params, since]
        sql = (f"SELECT {columns} FROM {table}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY received_at, id LIMIT ?")
        rows = await run(db.query, sql, (*params, limit))
        if post is not None:
            for row in rows:
                post(row)
        return JSONResponse({table: rows})

    async def get_logs(request: Request) -> Response:
        q = request.query_params
        where, params = equals(q, ("trace_id", "request_id", "service"))
        if q.get("level"):
            where.append("UPPER(severity_text) = ?")
            params.append(q["level"].upper())
        if q.get("contains"):
            # Attributes too: a secret scan must see a password logged as a field.
            where.append("(INSTR(body, ?) > 0 OR INSTR(attributes, ?) > 0)")
            params += [q["contains"], q["contains"]]
        return await select(request, "logs", "received_at, time_unix_nano, service, "
                            "severity_text, severity_number, body, trace_id, span_id, attributes",
                            where, params)

    async def get_metrics(request: Request) -> Response:
        where, params = equals(request.query_params, ("name", "service", "type"))
        return await select(request, "metrics", "received_at, service, scope, name, description,"
                            " unit, type, temporality, monotonic, time_unix_nano,"
                            " start_unix_nano, value, count, sum, attributes, resource, details",
                            where, params, post=_monotonic_bool)

    async def get_errors(request: Request) -> Response:
        where, params = equals(request.query_params, ("trace_id", "service", "request_id"))
        return await select(request, "errors", "received_at, event_id, service, level, message, "
                            "exception_type, trace_id, request_id, event", where, params)

    async def get_notifications(request: Request) -> Response:
        where, params = equals(request.query_params, ("alertname", "status", "receiver"))
        return await select(request, "notifications", "received_at, receiver, status, "
                            "alertname, labels, annotations, starts_at, ends_at, fingerprint",
                            where, params)

    async def stats(request: Request) -> Response:
        return JSONResponse(await run(db.counts))

    async def storage(request: Request) -> Response:
        return JSONResponse(await run(db.storage))

    async def healthy(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/v1/traces", v1_traces, methods=["POST"]),
        Route("/v1/logs", v1_logs, methods=["POST"]),
        Route("/v1/metrics", v1_metrics, methods=["POST"]),
        Route("/api/{project_id}/envelope/", cors(envelope), methods=["POST", "OPTIONS"]),
        Route("/api/{project_id}/store/", cors(legacy_store), methods=["POST", "OPTIONS"]),
        *(Route(path, cors(posthog_capture), methods=["POST", "OPTIONS"])
          for path in CAPTURE_PATHS),
        Route("/alertmanager/webhook", alertmanager, methods=["POST"]),
        Route("/webhooks/{vendor}", vendor_webhook, methods=["POST"]),
        Route("/api/traces/{trace_id}", get_trace, methods=["GET"]),
        Route("/api/logs", get_logs, methods=["GET"]),
        Route("/api/metrics", get_metrics, methods=["GET"]),
        Route("/api/errors", get_errors, methods=["GET"]),
        Route("/api/notifications", get_notifications, methods=["GET"]),
        Route("/api/stats", stats, methods=["GET"]),
        Route("/api/storage", storage, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
    ])


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(db_path: Path, *, host: str = "127.0.0.1", port: int = 0,
          grpc_listen: tuple[str, int] | None = None,
          retention_s: float | None = DEFAULT_RETENTION_S,
          max_bytes: int | None = DEFAULT_MAX_BYTES,
          webhook_token: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT: prints ``READY <url>``, then ``OTLP_GRPC <host:port>``.

    Raises OSError when a port cannot be bound, sqlite3.Error when the database cannot
    be opened.
    """
    db = SinkDB(db_path, retention_s=retention_s, max_bytes=max_bytes)
    grpc_server: Any = None
    try:
        grpc_address: str | None = None
        if grpc_listen is not None:
            from sink.otlp_grpc import start_grpc  # grpcio only when gRPC is on

            grpc_server, grpc_address = start_grpc(db, *grpc_listen)
        db.start_pruning()

        def on_ready(_url: str) -> None:
            if grpc_address is not None:
                # run_asgi prints READY right after this returns, before its task next
                # yields: scheduled here, the gRPC line always follows the READY line.
                asyncio.get_running_loop().call_soon(_print_line,
                                                     f"{GRPC_PREFIX}{grpc_address}")

        run_asgi(create_app(db, webhook_token=webhook_token), host, port, on_ready=on_ready)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=1.0).wait(5)
        db.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m sink.server`` (HTTP, and gRPC on request; default limits)."""
    parser = argparse.ArgumentParser(prog="sink.server", description=__doc__)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--grpc-host", default=None,
                        help="also take OTLP/gRPC on this host (with --grpc-port)")
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--webhook-token-file", type=Path, default=None,
                        help="alert webhooks must carry the token in this file")
    args = parser.parse_args(argv)
    grpc = None if args.grpc_host is None else (args.grpc_host, args.grpc_port)
    try:
        token = read_token_file(args.webhook_token_file) if args.webhook_token_file else None
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"sink: --webhook-token-file: {exc}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None
    try:
        serve(args.db, host=args.host, port=args.port, grpc_listen=grpc, webhook_token=token)
    except OSError as exc:  # a fixed port (stack.sink.listen) somebody else holds
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        sys.stderr.write(f"sink: cannot listen on {args.host}:{args.port} "
                         f"(--port): {exc.strerror}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None


if __name__ == "__main__":
    main()
