"""Cloud Trace as a traces backend: one trace by id (v1 ``projects.traces.get``, REST).

Cloud Trace v1 keeps a span's attributes as string labels; the service comes from the
OpenTelemetry ``service.name`` label or the ``g.co/...`` labels Google's exporters write
(App Engine module, generic task job, Cloud Run service, container name).
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import trace_v1

from gates.backends.gcloud.auth import RestApi, call
from gates.backends.types import Span

SERVICE_LABELS = ("service.name", "g.co/gae/app/module", "g.co/r/generic_task/job",
                  "g.co/r/cloud_run_revision/service_name", "g.co/r/k8s_container/container_name",
                  "g.co/r/gae_app/module_id", "g.co/r/cloud_function/function_name")
_ERROR_LABELS = ("/error/message", "/error/name", "error.message", "exception.type")


def _service(labels: dict[str, str]) -> str:
    for key in SERVICE_LABELS:
        if labels.get(key):
            return labels[key]
    return next((v for k, v in sorted(labels.items())
                 if k.startswith("g.co/r/") and k.endswith(("/service_name", "/job")) and v),
                "?")


def _error(labels: dict[str, str]) -> bool:
    if any(labels.get(k) for k in _ERROR_LABELS):
        return True
    if str(labels.get("otel.status_code", "")).upper() == "ERROR":
        return True
    status = labels.get("/http/status_code") or labels.get("http.status_code") or ""
    return status.isdigit() and int(status) >= 500


class GcloudTraces(RestApi[trace_v1.TraceServiceClient]):
    """A Google Cloud project's traces."""

    client_class = trace_v1.TraceServiceClient

    async def trace(self, trace_id: str) -> list[Span]:
        def get() -> Any:
            client = self._api()
            try:
                # no retries: the check polls, and a retry would outlast its deadline
                return client.get_trace(project_id=self._project, trace_id=trace_id.lower(),
                                        retry=None, timeout=self.timeout_s)
            except api_exceptions.NotFound:
                return None  # not stored yet: no data (a fail at the deadline), not an error

        found = await call("Cloud Trace", get)
        if found is None:
            return []
        return await call("Cloud Trace", lambda: [_span(found.trace_id or trace_id, s)
                                                 for s in found.spans])

    def link(self, trace_id: str) -> str | None:
        project = self._project or "PROJECT"
        return f"https://console.cloud.google.com/traces/list?tid={trace_id}&project={project}"


def _span(trace_id: str, s: Any) -> Span:
    labels = {str(k): str(v) for k, v in dict(s.labels).items()}
    return Span(trace_id=str(trace_id).lower(), span_id=f"{int(s.span_id):016x}",
                name=str(s.name), service=_service(labels),
                parent_id=f"{int(s.parent_span_id):016x}" if s.parent_span_id else None,
                error=_error(labels), attributes=labels,
                start=s.start_time.timestamp() if s.start_time else None)
