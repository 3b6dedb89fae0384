"""Cloud Logging as a logs backend: ``entries.list`` through google-cloud-logging (REST).

A probe's lines are found by filter: the entry's ``trace`` field
(``projects/P/traces/ID``) or the trace id an app logs in ``jsonPayload``; a request id in
``labels``, ``jsonPayload`` or the ``httpRequest`` URL; always ``timestamp >= since``.
Entries become :class:`LogLine` s: ``jsonPayload`` fields, ``severity`` as the level, the
trace id out of ``trace``, the service from the payload or the monitored resource.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import google.auth.credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import logging as cloud_logging

from core.times import rfc3339
from gates.backends.gcloud.auth import GcloudAuth, call, endpoint
from gates.backends.types import LogLine, level_rank, log_line_from

_LOOKBACK_S = 3600.0  # without ``since``, look back one hour
# monitored-resource labels that name the service, by resource type (first found wins)
_RESOURCE_SERVICE = ("service_name", "container_name", "module_id", "function_name", "job",
                     "service")


def quote(value: str) -> str:
    """A Cloud Logging filter string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _TimedSession(AuthorizedSession):
    """An authorized session whose requests never wait longer than ``timeout_s`` (the
    library asks for 60 s)."""

    def __init__(self, credentials: google.auth.credentials.Credentials,
                 timeout_s: float) -> None:
        super().__init__(credentials,  # type: ignore[no-untyped-call]
                         refresh_timeout=timeout_s)
        self.timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self.timeout_s
        return super().request(*args, **kwargs)  # type: ignore[no-untyped-call]


class GcloudLogs:
    """A Google Cloud project's logs, read with ``entries.list``."""

    kind = "gcloud"

    def __init__(self, auth: GcloudAuth, *, url: str | None = None, log_filter: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.auth = auth
        self.url = endpoint(url)
        self.log_filter = log_filter
        self.timeout_s = timeout_s
        self._client: cloud_logging.Client | None = None
        self._project = "PROJECT"

    def _logging(self) -> cloud_logging.Client:
        if self._client is None:
            creds, self._project = self.auth.load()
            self._client = cloud_logging.Client(  # type: ignore[no-untyped-call]
                project=self._project, credentials=creds, _use_grpc=False,
                _http=_TimedSession(creds, self.timeout_s),
                client_options={"api_endpoint": self.url} if self.url else None)
        return self._client

    def close(self) -> None:
        """Close the client's HTTP session, if one was made."""
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    def query(self, *, trace_id: str | None = None, request_id: str | None = None,
              contains: str | None = None, since: float | None = None) -> str:
        """The filter for these lookups, ANDed with the configured one."""
        parts = [f"({self.log_filter})"] if self.log_filter else []
        if since is not None:
            parts.append(f'timestamp>="{rfc3339(since)}"')
        if trace_id:
            tid = quote(trace_id.lower())
            full = quote(f"projects/{self._project}/traces/{trace_id.lower()}")
            parts.append(f"(trace={full} OR trace={tid} OR jsonPayload.trace_id={tid} "
                         f"OR jsonPayload.traceId={tid})")
        if request_id:
            rid = quote(request_id)
            parts.append(f"(labels.request_id={rid} OR jsonPayload.request_id={rid} "
                         f"OR jsonPayload.requestId={rid} OR httpRequest.requestUrl:{rid})")
        if contains:
            parts.append(quote(contains))  # a bare string searches every field
        return " AND ".join(parts)

    def describe_query(self, **filters: str) -> str:
        return "Cloud Logging filter " + self.query(
            trace_id=filters.get("trace_id"), request_id=filters.get("request_id"),
            contains=filters.get("contains"))

    def _entries(self, filter_: str, page_size: int) -> Iterator[Any]:
        return iter(self._logging().list_entries(  # type: ignore[no-untyped-call]
            resource_names=[f"projects/{self._project}"], filter_=filter_,
            order_by=cloud_logging.ASCENDING, page_size=page_size))

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        start = since if since is not None else time.time() - _LOOKBACK_S

        def read() -> list[LogLine]:
            self._logging()  # the project id first: the trace filter names it
            filter_ = self.query(trace_id=trace_id, request_id=request_id, contains=contains,
                                 since=start)
            entries = itertools.islice(self._entries(filter_, min(limit, 1000)), limit)
            return [_line(entry) for entry in entries]

        lines = await call("Cloud Logging", read)
        # the filter's OR branches are wide; keep lines whose id field really matches
        return [line for line in lines
                if (not trace_id or line.trace_id in (None, trace_id.lower()))
                and (not request_id or line.request_id in (None, request_id))]

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every entry since ``since`` that the configured filter selects, a page at a time
        (``entries.list`` pages by token: nothing is skipped or read twice)."""
        def first() -> Iterator[Any]:
            self._logging()
            return self._entries(self.query(since=since), min(page_size, 1000))

        entries = await call("Cloud Logging", first)
        while True:
            page = await call("Cloud Logging", lambda: [
                _line(e) for e in itertools.islice(entries, page_size)])
            if page:
                yield page
            if len(page) < page_size:
                return
            await asyncio.sleep(0)


def _service(record: dict[str, Any], resource_labels: dict[str, Any]) -> str | None:
    for key in ("service", "service.name", "service_name", "app"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    for key in _RESOURCE_SERVICE:
        value = resource_labels.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _line(entry: Any) -> LogLine:
    """One entry of google-cloud-logging as a :class:`LogLine`."""
    payload = entry.payload
    resource = entry.resource
    resource_labels = dict(getattr(resource, "labels", None) or {})
    record: dict[str, Any] = dict(entry.labels or {})
    if isinstance(payload, dict):
        record.update(payload)
    elif payload is not None and not isinstance(payload, str):
        record["protoPayload"] = str(payload)
    extra = {"severity": entry.severity, "httpRequest": entry.http_request,
             "logName": entry.log_name, "insertId": entry.insert_id, "trace": entry.trace,
             "spanId": entry.span_id,
             "resource": {"type": getattr(resource, "type", None), "labels": resource_labels}}
    fields = {**record, **{k: v for k, v in extra.items() if v not in (None, "", {})
                           and k not in record}}
    ts = entry.timestamp.timestamp() if entry.timestamp is not None else None
    line = log_line_from(fields, service=_service(record, resource_labels), ts=ts,
                         body=payload if isinstance(payload, str) else None)
    trace = str(entry.trace or "").rsplit("/", 1)[-1].lower() or line.trace_id
    severity = entry.severity if level_rank(entry.severity) else line.level
    return replace(line, trace_id=trace or None, level=severity)
