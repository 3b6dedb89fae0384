"""The drill's watcher: what we see, as events — alert pending/firing/resolved, notifications.

It polls Prometheus' alerts API and the sink's notifications for one alert and emits
:class:`~core.events.AlertObserved` / :class:`~core.events.NotificationObserved`
on every change, timestamped at the source where the source says when: a notification at
its arrival time at the sink, a pending alert at Prometheus' ``activeAt``, a firing alert
at ``activeAt + for`` (or the poll that saw it, if that is earlier). It only reads; a
backend that cannot be reached is counted and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from core.errors import BackendError
from core.events import AlertObserved, Event, NotificationObserved
from core.times import rfc3339_seconds
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient


def labels_match(have: dict[str, str], want: dict[str, str]) -> bool:
    """Every wanted label is present with that value."""
    return all(have.get(k) == v for k, v in want.items())


class AlertWatcher:
    """Polls one alert's state and its notifications until cancelled; emits what changes."""

    def __init__(self, emit: Callable[[Event], None], *, alertname: str,
                 labels: dict[str, str] | None = None, prometheus: PrometheusClient | None,
                 sink: SinkClient | None, since: float, interval_s: float = 0.25) -> None:
        self.emit = emit
        self.alertname = alertname
        self.labels = dict(labels or {})
        self.prometheus = prometheus
        self.sink = sink
        self.since = since
        self.interval_s = interval_s
        self.state = "inactive"
        self.for_s: float | None = None
        self.errors: dict[str, str] = {}
        self.polls = 0
        self._seen_notifications: set[Any] = set()

    async def run(self) -> None:
        """Poll until cancelled."""
        await self._rule_duration()
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)

    async def poll_once(self) -> None:
        """Look once at the alert and the notifications (also the last look before stopping)."""
        self.polls += 1
        await asyncio.gather(self._poll_alerts(), self._poll_notifications())

    async def _rule_duration(self) -> None:
        if self.prometheus is None:
            return
        try:
            rules = await self.prometheus.rules()
        except BackendError as exc:
            self.errors["prometheus"] = str(exc)
            return
        for rule in rules:
            if rule.get("type") == "alerting" and rule.get("name") == self.alertname:
                duration = rule.get("duration")
                self.for_s = float(duration) if isinstance(duration, int | float) else None
                return

    async def _poll_alerts(self) -> None:
        if self.prometheus is None:
            return
        try:
            alerts = await self.prometheus.alerts()
        except BackendError as exc:
            self.errors["prometheus"] = str(exc)
            return
        now = time.time()
        mine = [a for a in alerts if a.name == self.alertname and labels_match(a.labels,
                                                                              self.labels)]
        firing = [a for a in mine if a.state == "firing"]
        pending = [a for a in mine if a.state == "pending"]
        new = "firing" if firing else "pending" if pending else "inactive"
        if new == self.state:
            return
        old, self.state = self.state, new
        chosen = (firing or pending)[0] if firing or pending else None
        labels = dict(chosen.labels) if chosen is not None else {}
        active_at = rfc3339_seconds(chosen.active_at) if chosen is not None else None
        if new == "pending" and active_at is not None:
            self.emit(AlertObserved(min(now, active_at), self.alertname, "pending", labels, now))
        elif new == "firing":
            if old == "inactive" and active_at is not None and self.for_s:
                # Seen straight as firing: the pending stretch happened between two polls.
                self.emit(AlertObserved(min(now, active_at), self.alertname, "pending",
                                        labels, now))
            at = now
            if active_at is not None and self.for_s is not None:
                at = min(now, active_at + self.for_s)
            self.emit(AlertObserved(at, self.alertname, "firing", labels, now))
        elif new == "inactive":
            self.emit(AlertObserved(now, self.alertname, "resolved", labels, now))

    async def _poll_notifications(self) -> None:
        if self.sink is None:
            return
        try:
            rows = await self.sink.notifications(alertname=self.alertname)
        except BackendError as exc:
            self.errors["sink"] = str(exc)
            return
        fresh = []
        for row in rows:
            key = row.get("id") or (row.get("received_at"), row.get("status"),
                                    row.get("fingerprint"))
            received = row.get("received_at")
            if key in self._seen_notifications or not isinstance(received, int | float):
                continue
            if received < self.since or not labels_match(row.get("labels") or {}, self.labels):
                continue
            self._seen_notifications.add(key)
            fresh.append(row)
        for row in sorted(fresh, key=lambda r: float(r["received_at"])):
            self.emit(NotificationObserved(float(row["received_at"]), self.alertname,
                                           str(row.get("status")), row.get("receiver")))
