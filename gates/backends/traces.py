"""Trace stores read by trace id: Jaeger query API, Tempo, Zipkin v2."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import httpx

from core.errors import BackendError
from gates.backends.base import HttpBackend
from gates.backends.types import Span

_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _id(value: Any) -> str:
    """A trace/span id as lowercase hex: OTLP JSON from Tempo carries base64 ids."""
    text = str(value or "")
    # all hex is hex whatever its length (Jaeger drops leading zeros); OTLP's base64 of
    # 8 or 16 bytes always ends in '=' padding
    if not text or (_HEX.match(text) and len(text) <= 32):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text.lower()


def _any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    return value


def _attrs(items: Any) -> dict[str, Any]:
    return {a["key"]: _any_value(a.get("value")) for a in items or []
            if isinstance(a, dict) and "key" in a}


class JaegerTraces(HttpBackend):
    """Jaeger's query service (``GET /api/traces/{id}``)."""

    kind = "jaeger"

    async def trace(self, trace_id: str) -> list[Span]:
        body = await self.get_json(f"/api/traces/{trace_id}", missing_ok=True)
        if body is None or not body.get("data"):
            return []
        try:
            out: list[Span] = []
            for trace in body["data"]:
                processes = trace.get("processes") or {}
                for s in trace["spans"]:
                    tags = {t["key"]: t.get("value") for t in s.get("tags") or []}
                    service = (processes.get(s.get("processID")) or {}).get("serviceName", "?")
                    parent = next((r["spanID"] for r in s.get("references") or []
                                   if r.get("refType") == "CHILD_OF"), None)
                    error = tags.get("error") in (True, "true") or \
                        str(tags.get("otel.status_code", "")).upper() == "ERROR"
                    out.append(Span(_id(s["traceID"]), _id(s["spanID"]), s["operationName"],
                                    service, parent, error, tags, s.get("startTime", 0) / 1e6))
        except (KeyError, TypeError, AttributeError):
            raise BackendError("jaeger answered a malformed trace") from None
        return out

    def link(self, trace_id: str) -> str | None:
        return f"{self.base_url}/trace/{trace_id}"


class TempoTraces(HttpBackend):
    """Grafana Tempo (``GET /api/traces/{id}``, OTLP JSON)."""

    kind = "tempo"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, token: str | None = None,
                 timeout_s: float = 5.0) -> None:
        # Tempo answers protobuf unless asked for JSON.
        super().__init__(base_url, client, token=token, timeout_s=timeout_s,
                         headers={"Accept": "application/json"})

    async def trace(self, trace_id: str) -> list[Span]:
        body = await self.get_json(f"/api/traces/{trace_id}", missing_ok=True)
        if body is None:
            return []
        if isinstance(body, dict) and isinstance(body.get("trace"), dict):  # the v2 endpoint
            body = body["trace"]
        try:
            batches = body.get("batches") or body.get("resourceSpans") or []
            out: list[Span] = []
            for batch in batches:
                resource = _attrs((batch.get("resource") or {}).get("attributes"))
                service = str(resource.get("service.name", "?"))
                scopes = batch.get("scopeSpans") or batch.get("instrumentationLibrarySpans") or []
                for scope in scopes:
                    for s in scope.get("spans") or []:
                        code = (s.get("status") or {}).get("code")
                        out.append(Span(
                            _id(s["traceId"]), _id(s["spanId"]), s.get("name", ""), service,
                            _id(s.get("parentSpanId")) or None,
                            code in (2, "STATUS_CODE_ERROR", "ERROR"),
                            _attrs(s.get("attributes")),
                            int(s.get("startTimeUnixNano") or 0) / 1e9 or None))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BackendError("tempo answered a malformed trace") from None
        return out

    def link(self, trace_id: str) -> str | None:
        return None  # Tempo has no UI of its own; Grafana's Explore URL depends on the setup


class ZipkinTraces(HttpBackend):
    """Zipkin v2 API (``GET /api/v2/trace/{id}``)."""

    kind = "zipkin"

    async def trace(self, trace_id: str) -> list[Span]:
        body = await self.get_json(f"/api/v2/trace/{trace_id}", missing_ok=True)
        if body is None:
            return []
        if not isinstance(body, list):
            raise BackendError("zipkin answered a malformed trace")
        try:
            return [Span(_id(s["traceId"]), _id(s["id"]), s.get("name", ""),
                         (s.get("localEndpoint") or {}).get("serviceName", "?"),
                         s.get("parentId"),
                         "error" in (s.get("tags") or {}) or
                         str((s.get("tags") or {}).get("otel.status_code", "")).upper() == "ERROR",
                         dict(s.get("tags") or {}), (s.get("timestamp") or 0) / 1e6 or None)
                    for s in body]
        except (KeyError, TypeError, AttributeError):
            raise BackendError("zipkin answered a malformed trace") from None

    def link(self, trace_id: str) -> str | None:
        return f"{self.base_url}/zipkin/traces/{trace_id}"
