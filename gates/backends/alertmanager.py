"""Alertmanager v2 API: alerts with their silenced / inhibited state, and silences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import BackendError
from gates.backends.base import HttpBackend


@dataclass(frozen=True)
class AmAlert:
    """An alert as Alertmanager holds it."""

    name: str
    state: str                       # "active" | "suppressed" | "unprocessed"
    labels: dict[str, str]
    silenced_by: list[str] = field(default_factory=list)
    inhibited_by: list[str] = field(default_factory=list)
    starts_at: str | None = None
    receivers: list[str] = field(default_factory=list)  # where the route sent it

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())
                         if k != "alertname")
        return f"{self.name}{{{shown}}} ({self.state})"


class AlertmanagerClient(HttpBackend):
    """Reads Alertmanager's v2 API."""

    kind = "alertmanager"

    async def alerts(self, alertname: str | None = None) -> list[AmAlert]:
        """Every alert Alertmanager holds (silenced and inhibited ones included)."""
        params: list[tuple[str, str]] = [("silenced", "true"), ("inhibited", "true"),
                                         ("active", "true"), ("unprocessed", "true")]
        if alertname:
            params.append(("filter", f'alertname="{alertname}"'))
        body = await self.get_json("/api/v2/alerts", params)
        if not isinstance(body, list):
            raise BackendError("alertmanager answered a malformed alerts list")
        try:
            return [AmAlert(a["labels"].get("alertname", "?"), a["status"]["state"],
                            dict(a["labels"]), list(a["status"].get("silencedBy") or []),
                            list(a["status"].get("inhibitedBy") or []), a.get("startsAt"),
                            [str(r["name"]) for r in a.get("receivers") or []])
                    for a in body]
        except (KeyError, TypeError, AttributeError):
            raise BackendError("alertmanager answered a malformed alert") from None

    async def silence(self, silence_id: str) -> dict[str, Any]:
        """One silence (its matchers, author and comment)."""
        body = await self.get_json(f"/api/v2/silence/{silence_id}")
        if not isinstance(body, dict):
            raise BackendError("alertmanager answered a malformed silence")
        return body
