"""``links:``, ``notify:`` and ``reports:`` in readygate.yaml: where reports link to, who
hears of a run, and where else its outcome is written (Grafana annotations)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.config import Model
from core.http import HttpFields


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


class GrafanaAnnotations(HttpFields):
    """The run's timeline written on Grafana dashboards as annotations (opt-in): the fault
    window (a region), alerts firing and resolved, notifications, the verdict."""

    url: str = Field(description="Grafana's base URL, e.g. https://grafana.example.com")
    token: SecretStr | None = Field(
        None, description="service account token (annotations:write); always redacted")
    org_id: int | None = Field(None, ge=1, description="the organization (X-Grafana-Org-Id); "
                               "default: the token's")
    dashboard_uids: list[str] = Field(
        default_factory=list, description="dashboards to annotate (uids); empty: organization "
        "annotations, shown by any dashboard whose annotation query filters on the tags")
    tags: list[str] = Field(
        default_factory=list, description="tags added to readygate, gate:<name>, run:<id>")
    timeout_s: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _url(self) -> GrafanaAnnotations:
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL")
        return self


class Reports(Model):
    """Where a run's outcome is written besides its report files."""

    grafana_annotations: GrafanaAnnotations | None = Field(
        None, description="annotate Grafana dashboards with the run's timeline "
        "(docs/reports.md); a failure to write is a warning, never a verdict")
