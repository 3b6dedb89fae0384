"""Loki: LogQL line filters over ``/loki/api/v1/query_range``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from core.errors import BackendError
from gates.backends.base import HttpBackend
from gates.backends.types import IncompleteWindow, LogLine, log_line_from

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

    async def _entries(self, query: str, start_ns: int, end_ns: int,
                       limit: int) -> list[tuple[int, LogLine]]:
        """(timestamp in ns, line) of one ``query_range`` call, oldest first."""
        body = await self.get_json("/loki/api/v1/query_range", {
            "query": query, "start": str(start_ns), "end": str(end_ns),
            "limit": str(limit), "direction": "forward"})
        try:
            if body["status"] != "success" or body["data"]["resultType"] != "streams":
                raise BackendError(f"loki answered {body.get('status')} "
                                   f"{body['data'].get('resultType')}")
            out = [(int(value[0]), _line(stream.get("stream") or {}, value))
                   for stream in body["data"]["result"] for value in stream["values"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise BackendError("loki answered a malformed streams result") from None
        return sorted(out, key=lambda entry: entry[0])

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        now = time.time()
        start = since if since is not None else now - _LOOKBACK_S
        entries = await self._entries(
            self.logql(trace_id=trace_id, request_id=request_id, contains=contains),
            int(start * 1e9), int((now + 1) * 1e9), limit)
        # A line filter matches anywhere in the line; keep lines whose id field really matches.
        return [line for _, line in entries
                if (not trace_id or line.trace_id in (None, trace_id.lower()))
                and (not request_id or line.request_id in (None, request_id))]

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every line of the selector's streams since ``since``, a page at a time."""
        end_ns = int((time.time() + 1) * 1e9)
        cursor, seen = int(since * 1e9), 0  # entries at exactly ``cursor`` already yielded
        while True:
            entries = await self._entries(self.selector, cursor, end_ns, page_size)
            skip = 0
            while skip < min(seen, len(entries)) and entries[skip][0] == cursor:
                skip += 1
            if entries[skip:]:
                yield [line for _, line in entries[skip:]]
            if len(entries) < page_size:
                return
            last = entries[-1][0]
            if last == cursor:
                raise IncompleteWindow(f"more than {page_size} log lines share one timestamp: "
                                       "Loki cannot page past them")
            cursor, seen = last, sum(1 for at, _ in entries if at == last)


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
