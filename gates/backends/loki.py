"""Loki: LogQL line filters over ``/loki/api/v1/query_range``."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from core.errors import BackendError
from gates.backends.base import HttpBackend
from gates.backends.types import LogLine, log_line_from

_LOOKBACK_S = 3600.0  # without ``since``, look back one hour (Loki's own default)


def logql_string(value: str) -> str:
    """A LogQL string literal: backticks when possible (no escaping), else quoted."""
    if "`" not in value:
        return f"`{value}`"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LokiLogs(HttpBackend):
    """Loki (or Grafana Cloud Logs) as a logs backend."""

    kind = "loki"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, selector: str,
                 token: str | None = None, timeout_s: float = 5.0) -> None:
        super().__init__(base_url, client, token=token, timeout_s=timeout_s)
        self.selector = selector

    def logql(self, **filters: str | None) -> str:
        """The stream selector followed by one ``|=`` line filter per given value."""
        return self.selector + "".join(f" |= {logql_string(v)}" for v in filters.values() if v)

    def describe_query(self, **filters: str) -> str:
        return f"LogQL {self.logql(**filters)}"

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        now = time.time()
        start = since if since is not None else now - _LOOKBACK_S
        body = await self.get_json("/loki/api/v1/query_range", {
            "query": self.logql(trace_id=trace_id, request_id=request_id, contains=contains),
            "start": str(int(start * 1e9)), "end": str(int((now + 1) * 1e9)),
            "limit": str(limit), "direction": "forward"})
        try:
            if body["status"] != "success" or body["data"]["resultType"] != "streams":
                raise BackendError(f"loki answered {body.get('status')} "
                                   f"{body['data'].get('resultType')}")
            out = [_line(stream.get("stream") or {}, value)
                   for stream in body["data"]["result"] for value in stream["values"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise BackendError("loki answered a malformed streams result") from None
        # A line filter matches anywhere in the line; keep lines whose id field really matches.
        out = [line for line in out
               if (not trace_id or line.trace_id in (None, trace_id.lower()))
               and (not request_id or line.request_id in (None, request_id))]
        return sorted(out, key=lambda line: line.ts or 0)


def _line(labels: dict[str, str], value: list[Any]) -> LogLine:
    ts_ns, text = value[0], value[1]
    metadata = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
    ts = int(ts_ns) / 1e9
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    service = labels.get("service_name") or labels.get("service") or labels.get("app") \
        or labels.get("job")
    if isinstance(record, dict):
        return log_line_from({**labels, **metadata, **record}, service=service, ts=ts)
    # logfmt or plain text: labels and structured metadata are the fields
    line = log_line_from({**labels, **metadata}, service=service, ts=ts, body=str(text))
    return line
