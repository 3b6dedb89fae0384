"""VictoriaLogs: LogsQL over ``/select/logsql/query`` (answers one JSON object per line)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from core.errors import BackendError
from core.http import REQUEST_ERRORS, describe
from core.times import rfc3339, rfc3339_seconds
from gates.backends.types import REQUEST_ID_KEYS, TRACE_ID_KEYS, LogLine, log_line_from

_LOOKBACK_S = 3600.0  # without ``since``, look back one hour (as the Loki backend does)
_MAX_BODY = 20 * 1024 * 1024


def logsql_string(value: str) -> str:
    """A LogsQL quoted string (JSON escaping is what LogsQL's Go-style strings accept)."""
    return json.dumps(value, ensure_ascii=False)


def _any_field(keys: tuple[str, ...], value: str) -> str:
    """``value`` exactly in any of ``keys``, or as a phrase of the message (``_msg``)."""
    exact = " OR ".join(f"{logsql_string(k)}:={logsql_string(value)}" for k in keys)
    return f"({exact} OR {logsql_string(value)})"


class VictoriaLogs:
    """VictoriaLogs as a logs backend: one LogsQL query per look, oldest lines first."""

    kind = "victorialogs"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, logsql: str = "*",
                 token: str | None = None, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.logsql = logsql.strip() or "*"
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def query(self, *, trace_id: str | None = None, request_id: str | None = None,
              contains: str | None = None, limit: int = 1000) -> str:
        """The LogsQL query: the configured filter AND each given id, sorted, limited."""
        parts = [f"({self.logsql})"]
        if trace_id:
            parts.append(_any_field(TRACE_ID_KEYS, trace_id.lower()))
        if request_id:
            parts.append(_any_field(REQUEST_ID_KEYS, request_id))
        if contains:
            parts.append(logsql_string(contains))  # a phrase of the message (_msg)
        return " AND ".join(parts) + f" | sort by (_time) | limit {int(limit)}"

    def describe_query(self, **filters: str) -> str:
        return "LogsQL " + self.query(trace_id=filters.get("trace_id"),
                                      request_id=filters.get("request_id"),
                                      contains=filters.get("contains"))

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        now = time.time()
        start = since if since is not None else now - _LOOKBACK_S
        text = await self._select(self.query(trace_id=trace_id, request_id=request_id,
                                             contains=contains, limit=limit),
                                  start, now + 1)
        out: list[LogLine] = []
        for raw in text.splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise BackendError("victorialogs answered a malformed line (not JSON)") from None
            if not isinstance(record, dict):
                raise BackendError("victorialogs answered a malformed line (not an object)")
            out.append(_line(record))
        # An exact filter may have matched another id field or the message; keep lines whose
        # normalized id really matches (or that carry none: the id was in the message).
        return [line for line in out
                if (not trace_id or line.trace_id in (None, trace_id.lower()))
                and (not request_id or line.request_id in (None, request_id))]

    async def _select(self, query: str, start: float, end: float) -> str:
        url = f"{self.base_url}/select/logsql/query"
        try:
            resp = await self.client.post(url, data={
                "query": query, "start": rfc3339(start), "end": rfc3339(end)},
                headers=self._headers, timeout=self.timeout_s)
        except REQUEST_ERRORS as exc:
            raise BackendError(f"victorialogs unreachable at {self.base_url}: "
                               f"{describe(exc)}") from None
        if resp.status_code in (401, 403):
            raise BackendError(f"victorialogs refused the request ({resp.status_code}) at {url}")
        if len(resp.content) > _MAX_BODY:
            raise BackendError(f"victorialogs answered {len(resp.content)} bytes: too large "
                               "to be a sane answer")
        if resp.status_code >= 400:
            # VictoriaLogs explains a bad query in plain text: show its first line
            detail = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
            raise BackendError(f"victorialogs answered {resp.status_code}"
                               + (f": {detail}" if detail else ""))
        return resp.text


def _line(record: dict[str, Any]) -> LogLine:
    """One VictoriaLogs entry: ``_msg``, ``_time``, ``_stream`` plus every field."""
    fields = {k: v for k, v in record.items() if k not in ("_msg", "_time", "_stream",
                                                           "_stream_id")}
    body = record.get("_msg")
    text = body if isinstance(body, str) else ""
    try:
        inner = json.loads(text) if text.startswith("{") else None
    except ValueError:
        inner = None
    if isinstance(inner, dict):  # a JSON message kept whole: its keys are fields too
        return log_line_from({**fields, **inner}, ts=rfc3339_seconds(record.get("_time")))
    return log_line_from(fields, ts=rfc3339_seconds(record.get("_time")), body=text)
