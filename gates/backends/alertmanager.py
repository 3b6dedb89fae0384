"""Alertmanager v2 API: alerts with their silenced / inhibited state, silences, receivers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from core.errors import BackendError
from gates.backends.base import HttpBackend

# Alertmanager's own defaults for send_resolved, per integration (its docs, v0.25): a
# config that leaves the key out still tells whether a resolution is ever sent.
_SEND_RESOLVED_DEFAULT = {"email": False, "slack": False, "wechat": False}


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
    fingerprint: str | None = None

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())
                         if k != "alertname")
        return f"{self.name}{{{shown}}} ({self.state})"


@dataclass(frozen=True)
class Receiver:
    """A receiver of the running Alertmanager config: what it sends to, and resolutions too?"""

    name: str
    integrations: list[str]          # "webhook", "slack", ... (empty: it notifies nobody)
    sends_resolved: list[str]        # the integrations that also send resolved notifications


def _receiver(raw: dict[str, Any]) -> Receiver:
    integrations: list[str] = []
    resolved: list[str] = []
    for key, configs in raw.items():
        if not (str(key).endswith("_configs") and isinstance(configs, list) and configs):
            continue
        kind = str(key).removesuffix("_configs")
        integrations.append(kind)
        default = _SEND_RESOLVED_DEFAULT.get(kind, True)
        if any(isinstance(c, dict) and c.get("send_resolved", default) for c in configs):
            resolved.append(kind)
    return Receiver(str(raw.get("name")), integrations, resolved)


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
                            [str(r["name"]) for r in a.get("receivers") or []],
                            a.get("fingerprint"))
                    for a in body]
        except (KeyError, TypeError, AttributeError):
            raise BackendError("alertmanager answered a malformed alert") from None

    async def silence(self, silence_id: str) -> dict[str, Any]:
        """One silence (its matchers, author and comment)."""
        body = await self.get_json(f"/api/v2/silence/{silence_id}")
        if not isinstance(body, dict):
            raise BackendError("alertmanager answered a malformed silence")
        return body

    async def receivers(self) -> dict[str, Receiver]:
        """The running config's receivers by name (from ``/api/v2/status``)."""
        body = await self.get_json("/api/v2/status")
        try:
            config = yaml.safe_load(body["config"]["original"])
            return {r.name: r for r in map(_receiver, config.get("receivers") or [])}
        except (KeyError, TypeError, AttributeError, yaml.YAMLError):
            raise BackendError("alertmanager answered a malformed status") from None
