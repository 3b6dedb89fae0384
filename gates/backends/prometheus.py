"""Prometheus HTTP API (also VictoriaMetrics, Thanos, Mimir): queries, alerts, rules, targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import BackendError
from gates.backends.base import HttpBackend


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

    async def query_at(self, promql: str, at: float) -> list[Sample]:
        """An instant query evaluated at unix time ``at``."""
        data = await self._data("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        try:
            return [Sample(dict(r["metric"]), float(r["value"][1])) for r in data["result"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise BackendError("prometheus answered a malformed query result") from None

    async def query_range(self, promql: str, start: float, end: float,
                          step: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query: (labels, [(time, value), ...]) per series."""
        data = await self._data("/api/v1/query_range", {
            "query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
            "step": f"{max(step, 0.001):.3f}"})
        try:
            return [(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]])
                    for r in data["result"]]
        except (KeyError, TypeError, ValueError):
            raise BackendError("prometheus answered a malformed range result") from None

    async def series(self, match: str, start: float | None = None) -> list[dict[str, str]]:
        """Label sets of the series matching a selector (``/api/v1/series``)."""
        params: dict[str, str] = {"match[]": match}
        if start is not None:
            params["start"] = f"{start:.3f}"
        data = await self._data("/api/v1/series", params)
        if not isinstance(data, list):
            raise BackendError("prometheus answered a malformed series list")
        return [dict(s) for s in data if isinstance(s, dict)]

    async def label_values(self, label: str = "__name__") -> list[str]:
        """Every value of a label (metric names for ``__name__``)."""
        data = await self._data(f"/api/v1/label/{label}/values")
        if not isinstance(data, list):
            raise BackendError("prometheus answered a malformed label values list")
        return [str(v) for v in data]

    async def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with their health (``up``/``down``/``unknown``)."""
        data = await self._data("/api/v1/targets", {"state": "active"})
        try:
            return [dict(t) for t in data["activeTargets"]]
        except (KeyError, TypeError):
            raise BackendError("prometheus answered a malformed targets list") from None
