"""Wire formats other than OTLP: body encodings, Sentry envelopes, Alertmanager webhooks.

Each function turns a request body into plain rows for :mod:`sink.store`, or raises
:class:`BadPayload` (answered with 400).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from typing import Any

try:  # optional: sentry-sdk sends brotli when the module is importable
    import brotli as _brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

Json = dict[str, Any]

class BadPayload(ValueError):
    """The request body could not be decoded (answered with 400)."""


def _number(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def loads(data: bytes | str) -> Any:
    """JSON, with NaN, Infinity and overflowing numbers kept as strings.

    Python's parser accepts them as floats, but a stored non-finite float could never be
    answered as JSON again, so the query API would fail on it.
    """
    try:
        return json.loads(data, parse_constant=str, parse_float=_number)
    except RecursionError:
        raise BadPayload("JSON nested too deeply") from None


# One request's body, before and after decompression (the OpenTelemetry Collector's HTTP
# receivers default to 20 MiB): a larger one is refused with 413, so one sender cannot
# make the sink hold gigabytes (a gzip bomb inflates ~1000x).
MAX_BODY_BYTES = 32 * 1024 * 1024


class TooLarge(BadPayload):
    """The body is over :data:`MAX_BODY_BYTES` (answered with 413)."""


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    """zlib/gzip/raw deflate, every gzip member, stopping past ``limit`` bytes of output."""
    out: list[bytes] = []
    size = 0
    data = body
    while data:
        d = zlib.decompressobj(wbits)
        chunk = d.decompress(data, limit - size + 1)
        size += len(chunk)
        out.append(chunk)
        if size > limit or d.unconsumed_tail:
            raise TooLarge(f"decoded body is over {limit} bytes")
        if not d.eof:
            raise BadPayload("truncated compressed body")
        data = d.unused_data if wbits > 16 else b""  # gzip: the next member, if any
    return b"".join(out)


def decompress(body: bytes, encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo a Content-Encoding of gzip, deflate (zlib or raw), br, or identity; at most
    ``limit`` bytes come out (:class:`TooLarge` otherwise)."""
    enc = (encoding or "identity").strip().lower()
    try:
        if enc in ("", "identity"):
            return body
        if enc in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if enc == "deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:  # some clients send raw deflate without the zlib header
                return _inflate(body, -zlib.MAX_WBITS, limit)
        if enc == "br":
            if _brotli is None:
                raise BadPayload("Content-Encoding br needs the brotli module")
            out = bytes(_brotli.decompress(body))
            if len(out) > limit:
                raise TooLarge(f"decoded body is over {limit} bytes")
            return out
    except (OSError, EOFError, zlib.error) as exc:
        raise BadPayload(f"cannot decode {enc} body: {exc}") from exc
    except BadPayload:
        raise
    except Exception as exc:  # brotli raises its own error type
        raise BadPayload(f"cannot decode {enc} body: {exc}") from exc
    raise BadPayload(f"unsupported Content-Encoding {enc!r}")


def parse_envelope(body: bytes) -> list[tuple[Json, bytes]]:
    """The (item header, payload) pairs of a Sentry envelope."""
    header_line, _, rest = body.partition(b"\n")
    if not header_line.strip():
        raise BadPayload("empty envelope")
    try:
        loads(header_line)
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
            item_header = loads(line)
        except ValueError as exc:
            raise BadPayload(f"invalid envelope item header: {exc}") from exc
        length = item_header.get("length") if isinstance(item_header, dict) else None
        if isinstance(length, int) and length >= 0:
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


def envelope_events(body: bytes) -> list[Json]:
    """The error events of a Sentry envelope (sessions, client reports, attachments skipped)."""
    events = []
    for header, payload in parse_envelope(body):
        if header.get("type") != "event":
            continue
        try:
            event = loads(payload)
        except ValueError as exc:
            raise BadPayload(f"invalid event JSON: {exc}") from exc
        if isinstance(event, dict):
            events.append(event)
    return events


def _tags(event: Mapping[str, Any]) -> dict[str, str]:
    tags = event.get("tags") or {}
    if isinstance(tags, list):  # the older wire form: [[key, value], ...]
        return {str(t[0]): str(t[1]) for t in tags if isinstance(t, list | tuple) and len(t) == 2}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def error_row(event: Json, project_id: str, received_at: float) -> Json:
    """A Sentry event as an errors row."""
    tags = _tags(event)
    exc_type, exc_value = None, None
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, Mapping) else exception
    if isinstance(values, list) and values and isinstance(values[-1], Mapping):
        last = values[-1]  # Sentry lists chained exceptions innermost first, outermost last
        exc_type, exc_value = _text(last.get("type")), _text(last.get("value"))
    message = event.get("message")
    if isinstance(message, Mapping):
        message = message.get("formatted") or message.get("message")
    if not message and isinstance(event.get("logentry"), Mapping):
        message = event["logentry"].get("formatted") or event["logentry"].get("message")
    if not message and exc_type:
        message = f"{exc_type}: {exc_value}" if exc_value else str(exc_type)
    contexts = event.get("contexts") or {}
    trace_ctx = contexts.get("trace") if isinstance(contexts, Mapping) else None
    trace_id = trace_ctx.get("trace_id") if isinstance(trace_ctx, Mapping) else None
    return {
        "received_at": received_at,
        "project_id": project_id,
        "event_id": _text(event.get("event_id")),
        # Sentry has no service field: the `service` tag names it, else the DSN's project
        "service": tags.get("service") or project_id,
        "level": _text(event.get("level")) or "error",
        "message": _text(message) or "",
        "exception_type": exc_type,
        "trace_id": _text(trace_id) or tags.get("trace_id"),
        "request_id": tags.get("request_id"),
        "event": event,
    }


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadPayload(f"{what} must be an object")
    return value


def notification_rows(payload: Json, received_at: float) -> list[Json]:
    """One row per alert of an Alertmanager webhook (version 4) payload."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("webhook payload has no alerts[] list")
    rows = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = _mapping(alert.get("labels"), "alert labels")
        rows.append({
            "received_at": received_at,
            "receiver": _text(payload.get("receiver")) or "",
            "status": _text(alert.get("status") or payload.get("status")) or "",
            "alertname": _text(labels.get("alertname")) or "",
            "labels": labels,
            "annotations": _mapping(alert.get("annotations"), "alert annotations"),
            "starts_at": _text(alert.get("startsAt")),
            "ends_at": _text(alert.get("endsAt")),
            "fingerprint": _text(alert.get("fingerprint")),
            "payload": {k: v for k, v in payload.items() if k != "alerts"},
        })
    return rows


def notification_row(*, received_at: float, receiver: str, status: str, alertname: str,
                     labels: Json | None = None, annotations: Json | None = None,
                     starts_at: str | None = None, ends_at: str | None = None,
                     fingerprint: str | None = None, payload: Json | None = None) -> Json:
    """One notifications-table row; ``status`` is "firing" or "resolved"."""
    return {"received_at": received_at, "receiver": receiver, "status": status,
            "alertname": alertname, "labels": {"alertname": alertname, **(labels or {})},
            "annotations": annotations or {}, "starts_at": starts_at, "ends_at": ends_at,
            "fingerprint": fingerprint, "payload": payload or {}}
