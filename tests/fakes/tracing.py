"""Fake Jaeger query (``/api/traces/{id}``), Tempo (``/api/traces/{id}``, OTLP JSON) and
Zipkin (``/api/v2/trace/{id}``), all serving the same stored spans in their own formats."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeSpan:
    trace_id: str
    span_id: str
    name: str
    service: str
    parent_id: str | None = None
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.time)


@dataclass
class FakeTraces:
    """Spans by trace id; ``app(kind)`` answers in ``jaeger``, ``tempo`` or ``zipkin`` form."""

    spans: list[FakeSpan] = field(default_factory=list)

    def add(self, trace_id: str, name: str, service: str, *, span_id: str | None = None,
            parent_id: str | None = None, error: bool = False,
            attributes: dict[str, Any] | None = None) -> FakeSpan:
        span = FakeSpan(trace_id, span_id or f"{len(self.spans) + 1:016x}", name, service,
                        parent_id, error, attributes or {})
        self.spans.append(span)
        return span

    def of(self, trace_id: str) -> list[FakeSpan]:
        return [s for s in self.spans if s.trace_id == trace_id.lower()]

    # -- formats ------------------------------------------------------------------------
    def jaeger(self, spans: list[FakeSpan]) -> dict[str, Any]:
        services = sorted({s.service for s in spans})
        pid = {name: f"p{i + 1}" for i, name in enumerate(services)}
        return {"data": [{
            "traceID": spans[0].trace_id,
            "spans": [{
                "traceID": s.trace_id, "spanID": s.span_id, "operationName": s.name,
                "references": [{"refType": "CHILD_OF", "traceID": s.trace_id,
                                "spanID": s.parent_id}] if s.parent_id else [],
                "startTime": int(s.start * 1e6), "duration": 1000, "processID": pid[s.service],
                "tags": [{"key": k, "type": "string", "value": v}
                         for k, v in s.attributes.items()]
                + ([{"key": "error", "type": "bool", "value": True}] if s.error else []),
                "logs": [], "warnings": None} for s in spans],
            "processes": {pid[name]: {"serviceName": name, "tags": []} for name in services},
            "warnings": None}], "total": 0, "limit": 0, "offset": 0, "errors": None}

    def tempo(self, spans: list[FakeSpan]) -> dict[str, Any]:
        def b64(hex_id: str) -> str:  # OTLP JSON from Tempo carries base64 ids
            return base64.b64encode(bytes.fromhex(hex_id)).decode()

        batches = []
        for service in sorted({s.service for s in spans}):
            batches.append({
                "resource": {"attributes": [{"key": "service.name",
                                             "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "fake"}, "spans": [{
                    "traceId": b64(s.trace_id), "spanId": b64(s.span_id),
                    **({"parentSpanId": b64(s.parent_id)} if s.parent_id else {}),
                    "name": s.name, "kind": "SPAN_KIND_SERVER",
                    "startTimeUnixNano": str(int(s.start * 1e9)),
                    "endTimeUnixNano": str(int(s.start * 1e9) + 1000),
                    "attributes": [{"key": k, "value": {"stringValue": str(v)}}
                                   for k, v in s.attributes.items()],
                    "status": {"code": "STATUS_CODE_ERROR"} if s.error else {},
                } for s in spans if s.service == service]}]})
        return {"batches": batches}

    def zipkin(self, spans: list[FakeSpan]) -> list[dict[str, Any]]:
        return [{"traceId": s.trace_id, "id": s.span_id,
                 **({"parentId": s.parent_id} if s.parent_id else {}), "name": s.name,
                 "timestamp": int(s.start * 1e6), "duration": 1000, "kind": "SERVER",
                 "localEndpoint": {"serviceName": s.service},
                 "tags": {**{k: str(v) for k, v in s.attributes.items()},
                          **({"error": "500"} if s.error else {})}} for s in spans]

    def app(self, kind: str) -> Starlette:
        async def jaeger(request: Request) -> Response:
            spans = self.of(request.path_params["trace_id"])
            if not spans:
                return JSONResponse({"data": None, "total": 0, "limit": 0, "offset": 0,
                                     "errors": [{"code": 404, "msg": "trace not found"}]},
                                    status_code=404)
            return JSONResponse(self.jaeger(spans))

        async def tempo(request: Request) -> Response:
            if "application/json" not in request.headers.get("accept", ""):
                return Response(b"\x0a\x00", media_type="application/protobuf")
            spans = self.of(request.path_params["trace_id"])
            if not spans:
                return Response("trace not found", status_code=404)
            return JSONResponse(self.tempo(spans))

        async def zipkin(request: Request) -> Response:
            spans = self.of(request.path_params["trace_id"])
            if not spans:
                return Response(f"Trace not found: {request.path_params['trace_id']}",
                                status_code=404)
            return JSONResponse(self.zipkin(spans))

        routes = {"jaeger": Route("/api/traces/{trace_id}", jaeger),
                  "tempo": Route("/api/traces/{trace_id}", tempo),
                  "zipkin": Route("/api/v2/trace/{trace_id}", zipkin)}
        return Starlette(routes=[routes[kind]])
