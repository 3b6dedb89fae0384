"""Prometheus HTTP API (also VictoriaMetrics, Thanos, Mimir): queries, alerts, rules, targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gates.backends.base import HttpBackend
from readygate.errors import BackendError


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class ActiveAlert:
    name: str
    state: str  # "pending" | "firing"
    labels: dict[str, str]
    active_at: str | None

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())
                         if k not in ("alertname",))
        return f"{self.name}{{{shown}}} ({self.state})"


class PrometheusClient(HttpBackend):
    """Reads the Prometheus HTTP API."""

    kind = "prometheus"

    async def _data(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = await self.get_json(path, params)
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            raise BackendError(f"prometheus {path} failed: {err or 'unexpected answer'}")
        return body.get("data")

    async def query(self, promql: str) -> list[Sample]:
        """An instant query; a vector result as samples (scalars become one unlabelled sample)."""
        data = await self._data("/api/v1/query", {"query": promql})
        try:
            kind = data["resultType"]
            result = data["result"]
            if kind == "vector":
                return [Sample(dict(r["metric"]), float(r["value"][1])) for r in result]
            if kind in ("scalar", "string"):
                return [Sample({}, float(result[1]))]
        except (KeyError, TypeError, ValueError, IndexError):
            raise BackendError("prometheus answered a malformed query result") from None
        raise BackendError(f"prometheus query returned unsupported type {kind!r}")

    async def alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts."""
        data = await self._data("/api/v1/alerts")
        try:
            return [ActiveAlert(a["labels"].get("alertname", "?"), a["state"], dict(a["labels"]),
                                a.get("activeAt")) for a in data["alerts"]]
        except (KeyError, TypeError, AttributeError):
            raise BackendError("prometheus answered a malformed alerts list") from None

    async def rules(self) -> list[dict[str, Any]]:
        """Every alerting and recording rule, flattened out of their groups."""
        data = await self._data("/api/v1/rules")
        try:
            return [rule for group in data["groups"] for rule in group["rules"]]
        except (KeyError, TypeError):
            raise BackendError("prometheus answered a malformed rules list") from None
