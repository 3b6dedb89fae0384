"""PostHog's capture API: events from posthog-js and PostHog's server SDKs, ``$exception`` kept.

PostHog's SDKs post to ``/e/``, ``/i/v0/e/`` (posthog-js), ``/batch/`` (posthog-python and
the other server SDKs), ``/capture/`` and ``/track/``. A body is one event, a list of events,
or ``{"api_key", "batch": [...], "sent_at"}``, encoded as JSON, gzip (posthog-js marks it
``compression=gzip-js`` or only by the gzip magic bytes; the server SDKs by
``Content-Encoding: gzip``, which :func:`sink.formats.decompress` has already undone), or a
form field ``data=`` holding base64 of the JSON (``compression=base64``, posthog-js's
``sendBeacon`` form). The sink keeps ``$exception`` events (PostHog error tracking) as rows of
the errors table, so ``kind: sink`` error checks find frontend errors sent through PostHog;
other events are accepted and counted, not stored.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import uuid
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from sink.formats import BadPayload, Json, loads

CAPTURE_PATHS = ("/e/", "/i/v0/e/", "/batch/", "/capture/", "/track/")
"""The capture endpoints PostHog's SDKs post events to."""

PROJECT = "posthog"
"""The errors rows' ``project_id`` (PostHog events name no Sentry-style project)."""

_GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadPayload(f"cannot decode gzip capture body: {exc}") from None


def _unbase64(text: str) -> bytes:
    # a "+" sent unescaped in a form body reads back as a space
    try:
        return base64.b64decode(text.strip().replace(" ", "+"), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise BadPayload(f"cannot decode base64 capture body: {exc}") from None


def decode_capture(body: bytes, *, content_type: str | None = None,
                   compression: str | None = None) -> Any:
    """The JSON a capture request carries, whatever posthog-js or a server SDK encoded."""
    mode = (compression or "").strip().lower()
    if mode not in ("", "gzip-js", "gzip", "base64"):
        raise BadPayload(f"unsupported capture compression {compression!r}")
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body)
    elif mode in ("gzip-js", "gzip"):
        raise BadPayload("capture body marked gzip-js is not gzip")
    form = "application/x-www-form-urlencoded" in (content_type or "").lower()
    if form or body.startswith(b"data="):
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadPayload("capture form body is not UTF-8") from None
        data = (fields.get("data") or [""])[0]
        if not data:
            raise BadPayload("capture form body has no data= field")
        stripped = data.lstrip()
        body = data.encode() if stripped.startswith(("{", "[")) else _unbase64(data)
    elif mode == "base64":
        body = _unbase64(body.decode("latin-1"))
    try:
        return loads(body)
    except ValueError as exc:
        raise BadPayload(f"invalid capture JSON: {exc}") from None


def capture_events(payload: Any) -> list[Json]:
    """The events of a decoded capture body (one event, a list, or a ``batch``)."""
    if isinstance(payload, Mapping) and "batch" in payload:
        events = payload["batch"]
        if not isinstance(events, list):
            raise BadPayload("capture batch must be a list of events")
    elif isinstance(payload, list):
        events = payload
    elif isinstance(payload, Mapping) and "event" in payload:
        events = [payload]
    else:
        raise BadPayload("capture body is neither an event, a list of events nor a batch")
    out: list[Json] = []
    for event in events:
        if not isinstance(event, Mapping) or not isinstance(event.get("event"), str):
            raise BadPayload("every captured event must be an object with an 'event' name")
        properties = event.get("properties")
        if properties is not None and not isinstance(properties, Mapping):
            raise BadPayload("event properties must be an object")
        out.append(dict(event))
    return out


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _exception(properties: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(type, value) of the exception: ``$exception_list[0]`` (PostHog lists the caught,
    outermost exception first), else the older ``$exception_type``/``$exception_message``."""
    listed = properties.get("$exception_list")
    if isinstance(listed, list) and listed and isinstance(listed[0], Mapping):
        return _text(listed[0].get("type")), _text(listed[0].get("value"))
    return _text(properties.get("$exception_type")), _text(properties.get("$exception_message"))


def error_row(event: Json, received_at: float) -> Json:
    """A PostHog ``$exception`` event as an errors row (the shape Sentry events take)."""
    properties: Mapping[str, Any] = event.get("properties") or {}
    exc_type, exc_value = _exception(properties)
    message = f"{exc_type}: {exc_value}" if exc_type and exc_value else \
        exc_type or exc_value or "$exception"
    # PostHog's SDKs name the OpenTelemetry trace id `$trace_id` (posthog-python adds it from
    # the active span); a page may register a plain `trace_id` super property instead.
    trace = _text(properties.get("$trace_id") or properties.get("trace_id"))
    return {
        "received_at": received_at,
        "project_id": PROJECT,
        "event_id": _text(event.get("uuid") or properties.get("$insert_id")) or uuid.uuid4().hex,
        "service": _text(properties.get("service")) or PROJECT,
        "level": _text(properties.get("$exception_level")) or "error",
        "message": message,
        "exception_type": exc_type,
        "trace_id": trace.lower() if trace else None,
        "request_id": _text(properties.get("request_id") or properties.get("$request_id")),
        "event": event,
    }


def exception_rows(body: bytes, received_at: float, *, content_type: str | None = None,
                   compression: str | None = None) -> tuple[int, list[Json]]:
    """(events in the request, errors rows of its ``$exception`` events)."""
    events = capture_events(decode_capture(body, content_type=content_type,
                                           compression=compression))
    return len(events), [error_row(e, received_at) for e in events if e["event"] == "$exception"]
