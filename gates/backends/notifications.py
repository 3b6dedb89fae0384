"""Where alert notifications land: a Slack channel (slack-sdk) or PagerDuty incidents."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl as _ssl
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import Notification

SLACK_API = "https://slack.com/api/"
PAGERDUTY_API = "https://api.pagerduty.com"


def _mentions(text: str, alertname: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(alertname)}(?![\w-])", text) is not None


def _status(text: str) -> str:
    """Alertmanager's templates say ``[FIRING:n]`` or ``[RESOLVED]``."""
    return "resolved" if "RESOLVED" in text.upper() else "firing"


def _slack_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("text") or "")]
    for att in message.get("attachments") or []:
        parts += [str(att.get(k) or "") for k in ("pretext", "title", "text", "fallback")]
    for block in message.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text") or ""))
    return "\n".join(p for p in parts if p)


class SlackNotifications:
    """A Slack channel's history, read with slack-sdk's ``conversations_history``."""

    kind = "slack"

    def __init__(self, channel: str, *, token: str | None, base_url: str | None = None,
                 timeout_s: float = 5.0, ssl: _ssl.SSLContext | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.channel = channel
        self.web = WebClient(token=token, base_url=base_url or SLACK_API,
                             timeout=max(1, round(timeout_s)), ssl=ssl, headers=headers or {})

    def _history(self, oldest: float) -> list[dict[str, Any]]:
        try:
            resp = self.web.conversations_history(channel=self.channel, oldest=f"{oldest:.6f}",
                                                  limit=200)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            raise BackendError(f"slack refused conversations.history: {error}") from None
        except (SlackClientError, OSError) as exc:
            raise BackendError(f"slack unreachable: {type(exc).__name__}") from None
        messages = resp.get("messages")
        if not isinstance(messages, list):
            raise BackendError("slack answered without a messages list")
        return [m for m in messages if isinstance(m, dict)]

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        messages = await asyncio.to_thread(self._history, since)
        out = []
        for m in messages:
            text = _slack_text(m)
            if not _mentions(text, alertname):
                continue
            try:
                ts = float(m.get("ts") or 0)
            except ValueError:
                continue
            out.append(Notification(alertname, _status(text), ts, {"text": text[:300]},
                                    where=f"slack #{self.channel}"))
        return sorted((n for n in out if n.received_at >= since), key=lambda n: n.received_at)


class PagerDutyNotifications(HttpBackend):
    """PagerDuty REST API v2: incidents whose title names the alert."""

    kind = "pagerduty"

    def __init__(self, base_url: str | None, client: httpx.AsyncClient, *, token: str | None,
                 service_ids: list[str], timeout_s: float = 5.0) -> None:
        headers = {"Accept": "application/vnd.pagerduty+json;version=2"}
        if token:
            headers["Authorization"] = f"Token token={token}"
        super().__init__(base_url or PAGERDUTY_API, client, timeout_s=timeout_s,
                         headers=headers)
        self.service_ids = service_ids

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        params: list[tuple[str, str]] = [
            ("since", dt.datetime.fromtimestamp(since, dt.UTC).isoformat()),
            ("limit", "100"), ("sort_by", "created_at:asc"),
            *(("statuses[]", s) for s in ("triggered", "acknowledged", "resolved")),
            *(("service_ids[]", s) for s in self.service_ids)]
        body = await self.get_json("/incidents", params)
        try:
            incidents = body["incidents"]
        except (KeyError, TypeError):
            raise BackendError("pagerduty answered without an incidents list") from None
        out: list[Notification] = []
        for inc in incidents:
            if not isinstance(inc, dict) or not _mentions(str(inc.get("title", "")), alertname):
                continue
            created = rfc3339_seconds(inc.get("created_at"))
            where = f"pagerduty {(inc.get('service') or {}).get('summary', '')}".strip()
            if created is not None and created >= since:
                out.append(Notification(alertname, "firing", created,
                                        {"incident": str(inc.get("id"))}, where,
                                        inc.get("html_url")))
            if inc.get("status") == "resolved":
                resolved = rfc3339_seconds(inc.get("resolved_at")
                                           or inc.get("last_status_change_at"))
                if resolved is not None and resolved >= since:
                    out.append(Notification(alertname, "resolved", resolved,
                                            {"incident": str(inc.get("id"))}, where,
                                            inc.get("html_url")))
        return sorted(out, key=lambda n: n.received_at)
