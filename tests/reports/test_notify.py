"""Slack (real slack-sdk client) and webhook summaries, against a local fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from core import redact
from core.errors import ConfigError
from readygate.config import parse_config
from reports.model import Report
from reports.notify import notify, slack_message, summary_payload
from tests.reports.conftest import make_check, make_report
from tests.reports.fake_slack import FakeSlack

SECRET = "pw-that-leaked-9d3f"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def failing_report() -> Report:
    redact.register(SECRET)
    return make_report(make_check("pass", "trace spans web+storage"),
                       make_check("fail", "alert HighErrorRate fires",
                                  message=f"not firing; log line had password={SECRET}"))


def notify_config(yaml_text: str) -> object:
    return parse_config("version: 1\n" + yaml_text, "test.yaml").notify


def test_incoming_webhook_gets_block_kit_with_verdict_failures_and_link(
        slack: FakeSlack) -> None:
    settings = notify_config(f"notify:\n  slack:\n    webhook_url: {slack.url}/services/T0/B0/"
                             "xyzSECRETxyz\n")
    lines = notify(failing_report(), settings,  # type: ignore[arg-type]
                   "https://ci.example/report.html")
    assert lines == ["Slack summary sent (incoming webhook)"]
    [req] = slack.received
    assert req.path == "/services/T0/B0/xyzSECRETxyz"
    body = req.body
    assert body["text"] == "readygate release on demo: NOT READY"
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[:2] == ["header", "section"] and kinds[-1] == "actions"
    assert "NOT READY" in body["blocks"][0]["text"]["text"]
    failing = next(b for b in body["blocks"] if "Failing checks" in b.get("text", {}).get(
        "text", ""))
    assert "alert HighErrorRate fires" in failing["text"]["text"]
    assert body["blocks"][-1]["elements"][0]["url"] == "https://ci.example/report.html"


def test_the_slack_payload_contains_no_secret(slack: FakeSlack) -> None:
    settings = notify_config(f"notify:\n  slack:\n    webhook_url: {slack.url}/services/T/B/"
                             "hooksecret123\n")
    notify(failing_report(), settings)  # type: ignore[arg-type]
    raw = slack.received[0].raw
    assert SECRET not in raw and "hooksecret123" not in raw
    assert "password=***" in raw
    assert not redact.find_leaks(raw)


def test_bot_token_posts_with_chat_post_message(slack: FakeSlack) -> None:
    settings = notify_config(f"notify:\n  slack:\n    token: {slack.token}\n    channel: "
                             f"'#releases'\n    base_url: {slack.url}/api/\n")
    lines = notify(failing_report(), settings)  # type: ignore[arg-type]
    assert lines == ["Slack summary sent to #releases"]
    [req] = slack.received
    assert req.path == "/api/chat.postMessage"
    assert req.headers["Authorization"] == f"Bearer {slack.token}"
    assert req.body["channel"] == "#releases"
    blocks = req.body["blocks"]
    if isinstance(blocks, str):  # form-encoded clients send blocks as a JSON string
        blocks = json.loads(blocks)
    assert blocks[0]["type"] == "header"
    assert slack.token not in json.dumps(blocks)


def test_a_slack_failure_is_reported_not_raised_and_names_no_secret(slack: FakeSlack) -> None:
    settings = notify_config("notify:\n  slack:\n    token: xoxb-wrong-token-1234\n"
                             f"    channel: '#x'\n    base_url: {slack.url}/api/\n")
    [line] = notify(failing_report(), settings)  # type: ignore[arg-type]
    assert line.startswith("Slack summary failed: SlackApiError") and "invalid_auth" in line
    assert "xoxb-wrong-token-1234" not in line


def test_generic_webhook_gets_the_json_summary(slack: FakeSlack) -> None:
    settings = notify_config(f"notify:\n  when: [not_ready]\n  webhook:\n    url: {slack.url}"
                             "/hook\n")
    assert notify(failing_report(), settings) == [  # type: ignore[arg-type]
        "webhook notified (HTTP 202)"]
    body = slack.received[0].body
    assert body["verdict"] == "not_ready" and body["summary"]["fail"] == 1
    assert [c["name"] for c in body["not_passed"]] == ["alert HighErrorRate fires"]
    assert SECRET not in slack.received[0].raw
    ready = make_report(make_check("pass"))
    assert notify(ready, settings) == [], "when: [not_ready] skips a ready run"  # type: ignore[arg-type]


def test_notify_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"test.yaml:3 notify.slack: .*exactly one of"):
        parse_config("version: 1\nnotify:\n  slack:\n    channel: x\n", "test.yaml")
    config = parse_config("version: 1\nnotify:\n  slack:\n    token: xoxb-abcdef\n"
                         "    channel: c\n", "test.yaml")
    assert "xoxb-abcdef" in config.secrets()


def test_builders_are_pure_and_bounded() -> None:
    checks = [make_check("fail", f"check {i}", message="x" * 1000) for i in range(30)]
    text, blocks = slack_message(make_report(*checks))
    section = next(b for b in blocks if "Failing checks" in b.get("text", {}).get("text", ""))
    assert len(section["text"]["text"]) <= 3000 and "and 20 more" in section["text"]["text"]
    assert summary_payload(make_report(*checks))["summary"]["fail"] == 30
    assert text.endswith("NOT READY")
