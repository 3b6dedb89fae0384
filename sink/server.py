"""The embedded telemetry sink: OTLP/HTTP traces and logs, Sentry events, Alertmanager webhooks.

``python -m sink.server --db PATH [--host 127.0.0.1] [--port 0]`` prints ``READY <url>``.
Everything is stored in one SQLite file (WAL) and queryable as JSON under ``/api``.
Every row records ``received_at`` (unix seconds) at arrival, so readygate can measure
how long each signal took to show up.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

# No types-protobuf stubs in the venv; these two names are all the sink needs.
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.serve import run_asgi

try:  # optional: sentry-sdk sends brotli when the module is importable
    import brotli as _brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

T = TypeVar("T")
Json = dict[str, Any]

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
              5: "CONSUMER"}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
# Sentry project ids the demo services use (see demo.telemetry.SENTRY_PROJECTS).
PROJECT_SERVICES = {"1": "web", "2": "storage"}
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT, service TEXT, kind TEXT,
    status_code TEXT, start_unix_nano INTEGER, end_unix_nano INTEGER, attributes TEXT);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, time_unix_nano INTEGER, service TEXT,
    severity_text TEXT, severity_number INTEGER, body TEXT, trace_id TEXT, span_id TEXT,
    request_id TEXT, attributes TEXT);
CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id);
CREATE INDEX IF NOT EXISTS logs_request ON logs(request_id);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, project_id TEXT, event_id TEXT,
    service TEXT, level TEXT, message TEXT, exception_type TEXT, trace_id TEXT,
    request_id TEXT, event TEXT);
CREATE INDEX IF NOT EXISTS errors_trace ON errors(trace_id);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, receiver TEXT, status TEXT,
    alertname TEXT, labels TEXT, annotations TEXT, starts_at TEXT, ends_at TEXT,
    fingerprint TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications(alertname);
"""
TABLES = ("spans", "logs", "errors", "notifications")


class BadPayload(ValueError):
    """The request body could not be decoded (answered with 400)."""


# ---- decoding -------------------------------------------------------------------------


def decompress(body: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Encoding of gzip, deflate (zlib or raw), br, or identity."""
    enc = (encoding or "identity").strip().lower()
    try:
        if enc in ("", "identity"):
            return body
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # some clients send raw deflate without the zlib header
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if enc == "br":
            if _brotli is None:
                raise BadPayload("Content-Encoding br needs the brotli module")
            return bytes(_brotli.decompress(body))
    except (OSError, EOFError, zlib.error) as exc:
        raise BadPayload(f"cannot decode {enc} body: {exc}") from exc
    except BadPayload:
        raise
    except Exception as exc:  # brotli raises its own error type
        raise BadPayload(f"cannot decode {enc} body: {exc}") from exc
    raise BadPayload(f"unsupported Content-Encoding {enc!r}")


def _id_hex(value: Any, ids_are_base64: bool) -> str:
    """An OTLP trace/span id as lowercase hex ('' when absent)."""
    if not value:
        return ""
    text = str(value)
    if ids_are_base64:
        return base64.b64decode(text).hex()
    return text.lower()


def any_value(value: Any) -> Any:
    """An OTLP AnyValue (JSON form) as a plain Python value."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in OTLP JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes_dict((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes_dict(attrs: Iterable[Any]) -> Json:
    """OTLP ``[{key, value}]`` attributes as a dict."""
    return {str(kv.get("key")): any_value(kv.get("value")) for kv in attrs or []
            if isinstance(kv, Mapping)}


def _enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int):
        return names.get(value, str(value))
    text = str(value or "")
    if not text:
        return names[0]
    if text.isdigit():
        return names.get(int(text), text)
    return text.removeprefix(prefix)


def _resource_service(resource: Any) -> str:
    attrs = attributes_dict((resource or {}).get("attributes", []))
    return str(attrs.get("service.name") or "unknown")


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    # The OTLP JSON spec says lowerCamelCase, but receivers must accept snake_case too.
    return obj.get(camel, obj.get(snake))


def span_rows(doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten an ExportTraceServiceRequest (JSON form) into span rows."""
    rows: list[Json] = []
    for rs in _get(doc, "resourceSpans", "resource_spans") or []:
        service = _resource_service(rs.get("resource"))
        for ss in _get(rs, "scopeSpans", "scope_spans") or []:
            for span in ss.get("spans") or []:
                status = span.get("status") or {}
                rows.append({
                    "received_at": received_at,
                    "trace_id": _id_hex(_get(span, "traceId", "trace_id"), ids_are_base64),
                    "span_id": _id_hex(_get(span, "spanId", "span_id"), ids_are_base64),
                    "parent_span_id": _id_hex(_get(span, "parentSpanId", "parent_span_id"),
                                              ids_are_base64),
                    "name": span.get("name", ""),
                    "service": service,
                    "kind": _enum(span.get("kind", 0), SPAN_KINDS, "SPAN_KIND_"),
                    "status_code": _enum(status.get("code", 0), STATUS_CODES, "STATUS_CODE_"),
                    "start_unix_nano": int(_get(span, "startTimeUnixNano",
                                                "start_time_unix_nano") or 0),
                    "end_unix_nano": int(_get(span, "endTimeUnixNano",
                                              "end_time_unix_nano") or 0),
                    "attributes": attributes_dict(span.get("attributes") or []),
                })
    return rows


def log_rows(doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten an ExportLogsServiceRequest (JSON form) into log rows."""
    rows: list[Json] = []
    for rl in _get(doc, "resourceLogs", "resource_logs") or []:
        service = _resource_service(rl.get("resource"))
        for sl in _get(rl, "scopeLogs", "scope_logs") or []:
            for rec in _get(sl, "logRecords", "log_records") or []:
                body = any_value(rec.get("body"))
                attrs = attributes_dict(rec.get("attributes") or [])
                severity = _get(rec, "severityNumber", "severity_number") or 0
                time_ns = int(_get(rec, "timeUnixNano", "time_unix_nano") or 0) or int(
                    _get(rec, "observedTimeUnixNano", "observed_time_unix_nano") or 0)
                rows.append({
                    "received_at": received_at,
                    "time_unix_nano": time_ns,
                    "service": service,
                    "severity_text": _get(rec, "severityText", "severity_text") or "",
                    "severity_number": int(severity) if str(severity).isdigit() else 0,
                    "body": body if isinstance(body, str) else json.dumps(body, default=str),
                    "trace_id": _id_hex(_get(rec, "traceId", "trace_id"), ids_are_base64),
                    "span_id": _id_hex(_get(rec, "spanId", "span_id"), ids_are_base64),
                    "request_id": str(attrs["request_id"]) if "request_id" in attrs else None,
                    "attributes": attrs,
                })
    return rows


def decode_otlp(body: bytes, content_type: str, message: type[Any]) -> tuple[Json, bool]:
    """An OTLP export request as a JSON-form dict, and whether its ids are base64."""
    if "json" in content_type:
        try:
            doc = json.loads(body or b"{}")
        except ValueError as exc:
            raise BadPayload(f"invalid OTLP JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise BadPayload("OTLP JSON body must be an object")
        return doc, False  # OTLP JSON carries hex ids, unlike protobuf's JSON mapping
    msg = message()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise BadPayload(f"invalid OTLP protobuf: {exc}") from exc
    doc = MessageToDict(msg, use_integers_for_enums=True)
    return doc, True


def parse_envelope(body: bytes) -> list[tuple[Json, bytes]]:
    """The (item header, payload) pairs of a Sentry envelope."""
    header_line, _, rest = body.partition(b"\n")
    if not header_line.strip():
        raise BadPayload("empty envelope")
    try:
        json.loads(header_line)
    except ValueError as exc:
        raise BadPayload(f"invalid envelope header: {exc}") from exc
    items: list[tuple[Json, bytes]] = []
    pos = 0
    while pos < len(rest):
        nl = rest.find(b"\n", pos)
        line = rest[pos:] if nl < 0 else rest[pos:nl]
        pos = len(rest) if nl < 0 else nl + 1
        if not line.strip():
            continue
        try:
            item_header = json.loads(line)
        except ValueError as exc:
            raise BadPayload(f"invalid envelope item header: {exc}") from exc
        length = item_header.get("length") if isinstance(item_header, dict) else None
        if isinstance(length, int):
            payload = rest[pos:pos + length]
            pos += length
            if rest[pos:pos + 1] == b"\n":
                pos += 1
        else:
            nl = rest.find(b"\n", pos)
            payload = rest[pos:] if nl < 0 else rest[pos:nl]
            pos = len(rest) if nl < 0 else nl + 1
        items.append((item_header if isinstance(item_header, dict) else {}, payload))
    return items


def _tags(event: Mapping[str, Any]) -> dict[str, str]:
    tags = event.get("tags") or {}
    if isinstance(tags, list):  # the older wire form: [[key, value], ...]
        return {str(t[0]): str(t[1]) for t in tags if isinstance(t, list | tuple) and len(t) == 2}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


def error_row(event: Json, project_id: str, received_at: float) -> Json:
    """A Sentry event as an errors row."""
    tags = _tags(event)
    exc_type, exc_value = None, None
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, Mapping) else exception
    if isinstance(values, list) and values:
        last = values[-1]  # Sentry lists chained exceptions innermost first, outermost last
        exc_type, exc_value = last.get("type"), last.get("value")
    message = event.get("message")
    if isinstance(message, Mapping):
        message = message.get("formatted") or message.get("message")
    if not message and isinstance(event.get("logentry"), Mapping):
        message = event["logentry"].get("formatted") or event["logentry"].get("message")
    if not message and exc_type:
        message = f"{exc_type}: {exc_value}" if exc_value else str(exc_type)
    contexts = event.get("contexts") or {}
    trace_ctx = contexts.get("trace") if isinstance(contexts, Mapping) else None
    trace_id = (trace_ctx or {}).get("trace_id") if isinstance(trace_ctx, Mapping) else None
    return {
        "received_at": received_at,
        "project_id": project_id,
        "event_id": event.get("event_id"),
        "service": tags.get("service") or PROJECT_SERVICES.get(project_id, project_id),
        "level": event.get("level") or "error",
        "message": message or "",
        "exception_type": exc_type,
        "trace_id": trace_id or tags.get("trace_id"),
        "request_id": tags.get("request_id"),
        "event": event,
    }


def notification_rows(payload: Json, received_at: float) -> list[Json]:
    """One row per alert of an Alertmanager webhook (version 4) payload."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("webhook payload has no alerts[] list")
    rows = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = alert.get("labels") or {}
        rows.append({
            "received_at": received_at,
            "receiver": payload.get("receiver", ""),
            "status": alert.get("status") or payload.get("status", ""),
            "alertname": labels.get("alertname", ""),
            "labels": labels,
            "annotations": alert.get("annotations") or {},
            "starts_at": alert.get("startsAt"),
            "ends_at": alert.get("endsAt"),
            "fingerprint": alert.get("fingerprint"),
            "payload": {k: v for k, v in payload.items() if k != "alerts"},
        })
    return rows


# ---- storage ---------------------------------------------------------------------------


class SinkDB:
    """One SQLite connection (WAL), shared by the server's threads behind a lock."""

    JSON_COLUMNS = frozenset({"attributes", "event", "labels", "annotations", "payload"})

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    def insert(self, table: str, rows: Sequence[Json]) -> None:
        """Insert rows (dicts keyed by column) in one transaction."""
        if not rows:
            return
        columns = list(rows[0])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})")
        values = [[json.dumps(r[c], default=str) if c in self.JSON_COLUMNS else r[c]
                   for c in columns] for r in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, values)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Json]:
        """Rows as dicts, JSON columns decoded."""
        with self._lock:
            cursor = self._conn.execute(sql, params)
            rows = cursor.fetchall()
        out = []
        for row in rows:
            item = dict(row)
            for key in self.JSON_COLUMNS & item.keys():
                item[key] = json.loads(item[key]) if item[key] is not None else None
            out.append(item)
        return out

    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        with self._lock:
            return {t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                    for t in TABLES}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


# ---- the app ---------------------------------------------------------------------------


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    try:
        return max(1, min(MAX_LIMIT, int(raw))) if raw else DEFAULT_LIMIT
    except ValueError:
        raise BadPayload(f"limit must be an integer, got {raw!r}") from None


def create_app(db: SinkDB) -> Starlette:
    """The sink's ASGI app, storing into ``db``."""

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    async def read_body(request: Request) -> bytes:
        return decompress(await request.body(), request.headers.get("content-encoding"))

    def bad(exc: BadPayload) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def otlp(request: Request, message: type[Any], response: type[Any],
                   flatten: Callable[[Json, bool, float], list[Json]], table: str) -> Response:
        received_at = time.time()
        content_type = request.headers.get("content-type", "application/x-protobuf")
        try:
            doc, b64 = decode_otlp(await read_body(request), content_type, message)
            rows = flatten(doc, b64, received_at)
        except BadPayload as exc:
            return bad(exc)
        except (ValueError, TypeError, AttributeError) as exc:
            return bad(BadPayload(f"malformed OTLP payload: {exc}"))
        await run(db.insert, table, rows)
        if "json" in content_type:
            return JSONResponse({})
        return Response(response().SerializeToString(), media_type="application/x-protobuf")

    async def v1_traces(request: Request) -> Response:
        return await otlp(request, ExportTraceServiceRequest, ExportTraceServiceResponse,
                          span_rows, "spans")

    async def v1_logs(request: Request) -> Response:
        return await otlp(request, ExportLogsServiceRequest, ExportLogsServiceResponse,
                          log_rows, "logs")

    async def envelope(request: Request) -> Response:
        received_at = time.time()
        project_id = request.path_params["project_id"]
        try:
            items = parse_envelope(await read_body(request))
            rows = []
            for header, payload in items:
                if header.get("type") != "event":
                    continue  # sessions, client reports, attachments: not errors
                event = json.loads(payload)
                if isinstance(event, dict):
                    rows.append(error_row(event, project_id, received_at))
        except BadPayload as exc:
            return bad(exc)
        except ValueError as exc:
            return bad(BadPayload(f"invalid event JSON: {exc}"))
        await run(db.insert, "errors", rows)
        return JSONResponse({"id": rows[0]["event_id"] if rows else None})

    async def store(request: Request) -> Response:
        received_at = time.time()
        try:
            event = json.loads(await read_body(request))
        except BadPayload as exc:
            return bad(exc)
        except ValueError as exc:
            return bad(BadPayload(f"invalid event JSON: {exc}"))
        if not isinstance(event, dict):
            return bad(BadPayload("event must be a JSON object"))
        row = error_row(event, request.path_params["project_id"], received_at)
        await run(db.insert, "errors", [row])
        return JSONResponse({"id": row["event_id"]})

    async def alertmanager(request: Request) -> Response:
        received_at = time.time()
        try:
            payload = json.loads(await read_body(request))
            if not isinstance(payload, dict):
                raise BadPayload("webhook payload must be a JSON object")
            rows = notification_rows(payload, received_at)
        except BadPayload as exc:
            return bad(exc)
        except ValueError as exc:
            return bad(BadPayload(f"invalid webhook JSON: {exc}"))
        await run(db.insert, "notifications", rows)
        return JSONResponse({"stored": len(rows)})

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
                     params: list[Any]) -> Response:
        """The filtered rows of ``table`` in arrival order, under ``{table: [...]}``."""
        try:
            limit = _limit(request)
        except BadPayload as exc:
            return bad(exc)
        sql = (f"SELECT {columns} FROM {table}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY received_at, id LIMIT ?")
        rows = await run(db.query, sql, (*params, limit))
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

    async def get_errors(request: Request) -> Response:
        where, params = equals(request.query_params, ("trace_id", "service", "request_id"))
        return await select(request, "errors", "received_at, event_id, service, level, message, "
                            "exception_type, trace_id, request_id, event", where, params)

    async def get_notifications(request: Request) -> Response:
        q = request.query_params
        where, params = equals(q, ("alertname", "status", "receiver"))
        if q.get("since"):
            try:
                params.append(float(q["since"]))
            except ValueError:
                return bad(BadPayload(f"since must be unix seconds, got {q['since']!r}"))
            where.append("received_at >= ?")
        return await select(request, "notifications", "received_at, receiver, status, "
                            "alertname, labels, annotations, starts_at, ends_at, fingerprint",
                            where, params)

    async def stats(request: Request) -> Response:
        return JSONResponse(await run(db.counts))

    async def healthy(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/v1/traces", v1_traces, methods=["POST"]),
        Route("/v1/logs", v1_logs, methods=["POST"]),
        Route("/api/{project_id}/envelope/", envelope, methods=["POST"]),
        Route("/api/{project_id}/store/", store, methods=["POST"]),
        Route("/alertmanager/webhook", alertmanager, methods=["POST"]),
        Route("/api/traces/{trace_id}", get_trace, methods=["GET"]),
        Route("/api/logs", get_logs, methods=["GET"]),
        Route("/api/errors", get_errors, methods=["GET"]),
        Route("/api/notifications", get_notifications, methods=["GET"]),
        Route("/api/stats", stats, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
    ])


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m sink.server``."""
    parser = argparse.ArgumentParser(prog="sink.server", description=__doc__)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    db = SinkDB(args.db)
    try:
        run_asgi(create_app(db), args.host, args.port)
    finally:
        db.close()


if __name__ == "__main__":
    main()
