"""A fake Datadog API: Logs Search v2 (``POST /api/v2/logs/events/search``) and monitors
(``GET /api/v1/monitor``), speaking the documented request and answer shapes.

Both require the ``DD-API-KEY`` and ``DD-APPLICATION-KEY`` headers, as Datadog does. The log
search understands the query syntax readygate sends: ``key:"value"`` (reserved attributes
and tags), ``@attribute.path:"value"``, quoted phrases (the message), ``AND``/``OR``/
parentheses; ``filter.from``/``to`` (ISO 8601, ``now``), ``sort`` and cursor paging.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|@?[\w.\-]+:(?:"(?:[^"\\]|\\.)*"|[^\s()]+)'
                    r'|AND\b|OR\b|[^\s()]+)')


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _unquote(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _path(data: Any, path: str) -> Any:
    if isinstance(data, dict) and path in data:
        return data[path]
    head, _, rest = path.partition(".")
    if rest and isinstance(data, dict) and isinstance(data.get(head), dict):
        return _path(data[head], rest)
    return None


class _Query:
    """A tiny evaluator of Datadog's log search syntax (what readygate sends)."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t.strip()]
        self.pos = 0

    def parse(self) -> Any:
        if not self.tokens or self.tokens == ["*"]:
            return lambda log: True
        expr = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]!r}")
        return expr

    def _or(self) -> Any:
        terms = [self._and()]
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "OR":
            self.pos += 1
            terms.append(self._and())
        return lambda log: any(t(log) for t in terms)

    def _and(self) -> Any:
        terms = [self._term()]
        while self.pos < len(self.tokens) and self.tokens[self.pos] not in ("OR", ")"):
            if self.tokens[self.pos] == "AND":
                self.pos += 1
            terms.append(self._term())
        return lambda log: all(t(log) for t in terms)

    def _term(self) -> Any:
        if self.pos >= len(self.tokens):
            raise ValueError("query ends early")
        tok = self.tokens[self.pos]
        self.pos += 1
        if tok == "(":
            inner = self._or()
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                raise ValueError("unbalanced parentheses")
            self.pos += 1
            return inner
        if tok.startswith('"'):
            phrase = _unquote(tok)
            return lambda log: phrase in str(log["attributes"].get("message", ""))
        key, colon, value = tok.partition(":")
        if not colon:
            return lambda log: tok in str(log["attributes"].get("message", ""))
        want = _unquote(value)
        if key.startswith("@"):
            return lambda log: str(_path(log["attributes"].get("attributes", {}),
                                         key[1:])) == want
        def reserved(log: dict[str, Any]) -> bool:
            attrs = log["attributes"]
            if key in ("service", "host", "status", "source"):
                return str(attrs.get(key)) == want
            if key == "trace_id":
                return str(_path(attrs.get("attributes", {}), "dd.trace_id")) == want or \
                    str(attrs.get("attributes", {}).get("trace_id")) == want
            return f"{key}:{want}" in attrs.get("tags", [])
        return reserved


def _time(value: Any, now: float) -> float:
    if value in (None, "now"):
        return now
    if isinstance(value, int | float) or str(value).isdigit():
        return float(value) / 1000.0
    m = re.fullmatch(r"now-(\d+)([smhd])", str(value))
    if m:
        return now - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass
class FakeDatadog:
    """Logs and monitors of one organisation; ``mode`` breaks it ("garbage", "500", "slow")."""

    api_key: str
    app_key: str
    logs: list[dict[str, Any]] = field(default_factory=list)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def log(self, message: str, *, at: float | None = None, service: str = "web",
            status: str = "info", tags: list[str] | None = None,
            **attributes: Any) -> dict[str, Any]:
        """Store a log as Datadog indexes it (custom attributes under ``attributes``)."""
        entry = {"id": f"AQAAAY{len(self.logs):010d}", "type": "log", "attributes": {
            "timestamp": iso(at or time.time()), "message": message, "service": service,
            "status": status, "host": "web-1", "tags": tags or [f"service:{service}"],
            "attributes": attributes}}
        self.logs.append(entry)
        return entry

    def monitor(self, name: str, *, tags: list[str] | None = None,
                groups: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """A monitor with its group states (``{"host:web-1": {"status": "Alert", ...}}``)."""
        number = 1000 + len(self.monitors)
        worst = next((s for s in ("Alert", "Warn", "No Data")
                      if any(g.get("status") == s for g in (groups or {}).values())), "OK")
        monitor = {"id": number, "name": name, "type": "metric alert",
                   "query": "avg(last_5m):avg:web.errors{*} by {host} > 0.05",
                   "message": "@webhook-readygate", "tags": tags or [], "multi": True,
                   "overall_state": worst, "overall_state_modified": iso(time.time()),
                   "created": iso(time.time() - 86400), "modified": iso(time.time() - 86400),
                   "options": {}, "state": {"groups": {
                       name_: {"name": name_, **g} for name_, g in (groups or {}).items()}}}
        self.monitors.append(monitor)
        return monitor

    def _refused(self, request: Request) -> Response | None:
        self.requests.append({"path": request.url.path, "headers": dict(request.headers)})
        if request.headers.get("dd-api-key") != self.api_key or \
                request.headers.get("dd-application-key") != self.app_key:
            return JSONResponse({"errors": ["Forbidden"]}, status_code=403)
        if self.mode == "garbage":
            return PlainTextResponse("<html>upstream gone</html>")
        if self.mode == "500":
            return JSONResponse({"errors": ["Internal Server Error"]}, status_code=500)
        return None

    async def _slow(self) -> None:
        if self.mode == "slow":  # answers after the client has given up
            await asyncio.sleep(2)

    def app(self) -> Starlette:
        async def search(request: Request) -> Response:
            await self._slow()
            if (refused := self._refused(request)) is not None:
                return refused
            body = await request.json()
            flt = body.get("filter") or {}
            now = time.time()
            try:
                match = _Query(str(flt.get("query") or "*")).parse()
            except ValueError as exc:
                return JSONResponse({"errors": [f"invalid query: {exc}"]}, status_code=400)
            start, end = _time(flt.get("from", "now-15m"), now), _time(flt.get("to"), now)
            hits = [log for log in self.logs if match(log) and start <= _time(
                log["attributes"]["timestamp"], now) <= end]
            hits.sort(key=lambda log: log["attributes"]["timestamp"],
                      reverse=body.get("sort") == "-timestamp")
            page = body.get("page") or {}
            limit = int(page.get("limit") or 10)
            if limit > 1000:
                return JSONResponse({"errors": ["page[limit] must be <= 1000"]}, 400)
            offset = int(base64.b64decode(page["cursor"])) if page.get("cursor") else 0
            chunk = hits[offset:offset + limit]
            more = offset + limit < len(hits)
            meta: dict[str, Any] = {"elapsed": 3, "request_id": "pddv1", "status": "done"}
            if more:
                meta["page"] = {"after": base64.b64encode(str(offset + limit).encode()).decode()}
            return JSONResponse({"data": chunk, "meta": meta, **(
                {"links": {"next": f"{request.base_url}api/v2/logs/events"}} if more else {})})

        async def monitors(request: Request) -> Response:
            await self._slow()
            if (refused := self._refused(request)) is not None:
                return refused
            params = request.query_params
            wanted = [t for t in (params.get("monitor_tags") or "").split(",") if t]
            found = [m for m in self.monitors if all(t in m["tags"] for t in wanted)]
            if params.get("name"):
                found = [m for m in found if params["name"] in m["name"]]
            if "page" in params:
                size = int(params.get("page_size") or 100)
                start = int(params["page"]) * size
                found = found[start:start + size]
            if not params.get("group_states"):
                found = [{k: v for k, v in m.items() if k != "state"} for m in found]
            return JSONResponse(found)

        return Starlette(routes=[
            Route("/api/v2/logs/events/search", search, methods=["POST"]),
            Route("/api/v1/monitor", monitors, methods=["GET"])])
