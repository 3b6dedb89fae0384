"""Opsgenie Alert API v2 as a notifications backend (httpx; opsgenie-sdk is unmaintained).

``GET /v2/alerts?query=createdAt > ...&sort=createdAt&order=asc`` with ``Authorization:
GenieKey <key>``, paged with ``offset``/``limit``. An alert whose message (or a tag) names
the alert is a notification: firing when it was created, resolved when it was closed.
Alertmanager's ``opsgenie_configs`` default message is its subject, ``[FIRING:n] <group
labels' values> ...``, which names the alert when alerts are grouped by ``alertname``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import Notification

OPSGENIE_API = "https://api.opsgenie.com"  # EU accounts: https://api.eu.opsgenie.com
_PAGE = 100       # Opsgenie's largest page
_PAGES = 20       # 2000 alerts since the look-back: more is noise, not evidence


def _mentions(text: str, alertname: str) -> bool:
    """``alertname`` as a whole word of ``text`` (not a part of a longer name)."""
    return re.search(rf"(?<![\w-]){re.escape(alertname)}(?![\w-])", text) is not None


def _closed_at(alert: dict[str, Any], created: float) -> float | None:
    """When a closed alert was closed: ``report.closeTime`` is milliseconds after creation;
    ``updatedAt`` (any later change, a note too) when the report has none."""
    report = alert.get("report")
    close_ms = report.get("closeTime") if isinstance(report, dict) else None
    if isinstance(close_ms, int | float) and not isinstance(close_ms, bool) and close_ms >= 0:
        return created + close_ms / 1000.0
    return rfc3339_seconds(alert.get("updatedAt"))


class OpsgenieNotifications(HttpBackend):
    """Opsgenie alerts whose message names the alert, as notifications."""

    kind = "opsgenie"

    def __init__(self, base_url: str | None, client: httpx.AsyncClient, *, token: str | None,
                 query: str | None = None, timeout_s: float = 5.0) -> None:
        headers = {"Authorization": f"GenieKey {token}"} if token else {}
        super().__init__(base_url or OPSGENIE_API, client, timeout_s=timeout_s,
                         headers=headers)
        self.query = (query or "").strip()

    def search(self, since: float) -> str:
        """The alert search query: created at or after ``since`` (``>`` on epoch
        milliseconds, the form Opsgenie's search help shows), AND the configured query."""
        created = f"createdAt > {int(since * 1000) - 1}"
        return f"{created} AND ({self.query})" if self.query else created

    async def alerts(self, since: float) -> list[dict[str, Any]]:
        """Every alert created at or after ``since``, oldest first."""
        out: list[dict[str, Any]] = []
        for page in range(_PAGES):
            body = await self.get_json("/v2/alerts", {
                "query": self.search(since), "sort": "createdAt", "order": "asc",
                "limit": str(_PAGE), "offset": str(page * _PAGE)})
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise BackendError("opsgenie answered without a data list")
            out += [a for a in data if isinstance(a, dict)]
            if len(data) < _PAGE:
                return out
        raise BackendError(f"opsgenie holds more than {_PAGE * _PAGES} alerts since "
                           f"{dt.datetime.fromtimestamp(since, dt.UTC):%H:%M:%S}Z: narrow them "
                           "with query (e.g. teams:ops)")

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        out: list[Notification] = []
        for alert in await self.alerts(since):
            text = " ".join([str(alert.get("message") or ""),
                             *(str(t) for t in alert.get("tags") or [])])
            if not _mentions(text, alertname):
                continue
            created = rfc3339_seconds(alert.get("createdAt"))
            if created is None:
                raise BackendError("opsgenie answered an alert without createdAt")
            labels = {"alert": str(alert.get("tinyId") or alert.get("id"))}
            where = f"opsgenie {alert.get('owner') or ''}".strip()
            # the alert starts when Opsgenie created it: a later occurrence of the same alias
            # (count > 1) is a re-notification of an alert that was already open
            out.append(Notification(alertname, "firing", created, labels, where,
                                    starts_at=created))
            again = rfc3339_seconds(alert.get("lastOccurredAt"))
            if (alert.get("count") or 1) > 1 and again is not None and again > created:
                out.append(Notification(alertname, "firing", again, labels, where,
                                        starts_at=created))
            if alert.get("status") == "closed":
                closed = _closed_at(alert, created)
                if closed is not None:
                    out.append(Notification(alertname, "resolved", closed, labels, where,
                                            starts_at=created))
        return sorted((n for n in out if n.received_at >= since), key=lambda n: n.received_at)
