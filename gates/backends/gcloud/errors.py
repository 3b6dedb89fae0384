"""Error Reporting as an errors backend: group stats, then each recent group's events (REST).

Error Reporting events carry no trace field: an event is tied to the probe when its
message (the logged error and stack trace) or its ``context.httpRequest`` (URL, referrer)
or ``context.user`` contains the trace id or the request id. Log the ids with the error.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from google.cloud import errorreporting_v1beta1 as er

from gates.backends.gcloud.auth import RestApi, call
from gates.backends.types import ErrorEvent

_LOOKBACK_S = 3600.0
MAX_GROUPS = 20      # recent groups read per look (most recently seen first)
MAX_EVENTS = 200     # events read per group per look
_PERIODS = ((3600, er.QueryTimeRange.Period.PERIOD_1_HOUR),
            (6 * 3600, er.QueryTimeRange.Period.PERIOD_6_HOURS),
            (86400, er.QueryTimeRange.Period.PERIOD_1_DAY),
            (7 * 86400, er.QueryTimeRange.Period.PERIOD_1_WEEK))


def period_for(seconds: float) -> er.QueryTimeRange.Period:
    """The shortest query period (Error Reporting has five) that reaches ``seconds`` back."""
    return er.QueryTimeRange.Period(next((p for span, p in _PERIODS if seconds <= span),
                                         er.QueryTimeRange.Period.PERIOD_30_DAYS))


def _text(event: Any) -> str:
    ctx = event.context
    request = ctx.http_request
    return " ".join([event.message, request.url, request.referrer, ctx.user])


class GcloudErrors(RestApi[er.ErrorStatsServiceClient]):
    """A Google Cloud project's Error Reporting events."""

    client_class = er.ErrorStatsServiceClient

    def _read(self, start: float) -> list[ErrorEvent]:
        client = self._api()
        project = f"projects/{self._project}"
        time_range = {"period": period_for(time.time() - start)}
        stats = client.list_group_stats(
            request={"project_name": project, "time_range": time_range,
                     "order": er.ErrorGroupOrder.LAST_SEEN_DESC, "page_size": MAX_GROUPS},
            retry=None, timeout=self.timeout_s)
        recent = [g for g in itertools.islice(stats, MAX_GROUPS)
                  if g.last_seen_time is None or g.last_seen_time.timestamp() >= start - 1.0]
        out: list[ErrorEvent] = []
        for group in recent:
            group_id = group.group.group_id
            events = client.list_events(
                request={"project_name": project, "group_id": group_id,
                         "time_range": time_range, "page_size": 100},
                retry=None, timeout=self.timeout_s)
            for event in itertools.islice(events, MAX_EVENTS):
                at = event.event_time.timestamp() if event.event_time else None
                # Error Reporting's times come from the app: allow 1 s of clock skew
                if at is not None and at < start - 1.0:
                    continue
                out.append(_event(group_id, event, at))
        return out

    async def events(self, *, trace_id: str | None = None, request_id: str | None = None,
                     since: float | None = None) -> list[ErrorEvent]:
        start = since if since is not None else time.time() - _LOOKBACK_S
        found = await call("Error Reporting", lambda: self._read(start))
        out = []
        for event in found:
            text = str(event.raw.get("_text", "")).lower()
            if trace_id and trace_id.lower() not in text:
                continue
            if request_id and request_id.lower() not in text:
                continue
            out.append(ErrorEvent(
                event_id=event.event_id, message=event.message, received_at=event.received_at,
                trace_id=trace_id.lower() if trace_id else None, request_id=request_id,
                level="error", service=event.service,
                raw={k: v for k, v in event.raw.items() if k != "_text"}))
        return sorted(out, key=lambda e: e.received_at or 0)

    def link(self, event: ErrorEvent) -> str:
        """The event's error group in the Cloud console."""
        group = event.event_id.split("@", 1)[0]
        return (f"https://console.cloud.google.com/errors/detail/{group}"
                f"?project={self._project or 'PROJECT'}")


def _event(group_id: str, event: Any, at: float | None) -> ErrorEvent:
    raw = type(event).to_dict(event)
    raw["_text"] = _text(event)
    return ErrorEvent(event_id=f"{group_id}@{at if at is not None else '?'}",
                      message=str(event.message), trace_id=None, request_id=None,
                      received_at=at, level="error",
                      service=event.service_context.service or None, raw=raw)
