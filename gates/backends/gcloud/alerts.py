"""Cloud Monitoring alert state, proven by the notification it sends.

Cloud Monitoring's v3 API lists alert policies but no incidents, so an incident is known by
what its webhook notification channel delivered: point a webhook channel at
``<sink>/webhooks/gcloud`` (sink/hooks_gcloud.py stores each open/closed incident) and
:class:`GcloudAlerts` reads them back. An incident whose last word is ``open`` is firing
since its ``started_at``; the alert's name is the policy's display name. Its
:attr:`monitoring` lists the policies for the ``alert_policy`` check.
"""

from __future__ import annotations

import time
from typing import Any

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.gcloud.monitoring import GcloudMonitoring
from gates.backends.sink import SinkClient
from gates.backends.types import ActiveAlert

RECEIVER = "gcloud"  # the receiver sink/hooks_gcloud.py writes
# incidents older than this are not read back (a policy with auto_close off stays open)
LOOKBACK_S = 7 * 86400.0


class GcloudAlerts:
    """Cloud Monitoring incidents as their webhook notifications recorded them."""

    kind = "gcloud"

    def __init__(self, sink: SinkClient, monitoring: GcloudMonitoring) -> None:
        self.sink = sink
        self.monitoring = monitoring

    async def _incidents(self) -> list[dict[str, Any]]:
        """The latest notification of each incident (by incident id), oldest first."""
        rows = await self.sink.notifications(receiver=RECEIVER,
                                             since=f"{time.time() - LOOKBACK_S:.6f}")
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            key = str(row.get("fingerprint") or "")
            if not key:
                raise BackendError("sink answered a gcloud notification without its incident id")
            # the sink answers in arrival order: a later row is the incident's newer state
            latest[key] = row
        return list(latest.values())

    async def alerts(self) -> list[ActiveAlert]:
        out = []
        for row in await self._incidents():
            if row.get("status") != "firing":
                continue
            labels = {str(k): str(v) for k, v in dict(row.get("labels") or {}).items()}
            out.append(ActiveAlert(str(row.get("alertname")), "firing", labels,
                                   row.get("starts_at")))
        return out

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        for row in await self._incidents():
            have = dict(row.get("labels") or {})
            if row.get("alertname") != alertname or \
                    any(str(have.get(k)) != v for k, v in labels.items()):
                continue
            started = rfc3339_seconds(row.get("starts_at"))
            ended = None
            if row.get("status") == "resolved":  # closed: at ended_at, else when we heard
                ended = rfc3339_seconds(row.get("ends_at")) or float(row.get("received_at") or 0)
            if started is not None and started <= time.time() and \
                    (ended is None or ended >= since):
                return True
        return False
