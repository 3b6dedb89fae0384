"""Run summaries to Slack (slack-sdk: incoming webhook or bot token, Block Kit) and webhooks.

Payloads are built by pure functions and scrubbed of every registered secret before they
leave the process. Sending never changes the verdict: a failed notification is reported
as a line of output, not raised.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from core import redact
from reports.config import Notify, SlackNotify, WebhookNotify
from reports.model import Report, summarize

_VERDICT = {"ready": "READY", "not_ready": "NOT READY", "inconclusive": "INCONCLUSIVE"}
_EMOJI = {"ready": ":white_check_mark:", "not_ready": ":x:", "inconclusive": ":warning:"}
_MAX_LISTED = 10  # Block Kit caps a section at 3000 characters; the report has the rest
_MAX_MESSAGE = 200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scrubbed(payload: dict[str, Any]) -> dict[str, Any]:
    # the values first (before JSON escapes them; a secret split over two values), then
    # the serialized form, so that no nested string can escape the scrubber
    values: dict[str, Any] = redact.scrub_data(payload)
    try:
        clean: dict[str, Any] = json.loads(redact.scrub(json.dumps(values)))
    except ValueError:  # a mask ate an escape: the value-level scrub already holds
        return values
    return clean


def summary_payload(report: Report, report_url: str | None = None) -> dict[str, Any]:
    """The generic webhook's JSON: verdict, counts and the checks that did not pass."""
    return _scrubbed({
        "source": "readygate", "gate": report.gate, "target": report.target,
        "verdict": report.verdict, "exit_code": report.exit_code, "partial": report.partial,
        "reason": report.reason, "started_at": report.started_at,
        "finished_at": report.finished_at, "summary": summarize(report.checks),
        "report_url": report_url,
        "not_passed": [{"name": c.name, "signal": c.signal, "status": c.status,
                        "severity": c.severity, "message": c.message,
                        "latency_s": c.latency_s, "deadline_s": c.deadline_s}
                       for c in report.checks if c.status != "pass"],
        "regressions": (report.comparison or {}).get("regressions", []),
    })


def slack_message(report: Report, report_url: str | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, Block Kit blocks) for the run's Slack summary."""
    verdict = _VERDICT[report.verdict]
    counts = summarize(report.checks)
    duration = report.finished_at - report.started_at
    text = f"readygate {report.gate} on {report.target}: {verdict}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _clip(f"{verdict} · readygate {report.gate}", 150)}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Verdict*\n{_EMOJI[report.verdict]} {verdict}"},
            {"type": "mrkdwn", "text": f"*Target*\n{report.target}"},
            {"type": "mrkdwn", "text": f"*Checks*\n{counts['pass']} passed, {counts['fail']} "
                                       f"failed, {counts['error']} errors, "
                                       f"{counts['skipped']} skipped"},
            {"type": "mrkdwn", "text": f"*Duration*\n{duration:.1f}s"}]},
    ]
    bad = [c for c in report.checks if c.status in ("fail", "error")]
    if bad:
        lines = [f"• *{c.status.upper()}* {c.name}"
                 + (" _(warning)_" if c.severity == "warning" else "")
                 + f": {_clip(c.message, _MAX_MESSAGE)}" for c in bad[:_MAX_LISTED]]
        if len(bad) > _MAX_LISTED:
            lines.append(f"… and {len(bad) - _MAX_LISTED} more in the report")
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": _clip("*Failing checks*\n" + "\n".join(lines), 2900)}})
    regressions = (report.comparison or {}).get("regressions") or []
    if regressions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(
            "*Regressions since the previous run*\n"
            + "\n".join(f"• {r}" for r in regressions[:_MAX_LISTED]), 2900)}})
    if report.partial or report.reason:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
            ("Partial: " if report.partial else "") + (report.reason or ""), 300)}]})
    if report_url:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open the report"},
            "url": report_url, "action_id": "readygate_open_report"}]})
    clean = _scrubbed({"text": text, "blocks": blocks})
    return clean["text"], clean["blocks"]


def send_slack(settings: SlackNotify, text: str, blocks: list[dict[str, Any]]) -> str:
    """Post through slack-sdk; return a line saying what happened (raises on failure)."""
    if settings.webhook_url is not None:
        from slack_sdk.webhook import WebhookClient
        hook = WebhookClient(settings.webhook_url.get_secret_value(),
                             timeout=int(settings.timeout_s))
        response = hook.send(text=text, blocks=blocks)
        if response.status_code != 200:
            raise RuntimeError(f"incoming webhook answered HTTP {response.status_code}: "
                               f"{_clip(str(response.body), 200)}")
        return "Slack summary sent (incoming webhook)"
    from slack_sdk import WebClient
    assert settings.token is not None and settings.channel  # the config model ensures it
    kwargs: dict[str, Any] = {"token": settings.token.get_secret_value(),
                              "timeout": int(settings.timeout_s)}
    if settings.base_url:
        kwargs["base_url"] = settings.base_url.rstrip("/") + "/"
    WebClient(**kwargs).chat_postMessage(channel=settings.channel, text=text, blocks=blocks)
    return f"Slack summary sent to {settings.channel}"


def send_webhook(settings: WebhookNotify, payload: dict[str, Any]) -> str:
    """POST the summary as JSON; any 2xx is success."""
    response = httpx.post(settings.url.get_secret_value(), json=payload,
                          timeout=settings.timeout_s,
                          headers={"User-Agent": "readygate-notify"})
    response.raise_for_status()
    return f"webhook notified (HTTP {response.status_code})"


def notify(report: Report, settings: Notify, report_url: str | None = None) -> list[str]:
    """Send every configured notification; return one scrubbed line per attempt."""
    if report.verdict not in settings.when:
        return []
    lines: list[str] = []
    if settings.slack is not None:
        try:
            text, blocks = slack_message(report, report_url)
            lines.append(send_slack(settings.slack, text, blocks))
        except Exception as exc:  # a chat outage must not lose the verdict
            lines.append(f"Slack summary failed: {type(exc).__name__}: {_clip(str(exc), 200)}")
    if settings.webhook is not None:
        try:
            lines.append(send_webhook(settings.webhook, summary_payload(report, report_url)))
        except Exception as exc:
            lines.append(f"webhook failed: {type(exc).__name__}: {_clip(str(exc), 200)}")
    return [redact.scrub(line) for line in lines]
