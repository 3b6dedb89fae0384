"""Fakes of Google Cloud's observability APIs, in their documented wire formats.

REST (JSON over HTTP), one Starlette app for all of them (:class:`FakeGoogleApis`):
Cloud Logging ``POST /v2/entries:list`` (with a small evaluator of the filter language:
AND/OR/parentheses, ``=``, ``!=``, ``<``/``>``/``>=``/``<=``, ``:`` has, bare global
strings), Cloud Trace v1 ``GET /v1/projects/P/traces/ID``, Error Reporting v1beta1
``groupStats`` and ``events``, and Cloud Monitoring's Prometheus-compatible API
``/v1/projects/P/location/global/prometheus/api/v1/query``.

gRPC (:class:`FakeMonitoringGrpc`), because google-cloud-monitoring speaks only gRPC:
``AlertPolicyService.ListAlertPolicies``, ``NotificationChannelService.
ListNotificationChannels`` and ``MetricService.ListTimeSeries``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud import monitoring_v3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

PROJECT = "acme-prod"
POLICY = "API error rate > 5 %"


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _error(code: int, status: str, message: str) -> JSONResponse:
    """Google's JSON error body (google.rpc.Status as REST answers it)."""
    return JSONResponse({"error": {"code": code, "message": message, "status": status}},
                        status_code=code)


# -- the Cloud Logging filter language (the subset readygate and users write) -----------------

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|(>=|<=|!=|=|<|>|:)|([^\s()"=<>!:]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unparseable filter at {text[pos:pos + 20]!r}")
        pos = m.end()
        lpar, rpar, string, op, word = m.groups()
        out.append(("(", "(") if lpar else (")", ")") if rpar else
                   ("str", re.sub(r"\\(.)", r"\1", string)) if string is not None else
                   ("op", op) if op else ("word", word))
    return out


Pred = Callable[[dict[str, Any]], bool]


def _field(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(entry: dict[str, Any], path: str, op: str, want: str) -> bool:
    have = _field(entry, path)
    if have is None:
        return op == "!="
    if op == ":":
        return want.lower() in json.dumps(have).lower() if not isinstance(have, str) \
            else want.lower() in have.lower()
    a: Any = str(have)
    b: Any = want
    if path == "timestamp":
        a, b = _parse_time(a), _parse_time(b)
    return bool({"=": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b,
                 "<": a < b}[op])


def parse_filter(text: str) -> Pred:
    """A predicate over API-shaped log entries for a Cloud Logging filter."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def term() -> Pred:
        kind, value = take()
        if kind == "(":
            inner = disjunction()
            if take()[0] != ")":
                raise ValueError("unbalanced parentheses")
            return inner
        if kind == "str":  # a bare string: global search over every field
            return lambda e: value.lower() in json.dumps(e).lower()
        if kind == "word" and value == "NOT":
            negated = term()
            return lambda e: not negated(e)
        if kind != "word" or peek() is None or peek()[0] != "op":  # type: ignore[index]
            raise ValueError(f"expected a comparison at {value!r}")
        op = take()[1]
        rk, rv = take()
        if rk not in ("str", "word"):
            raise ValueError("expected a value")
        return lambda e: _compare(e, value, op, rv)

    def conjunction() -> Pred:
        parts = [term()]
        while (nxt := peek()) is not None and nxt[0] != ")" and nxt != ("word", "OR"):
            if nxt == ("word", "AND"):
                take()
            parts.append(term())
        return lambda e: all(p(e) for p in parts)

    def disjunction() -> Pred:
        parts = [conjunction()]
        while peek() == ("word", "OR"):
            take()
            parts.append(conjunction())
        return lambda e: any(p(e) for p in parts)

    pred = disjunction()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in filter: {tokens[pos:]}")
    return pred


# -- the REST APIs ------------------------------------------------------------------------------

@dataclass
class FakeGoogleApis:
    """Cloud Logging, Cloud Trace, Error Reporting and the PromQL API of one project.

    ``token``: the bearer token every request must carry (None: anonymous is fine).
    ``mode``: "ok", "garbage" (200 with a body no client can read) or "error" (500).
    """

    project: str = PROJECT
    token: str | None = None
    mode: str = "ok"
    entries: list[dict[str, Any]] = field(default_factory=list)
    traces: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # group id -> events
    # PromQL: query -> [(holds from, labels, value)]
    promql: dict[str, list[tuple[float, dict[str, str], float]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    page_limit: int = 1000  # the most entries one page answers (tests paging)
    # ingestion delay: an entry (by insertId) or a trace is listed only from this time on
    visible_at: dict[str, float] = field(default_factory=dict)

    def _visible(self, key: str) -> bool:
        return self.visible_at.get(key, 0.0) <= time.time()

    # -- seeding ---------------------------------------------------------------------------
    def log(self, *, at: float | None = None, json_payload: dict[str, Any] | None = None,
            text: str | None = None, trace_id: str | None = None, severity: str = "INFO",
            labels: dict[str, str] | None = None, http_request: dict[str, Any] | None = None,
            resource: dict[str, Any] | None = None,
            visible_at: float | None = None) -> dict[str, Any]:
        """Store an entry as ``entries.list`` answers it (listed from ``visible_at`` on)."""
        entry: dict[str, Any] = {
            "logName": f"projects/{self.project}/logs/run.googleapis.com%2Fstdout",
            "resource": resource or {"type": "cloud_run_revision",
                                     "labels": {"service_name": "api",
                                                "project_id": self.project}},
            "timestamp": rfc3339(at or time.time()), "receiveTimestamp": rfc3339(time.time()),
            "severity": severity, "insertId": f"id{len(self.entries)}"}
        if json_payload is not None:
            entry["jsonPayload"] = json_payload
        else:
            entry["textPayload"] = text or ""
        if trace_id:
            entry["trace"] = f"projects/{self.project}/traces/{trace_id}"
        if labels:
            entry["labels"] = labels
        if http_request:
            entry["httpRequest"] = http_request
        if visible_at is not None:
            self.visible_at[entry["insertId"]] = visible_at
        self.entries.append(entry)
        return entry

    def span(self, trace_id: str, span_id: int, name: str, *, service: str,
             parent: int | None = None, labels: dict[str, str] | None = None,
             at: float | None = None, visible_at: float | None = None) -> None:
        """Store a span of a trace as Cloud Trace v1 answers it (the trace is listed from
        ``visible_at`` on)."""
        if visible_at is not None:
            self.visible_at[trace_id] = visible_at
        start = at or time.time()
        span: dict[str, Any] = {
            "spanId": str(span_id), "kind": "RPC_SERVER", "name": name,
            "startTime": rfc3339(start), "endTime": rfc3339(start + 0.01),
            "labels": {"g.co/r/generic_task/job": service, **(labels or {})}}
        if parent is not None:
            span["parentSpanId"] = str(parent)
        self.traces.setdefault(trace_id, []).append(span)

    def error(self, message: str, *, group: str = "CLrp5e6", at: float | None = None,
              service: str = "api", url: str = "") -> None:
        """Store an error event as Error Reporting answers it."""
        self.groups.setdefault(group, []).append({
            "eventTime": rfc3339(at or time.time()), "message": message,
            "serviceContext": {"service": service, "version": "1"},
            "context": {"httpRequest": {"method": "POST", "url": url,
                                        "responseStatusCode": 500}}})

    def holds(self, query: str, *, since: float, value: float = 1.0,
              labels: dict[str, str] | None = None) -> None:
        """From ``since`` on, the PromQL ``query`` returns one series."""
        self.promql.setdefault(query, []).append((since, labels or {}, value))

    # -- serving ---------------------------------------------------------------------------
    def _refused(self, request: Request) -> Response | None:
        self.requests.append({"path": request.url.path,
                              "authorization": request.headers.get("authorization")})
        if self.mode == "error":
            return _error(500, "INTERNAL", "backend exploded")
        if self.mode == "garbage":
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=200,
                                     media_type="application/json")
        if self.token is not None and \
                request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                          "credentials.")
        return None

    def app(self) -> Starlette:
        async def entries_list(request: Request) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            body = await request.json()
            if f"projects/{self.project}" not in body.get("resourceNames", []):
                return _error(403, "PERMISSION_DENIED", "no access to those resources")
            try:
                pred = parse_filter(body.get("filter", ""))
            except ValueError as exc:
                return _error(400, "INVALID_ARGUMENT", f"Unparseable filter: {exc}")
            hits = sorted((e for e in self.entries if self._visible(e["insertId"]) and pred(e)),
                          key=lambda e: e["timestamp"])
            if body.get("orderBy") == "timestamp desc":
                hits.reverse()
            offset = int(body.get("pageToken") or 0)
            size = min(int(body.get("pageSize") or 50), self.page_limit)
            page = hits[offset:offset + size]
            answer: dict[str, Any] = {"entries": page}
            if offset + size < len(hits):
                answer["nextPageToken"] = str(offset + size)
            return JSONResponse(answer)

        async def get_trace(request: Request) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            p = request.path_params
            spans = self.traces.get(p["trace_id"])
            if p["project"] != self.project or spans is None or \
                    not self._visible(p["trace_id"]):
                return _error(404, "NOT_FOUND", "Requested entity was not found.")
            return JSONResponse({"projectId": self.project, "traceId": p["trace_id"],
                                 "spans": spans})

        def window(request: Request) -> float:
            # timeRange.period arrives as its enum number ($alt=json;enum-encoding=int)
            period = request.query_params.get("timeRange.period", "1")
            seconds = {"1": 3600, "PERIOD_1_HOUR": 3600, "2": 6 * 3600, "3": 86400,
                       "4": 7 * 86400, "5": 30 * 86400}.get(period, 3600)
            return time.time() - seconds

        async def group_stats(request: Request) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            start = window(request)
            stats = []
            for group_id, events in self.groups.items():
                times = [_parse_time(e["eventTime"]) for e in events]
                recent = [t for t in times if t >= start]
                if not recent:
                    continue
                stats.append({
                    "group": {"name": f"projects/{self.project}/groups/{group_id}",
                              "groupId": group_id, "resolutionStatus": "OPEN"},
                    "count": str(len(recent)), "firstSeenTime": rfc3339(min(times)),
                    "lastSeenTime": rfc3339(max(times)), "numAffectedServices": 1,
                    "representative": events[-1]})
            stats.sort(key=lambda s: str(s["lastSeenTime"]), reverse=True)  # LAST_SEEN_DESC
            return JSONResponse({"errorGroupStats": stats, "timeRangeBegin": rfc3339(start)})

        async def events(request: Request) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            start = window(request)
            group = request.query_params.get("groupId", "")
            rows = [e for e in self.groups.get(group, [])
                    if _parse_time(e["eventTime"]) >= start]
            rows.sort(key=lambda e: str(e["eventTime"]), reverse=True)
            return JSONResponse({"errorEvents": rows, "timeRangeBegin": rfc3339(start)})

        async def promql(request: Request) -> Response:
            if (refused := self._refused(request)) is not None:
                return refused
            if request.path_params["project"] != self.project:
                return _error(404, "NOT_FOUND", "project not found")
            query = request.query_params.get("query", "")
            at = float(request.query_params.get("time") or time.time())
            result = [{"metric": labels, "value": [at, f"{value:g}"]}
                      for since, labels, value in self.promql.get(query, []) if since <= at]
            return JSONResponse({"status": "success",
                                 "data": {"resultType": "vector", "result": result}})

        prom = "/v1/projects/{project}/location/global/prometheus/api/v1/query"
        return Starlette(routes=[
            Route("/v2/entries:list", entries_list, methods=["POST"]),
            Route("/v1/projects/{project}/traces/{trace_id}", get_trace),
            Route("/v1beta1/projects/{project}/groupStats", group_stats),
            Route("/v1beta1/projects/{project}/events", events),
            Route(prom, promql, methods=["GET", "POST"]),
        ])


# -- the gRPC API of Cloud Monitoring -----------------------------------------------------------

@dataclass
class FakeMonitoringGrpc:
    """Alert policies, notification channels and time-series headers of one project."""

    project: str = PROJECT
    policies: list[monitoring_v3.AlertPolicy] = field(default_factory=list)
    channels: list[monitoring_v3.NotificationChannel] = field(default_factory=list)
    # metric type -> unix time of its last point
    series: dict[str, float] = field(default_factory=dict)
    mode: str = "ok"   # "ok" | "garbage" (bytes that are no protobuf) | "error" (UNAVAILABLE)
    metadata: list[dict[str, str]] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)

    def policy(self, display_name: str, *, enabled: bool = True, channels: list[str] | None = None,
               documentation: str = "Runbook: https://runbooks.example/api-errors",
               metric_type: str = "logging.googleapis.com/user/api_errors",
               severity: str = "CRITICAL") -> monitoring_v3.AlertPolicy:
        """Add a policy with one metric-threshold condition."""
        number = len(self.policies) + 1
        policy = monitoring_v3.AlertPolicy(
            name=f"projects/{self.project}/alertPolicies/{number}", display_name=display_name,
            enabled=enabled, notification_channels=channels or [],
            documentation={"content": documentation, "mime_type": "text/markdown"},
            severity=severity, combiner="OR",
            conditions=[{"name": f"projects/{self.project}/alertPolicies/{number}/conditions/1",
                         "display_name": f"{display_name} condition",
                         "condition_threshold": {
                             "filter": f'metric.type="{metric_type}" AND '
                                       'resource.type="cloud_run_revision"',
                             "comparison": "COMPARISON_GT", "threshold_value": 0.05,
                             "duration": {"seconds": 60}}}])
        self.policies.append(policy)
        return policy

    def channel(self, display_name: str, *, kind: str = "webhook_tokenauth",
                enabled: bool = True) -> str:
        """Add a notification channel; its resource name."""
        name = f"projects/{self.project}/notificationChannels/{len(self.channels) + 1}"
        self.channels.append(monitoring_v3.NotificationChannel(
            name=name, type_=kind, display_name=display_name, enabled=enabled,
            labels={"url": "https://sink.example/webhooks/gcloud?auth_token=t0ken-123"}))
        return name

    def _unary(self, request_cls: Any, response_cls: Any,
               answer: Callable[[Any], Any]) -> grpc.RpcMethodHandler[Any, Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            if self.mode == "error":
                context.abort(grpc.StatusCode.UNAVAILABLE, "the service is unavailable")
            if request.name != f"projects/{self.project}":
                context.abort(grpc.StatusCode.NOT_FOUND, f"project {request.name} not found")
            return answer(request)

        def serialize(message: Any) -> bytes:
            if self.mode == "garbage":
                return b"\xff\xff\xff\xff not a protobuf"
            return bytes(response_cls.serialize(message))

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=request_cls.deserialize,
            response_serializer=serialize)

    def _time_series(self, request: Any) -> Any:
        self.filters.append(request.filter)
        wanted = re.search(r'metric\.type\s*=\s*"([^"]+)"', request.filter)
        start = request.interval.start_time.timestamp()
        found = [monitoring_v3.TimeSeries(metric={"type": kind},
                                          resource={"type": "cloud_run_revision"})
                 for kind, last in self.series.items()
                 if wanted and wanted.group(1) == kind and last >= start]
        return monitoring_v3.ListTimeSeriesResponse(time_series=found[:request.page_size or 1])

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        m = monitoring_v3
        return [
            grpc.method_handlers_generic_handler("google.monitoring.v3.AlertPolicyService", {
                "ListAlertPolicies": self._unary(
                    m.ListAlertPoliciesRequest, m.ListAlertPoliciesResponse,
                    lambda r: m.ListAlertPoliciesResponse(alert_policies=self.policies))}),
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.NotificationChannelService", {
                    "ListNotificationChannels": self._unary(
                        m.ListNotificationChannelsRequest, m.ListNotificationChannelsResponse,
                        lambda r: m.ListNotificationChannelsResponse(
                            notification_channels=self.channels))}),
            grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {
                "ListTimeSeries": self._unary(m.ListTimeSeriesRequest,
                                              m.ListTimeSeriesResponse, self._time_series)}),
        ]


@contextmanager
def serve_grpc(fake: FakeMonitoringGrpc) -> Iterator[str]:
    """Serve the fake on a free loopback port; yields ``http://127.0.0.1:PORT``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(fake.handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(5)


# -- the webhook notification channel -------------------------------------------------------

def incident(state: str = "open", *, started: float | None = None, ended: float | None = None,
             incident_id: str = "0.mtdi83m6w8ao", policy: str = POLICY) -> dict[str, Any]:
    """A webhook body as Cloud Monitoring's webhook channel posts it (version 1.2)."""
    return {"version": "1.2", "incident": {
        "incident_id": incident_id, "scoping_project_id": "acme-prod",
        "scoping_project_number": 12345, "url": "https://console.cloud.google.com/monitoring/"
        "alerting/incidents/0.mtdi83m6w8ao?project=acme-prod",
        "started_at": int(started if started is not None else time.time()),
        "ended_at": int(ended) if ended is not None else None, "state": state,
        "summary": "Error rate for api is above the threshold of 0.050 with a value of 0.310.",
        "apigee_url": "", "observed_value": "0.310", "threshold_value": "0.05",
        "resource": {"type": "cloud_run_revision",
                     "labels": {"project_id": "acme-prod", "service_name": "api"}},
        "resource_type_display_name": "Cloud Run Revision",
        "resource_id": "", "resource_display_name": "api",
        "resource_name": "acme-prod Cloud Run Revision labels {service_name=api}",
        "metric": {"type": "logging.googleapis.com/user/api_errors",
                   "displayName": "api_errors", "labels": {"code": "500"}},
        "metadata": {"system_labels": {}, "user_labels": {"team": "payments"}},
        "policy_name": policy, "policy_user_labels": {"tier": "1"},
        "documentation": {"content": "Runbook: https://runbooks.example/api-errors",
                          "mime_type": "text/markdown"},
        "condition": {"name": "projects/acme-prod/alertPolicies/1/conditions/2",
                      "displayName": "error ratio"},
        "condition_name": "error ratio", "severity": "Critical"}}
