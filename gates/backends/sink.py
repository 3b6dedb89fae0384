"""readygate's embedded sink: traces, logs, errors and Alertmanager notifications."""

from __future__ import annotations

from typing import Any

from gates.backends.base import HttpBackend
from readygate.errors import BackendError


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise BackendError(f"sink answered without a '{key}' list")
    return [item for item in body[key] if isinstance(item, dict)]


class SinkClient(HttpBackend):
    """Queries the embedded sink's JSON API."""

    kind = "sink"

    async def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        return _list(await self.get_json(f"/api/traces/{trace_id}"), "spans")

    async def logs(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/logs", params), "logs")

    async def errors(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/errors", params), "errors")

    async def notifications(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/notifications", params), "notifications")
