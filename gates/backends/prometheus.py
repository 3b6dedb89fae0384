"""Prometheus HTTP API (also VictoriaMetrics, Thanos, Mimir): queries, alerts, rules, targets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import BackendError
from gates.backends.base import HttpBackend
from gates.backends.types import ActiveAlert

__all__ = ["ActiveAlert", "AlertingRule", "PrometheusClient", "Sample"]


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class AlertingRule:
    """An alerting rule as Prometheus loaded it (``/api/v1/rules``), with its active alerts."""

    name: str
    query: str
    for_s: float
    keep_firing_for_s: float
    labels: dict[str, str]
    health: str | None
    last_error: str | None
    group: str
    interval_s: float | None          # the group's evaluation interval
    alerts: list[ActiveAlert] = field(default_factory=list)

    def expr(self, limit: int = 200) -> str:
        """The expression on one line, cut at ``limit`` characters."""
        flat = " ".join(self.query.split())
        return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def _alert(a: dict[str, Any]) -> ActiveAlert:
    labels = {str(k): str(v) for k, v in dict(a["labels"]).items()}
    return ActiveAlert(labels.get("alertname", "?"), str(a["state"]), labels, a.get("activeAt"),
                       a.get("keepFiringSince"))


def _samples(data: Any) -> list[Sample]:
    """An instant query's vector as samples (a scalar becomes one unlabelled sample)."""
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


STALE_ANSWER_S = 5.0
"""An instant query answered as evaluated more than this before it was asked (engine clock
allowed for) came from a cache, not from the engine: not evidence."""


def _evaluated_at(data: Any) -> float | None:
    """The evaluation time an instant query's answer states (None for an empty vector)."""
    try:
        result = data["result"]
        stamp = result[0]["value"][0] if data["resultType"] == "vector" else result[0]
        return float(stamp)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


class PrometheusClient(HttpBackend):
    """Reads the Prometheus HTTP API."""

    kind = "prometheus"
    engine_offset_s: float | None = None
    """The engine's clock minus readygate's, once the run's clock look measured it
    (gates.backends.clock); until then stale answers are not told apart."""

    async def _data(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = await self.get_json(path, params)
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            raise BackendError(f"prometheus {path} failed: {err or 'unexpected answer'}")
        return body.get("data")

    async def evaluation_time(self) -> float | None:
        """When the engine says it evaluates an instant query asked now: the answer's own
        timestamp (not ``time()``'s value, which VictoriaMetrics takes 30 s back by its
        ``-search.latencyOffset``); ``None`` when the answer states none."""
        return _evaluated_at(await self._data("/api/v1/query", {"query": "time()"}))

    async def query(self, promql: str) -> list[Sample]:
        """An instant query evaluated now; a vector result as samples (scalars become one
        unlabelled sample). An answer evaluated well before it was asked (a cache in
        between) is a :class:`BackendError`: the check could not look at the present."""
        asked = time.time()
        data = await self._data("/api/v1/query", {"query": promql})
        evaluated = _evaluated_at(data)
        if self.engine_offset_s is not None and evaluated is not None:
            age = asked + self.engine_offset_s - evaluated
            if age > STALE_ANSWER_S:
                raise BackendError(
                    f"prometheus at {self.base_url} answered {promql!r} as evaluated "
                    f"{age:.0f}s before it was asked: a cache between readygate and the "
                    "engine? A stale answer is not evidence")
        return _samples(data)

    async def alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts."""
        data = await self._data("/api/v1/alerts")
        try:
            return [_alert(a) for a in data["alerts"]]
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BackendError("prometheus answered a malformed alerts list") from None

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        """Whether ``ALERTS`` shows the alert firing at any moment from ``since`` to now."""
        import time
        matchers = ",".join([f'alertname="{alertname}"', 'alertstate="firing"',
                             *(f'{k}="{v}"' for k, v in sorted(labels.items()))])
        now = time.time()
        window_ms = max(1, int((now - since) * 1000))
        return bool(await self.query_at(f"max_over_time(ALERTS{{{matchers}}}[{window_ms}ms])",
                                        now))

    async def rules(self) -> list[dict[str, Any]]:
        """Every alerting and recording rule, flattened out of their groups."""
        data = await self._data("/api/v1/rules")
        try:
            return [rule for group in data["groups"] for rule in group["rules"]]
        except (KeyError, TypeError):
            raise BackendError("prometheus answered a malformed rules list") from None

    async def alerting_rules(self) -> list[AlertingRule]:
        """Every alerting rule with its expression, ``for``, group interval and alerts."""
        data = await self._data("/api/v1/rules", {"type": "alert"})
        try:
            out = []
            for group in data["groups"]:
                interval = group.get("interval")
                for r in group["rules"]:
                    if r.get("type") != "alerting":
                        continue
                    out.append(AlertingRule(
                        name=str(r["name"]), query=str(r.get("query") or ""),
                        for_s=float(r.get("duration") or 0),
                        keep_firing_for_s=float(r.get("keepFiringFor") or 0),
                        labels={str(k): str(v) for k, v in dict(r.get("labels") or {}).items()},
                        health=r.get("health"), last_error=r.get("lastError"),
                        group=str(group.get("name")),
                        interval_s=float(interval) if interval else None,
                        alerts=[_alert(a) for a in r.get("alerts") or []]))
            return out
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackendError("prometheus answered a malformed rules list") from None

    async def query_at(self, promql: str, at: float) -> list[Sample]:
        """An instant query evaluated at unix time ``at``."""
        return _samples(await self._data("/api/v1/query",
                                          {"query": promql, "time": f"{at:.3f}"}))

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

    async def alertmanagers(self) -> list[str]:
        """The URLs of the Alertmanagers Prometheus sends alerts to."""
        data = await self._data("/api/v1/alertmanagers")
        try:
            return [str(a["url"]) for a in data["activeAlertmanagers"]]
        except (KeyError, TypeError):
            raise BackendError("prometheus answered a malformed alertmanagers list") from None

    async def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with their health (``up``/``down``/``unknown``)."""
        data = await self._data("/api/v1/targets", {"state": "active"})
        try:
            return [dict(t) for t in data["activeTargets"]]
        except (KeyError, TypeError):
            raise BackendError("prometheus answered a malformed targets list") from None
