"""Elasticsearch / OpenSearch: ``POST /{index}/_search`` with a bool filter query."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from core.errors import BackendError
from core.times import epoch_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import (
    REQUEST_ID_KEYS,
    TRACE_ID_KEYS,
    IncompleteWindow,
    LogLine,
    log_line_from,
)


def _phrase(value: str, fields: list[str]) -> dict[str, Any]:
    return {"multi_match": {"query": value, "type": "phrase", "fields": fields,
                            "lenient": True}}


class ElasticsearchLogs(HttpBackend):
    """Elasticsearch or OpenSearch (same search API) as a logs backend."""

    kind = "elasticsearch"

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, index: str,
                 token: str | None = None, timeout_s: float = 5.0, kind: str = "elasticsearch",
                 ) -> None:
        super().__init__(base_url, client, token=token, timeout_s=timeout_s)
        self.index = index
        self.kind = kind

    def query(self, *, trace_id: str | None = None, request_id: str | None = None,
              contains: str | None = None, since: float | None = None,
              limit: int = 1000) -> dict[str, Any]:
        """The ``_search`` request body."""
        filters: list[dict[str, Any]] = []
        if trace_id:
            filters.append(_phrase(trace_id, list(TRACE_ID_KEYS)))
        if request_id:
            filters.append(_phrase(request_id, list(REQUEST_ID_KEYS)))
        if contains:
            filters.append(_phrase(contains, ["*"]))
        if since is not None:
            filters.append({"range": {"@timestamp": {"gte": int(since * 1000),
                                                     "format": "epoch_millis"}}})
        return {"size": limit, "query": {"bool": {"filter": filters}},
                "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}]}

    def describe_query(self, **filters: str) -> str:
        return f"POST /{self.index}/_search {json.dumps(self.query(**filters))}"  # type: ignore[arg-type]

    async def _search(self, query: dict[str, Any]) -> tuple[list[LogLine], Any]:
        """The lines of one ``_search`` and the last hit's ``sort`` values (to page on)."""
        body = await self.request_json("POST", f"/{self.index}/_search", json=query)
        try:
            hits = body["hits"]["hits"]
            sources = [h["_source"] for h in hits if isinstance(h.get("_source"), dict)]
            after = hits[-1].get("sort") if hits else None
        except (KeyError, TypeError, AttributeError):
            raise BackendError(f"{self.kind} answered a malformed search result") from None
        return [log_line_from(s, ts=epoch_seconds(s.get("@timestamp") or s.get("timestamp")))
                for s in sources], after

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        found, _ = await self._search(self.query(trace_id=trace_id, request_id=request_id,
                                                 contains=contains, since=since, limit=limit))
        return found

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every document with an ``@timestamp`` at or after ``since``, a page at a time
        (``search_after`` on the timestamp and the index order)."""
        query = self.query(since=since, limit=page_size)
        query["sort"] = [*query["sort"], {"_doc": "asc"}]
        while True:
            found, after = await self._search(query)
            if found:
                yield found
            if len(found) < page_size:
                return
            if not isinstance(after, list):
                raise IncompleteWindow(f"{self.kind} answered a full page without sort "
                                       "values: cannot page on")
            query = {**query, "search_after": after}
