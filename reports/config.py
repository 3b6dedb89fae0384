"""``links:`` and ``notify:`` in readygate.yaml: where reports link to and who hears of a run."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.config import Model


class Links(Model):
    """Base URLs for links from the report's evidence into your tools (all optional)."""

    prometheus: str | None = Field(
        None, description="Prometheus UI: metric checks link to {prometheus}/graph?g0.expr=...")
    grafana: str | None = Field(None, description="Grafana: metric checks link to Explore")
    grafana_datasource: str = Field("prometheus", description="Grafana datasource uid for Explore")
    jaeger: str | None = Field(None, description="Jaeger UI: trace ids link to {jaeger}/trace/ID")
    report_url: str | None = Field(
        None, description="where the published report.html lives (linked from Slack/webhook)")

    @model_validator(mode="after")
    def _urls(self) -> Links:
        for name in ("prometheus", "grafana", "jaeger", "report_url"):
            url = getattr(self, name)
            if url is not None and not re.match(r"^https?://", url):
                raise ValueError(f"{name}: {url!r} is not an http(s) URL")
        return self


class SlackNotify(Model):
    """A Slack summary: an incoming webhook URL, or a bot token plus a channel."""

    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    base_url: str | None = Field(
        None, description="Slack API base URL for a bot token (default: Slack's own)")
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_way(self) -> SlackNotify:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set exactly one of webhook_url or token")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel")
        return self


class WebhookNotify(Model):
    """A generic JSON webhook: POSTs the run's summary."""

    url: SecretStr
    timeout_s: float = Field(10.0, gt=0, le=120)


VerdictName = Literal["ready", "not_ready", "inconclusive"]
_ALL_VERDICTS: tuple[VerdictName, ...] = ("ready", "not_ready", "inconclusive")


class Notify(Model):
    """Where to send the run's summary, and when."""

    when: list[VerdictName] = Field(
        default_factory=lambda: list(_ALL_VERDICTS),
        description="verdicts that send a notification")
    slack: SlackNotify | None = None
    webhook: WebhookNotify | None = None
