"""Fake Loki (``/loki/api/v1/query_range``) and Elasticsearch/OpenSearch (``_search``)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

_FILTER = re.compile(r'\|=\s*(`[^`]*`|"(?:[^"\\]|\\.)*")')


@dataclass
class FakeLoki:
    """Streams of (ns timestamp, line); answers LogQL ``{selector} |= "x"`` queries."""

    streams: list[tuple[dict[str, str], list[tuple[int, str]]]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def push(self, labels: dict[str, str], line: str | dict[str, Any],
             ts: float | None = None) -> None:
        """Store one line (a dict is stored as a JSON line, as apps log)."""
        text = json.dumps(line) if isinstance(line, dict) else line
        entry = (int((ts or time.time()) * 1e9), text)
        for stream_labels, values in self.streams:
            if stream_labels == labels:
                values.append(entry)
                return
        self.streams.append((labels, [entry]))

    def app(self) -> Starlette:
        async def query_range(request: Request) -> Any:
            q = request.query_params
            query = q.get("query", "")
            self.queries.append(query)
            if not query.startswith("{") or "}" not in query:
                return PlainTextResponse("parse error : syntax error: unexpected IDENTIFIER",
                                         status_code=400)
            needles = [m[1:-1] if m.startswith("`") else json.loads(m)
                       for m in _FILTER.findall(query)]
            start, end = int(q.get("start", 0)), int(q.get("end", 2**63 - 1))
            limit = int(q.get("limit", 100))
            result = []
            for labels, values in self.streams:
                hits = [[str(ts), line] for ts, line in values
                        if start <= ts <= end and all(n in line for n in needles)]
                if hits:
                    result.append({"stream": labels, "values": hits[:limit]})
            return JSONResponse({"status": "success", "data": {
                "resultType": "streams", "result": result,
                "stats": {"summary": {"totalLinesProcessed": sum(len(v) for _, v in
                                                                 self.streams)}}}})

        return Starlette(routes=[Route("/loki/api/v1/query_range", query_range)])


def _field(doc: dict[str, Any], path: str) -> Any:
    if path in doc:
        return doc[path]
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class FakeElasticsearch:
    """Documents per index; answers ``bool.filter`` of ``multi_match`` phrase and ``range``."""

    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    token: str | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def index(self, index: str, doc: dict[str, Any]) -> None:
        self.docs.append((index, doc))

    def _matches(self, doc: dict[str, Any], clause: dict[str, Any]) -> bool:
        if "multi_match" in clause:
            mm = clause["multi_match"]
            value = str(mm["query"])
            if mm.get("fields") == ["*"]:
                return value in json.dumps(doc)
            return any(value in str(_field(doc, f)) for f in mm.get("fields", [])
                       if _field(doc, f) is not None)
        if "range" in clause:
            (name, cond), = clause["range"].items()
            from datetime import datetime
            raw = _field(doc, name)
            if raw is None:
                return False
            ms = datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp() * 1000
            return ms >= float(cond.get("gte", float("-inf")))
        raise ValueError(f"fake does not implement {list(clause)}")

    def app(self) -> Starlette:
        async def search(request: Request) -> Any:
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": {"type": "security_exception", "reason":
                                     "missing authentication credentials"}, "status": 401},
                                    status_code=401)
            body = await request.json()
            self.bodies.append(body)
            pattern = re.compile(request.path_params["index"].replace("*", ".*"))
            filters = body.get("query", {}).get("bool", {}).get("filter", [])
            try:
                hits = [(i, d) for i, d in self.docs if pattern.fullmatch(i)
                        and all(self._matches(d, c) for c in filters)]
            except ValueError as exc:
                return JSONResponse({"error": {"type": "parsing_exception",
                                               "reason": str(exc)}, "status": 400},
                                    status_code=400)
            hits = hits[:body.get("size", 10)]
            return JSONResponse({"took": 1, "timed_out": False, "hits": {
                "total": {"value": len(hits), "relation": "eq"}, "max_score": None,
                "hits": [{"_index": i, "_id": str(n), "_score": None, "_source": d}
                         for n, (i, d) in enumerate(hits)]}})

        return Starlette(routes=[Route("/{index}/_search", search, methods=["POST", "GET"])])
