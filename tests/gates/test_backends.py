"""Every evidence backend's real client against a local fake of its documented wire format,
and the registry that picks backends by name from YAML."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from core.errors import BackendError, ConfigError
from gates.backends import registry
from gates.backends.config import BACKEND_KINDS
from gates.backends.elasticsearch import ElasticsearchLogs
from gates.backends.jsonl import JsonLinesLogs
from gates.backends.loki import LokiLogs, logql_string
from gates.backends.notifications import PagerDutyNotifications, SlackNotifications
from gates.backends.sentry import SentryErrors
from gates.backends.traces import JaegerTraces, TempoTraces, ZipkinTraces
from readygate.config import parse_config
from tests.fakes.logs import FakeElasticsearch, FakeLoki
from tests.fakes.saas import FakePagerDuty, FakeSentry, FakeSlack
from tests.fakes.server import serve
from tests.fakes.tracing import FakeTraces

T = TypeVar("T")
TRACE = "0af7651916cd43dd8448eb211c80319c"


def run(fn: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await fn(client)
    return asyncio.run(go())


# -- registry -------------------------------------------------------------------------

def test_every_builtin_kind_in_the_config_is_registered() -> None:
    for signal, kinds in BACKEND_KINDS.items():
        assert kinds <= registry.kinds(signal), signal


def test_unknown_backend_kind_is_a_one_line_config_error_with_a_suggestion() -> None:
    text = "backends:\n  traces:\n    kind: jeager\n    url: http://127.0.0.1:1\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "r.yaml")
    assert str(err.value) == ("r.yaml:3 backends.traces.kind: unknown traces backend 'jeager' "
                              "(did you mean 'jaeger'?)")


def test_a_backend_missing_what_its_kind_needs_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"r.yaml:2 backends.logs: a loki backend needs 'url'"):
        parse_config("backends:\n  logs: {kind: loki}\n", "r.yaml")


def test_config_builds_every_kind_and_registers_tokens_for_redaction() -> None:
    config = parse_config(
        "backends:\n"
        "  sink: {url: http://127.0.0.1:1}\n"
        "  metrics: {kind: victoriametrics, url: http://127.0.0.1:2}\n"
        "  logs: {kind: loki, url: http://127.0.0.1:3, token: loki-token-1234}\n"
        "  traces: {kind: tempo, url: http://127.0.0.1:4}\n"
        "  errors: {kind: sentry, organization: acme, project: web, token: sntrys-abcd}\n"
        "  notifications: {kind: slack, channel: C123, token: xoxb-secret-1}\n", "r.yaml")
    assert {"loki-token-1234", "sntrys-abcd", "xoxb-secret-1"} <= set(config.secrets())
    built = run(lambda c: _build(config, c))
    assert (built.metrics.kind, built.logs.kind, built.traces.kind, built.errors.kind,
            built.notifications.kind) == ("victoriametrics", "loki", "tempo", "sentry", "slack")


async def _build(config: Any, client: httpx.AsyncClient) -> registry.ContextBackends:
    return registry.build_all(config.backends, client)


def test_kind_sink_without_a_sink_url_is_a_config_error() -> None:
    config = parse_config("backends:\n  logs: {kind: sink}\n")
    with pytest.raises(ConfigError, match=r"backends\.sink\.url"):
        run(lambda c: _build(config, c))


# -- logs -----------------------------------------------------------------------------

@pytest.fixture
def loki() -> Iterator[tuple[FakeLoki, str]]:
    fake = FakeLoki()
    with serve(fake.app()) as url:
        yield fake, url


def test_loki_finds_json_lines_by_trace_id_with_stream_labels(loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    fake.push({"service_name": "web", "env": "ci"},
              {"level": "info", "msg": "login ok", "trace_id": TRACE, "request_id": "r1"})
    fake.push({"service_name": "web"}, {"level": "info", "msg": "other", "trace_id": "f" * 32})
    lines = run(lambda c: LokiLogs(url, c, selector='{service_name=~".+"}').lines(
        trace_id=TRACE))
    assert [(line.service, line.level, line.body, line.request_id) for line in lines] == \
        [("web", "info", "login ok", "r1")]
    assert fake.queries[-1] == f'{{service_name=~".+"}} |= `{TRACE}`'


def test_loki_plain_text_lines_and_quoting() -> None:
    assert logql_string('a"b`c') == '"a\\"b`c"'
    fake = FakeLoki()
    fake.push({"job": "api"}, f"level=error msg=boom trace_id={TRACE}")
    with serve(fake.app()) as url:
        lines = run(lambda c: LokiLogs(url, c, selector='{job="api"}').lines(contains="boom"))
    assert lines[0].body.startswith("level=error") and lines[0].service == "api"


def test_loki_bad_selector_is_a_backend_error(loki: tuple[FakeLoki, str]) -> None:
    _, url = loki
    with pytest.raises(BackendError, match="non-JSON"):
        run(lambda c: LokiLogs(url, c, selector="job=api").lines(trace_id=TRACE))


def test_elasticsearch_search_by_trace_id_and_since() -> None:
    fake = FakeElasticsearch(token="es-token")
    fake.index("logs-2026", {"@timestamp": "2026-01-01T00:00:00Z", "message": "old",
                             "trace": {"id": TRACE}, "log": {"level": "INFO"}})
    fake.index("logs-2026", {"@timestamp": dt_now(), "message": "new", "trace": {"id": TRACE},
                             "log.level": "ERROR", "service": {"name": "web"}})
    with serve(fake.app()) as url:
        lines = run(lambda c: ElasticsearchLogs(url, c, index="logs-*", token="es-token")
                    .lines(trace_id=TRACE, since=time.time() - 60))
        with pytest.raises(BackendError, match="refused"):
            run(lambda c: ElasticsearchLogs(url, c, index="logs-*").lines(trace_id=TRACE))
    assert [(line.body, line.level, line.service, line.trace_id) for line in lines] == \
        [("new", "ERROR", "web", TRACE)]


def dt_now() -> str:
    import datetime as dt
    return dt.datetime.now(dt.UTC).isoformat()


def test_jsonl_files_are_scanned_and_a_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(json.dumps({"ts": time.time(), "level": "INFO", "message": "hi",
                                "traceId": TRACE}) + "\nnot json\n")
    lines = asyncio.run(JsonLinesLogs(str(tmp_path / "*.log")).lines(trace_id=TRACE))
    assert lines[0].body == "hi" and lines[0].level == "INFO"
    assert asyncio.run(JsonLinesLogs(str(path)).lines(contains="not json"))[0].body == "not json"
    with pytest.raises(BackendError, match="no log file"):
        asyncio.run(JsonLinesLogs(str(tmp_path / "nope.log")).lines())


# -- traces ---------------------------------------------------------------------------

CLIENTS: dict[str, Callable[[str, httpx.AsyncClient], Any]] = {
    "jaeger": lambda url, c: JaegerTraces(url, c),
    "tempo": lambda url, c: TempoTraces(url, c),
    "zipkin": lambda url, c: ZipkinTraces(url, c),
}


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_trace_backends_normalize_spans_and_answer_empty_when_unknown(kind: str) -> None:
    fake = FakeTraces()
    root = fake.add(TRACE, "POST /upload", "web", attributes={"http.route": "/upload"})
    fake.add(TRACE, "PUT /objects", "storage", parent_id=root.span_id, error=True)
    with serve(fake.app(kind)) as url:
        spans = run(lambda c: CLIENTS[kind](url, c).trace(TRACE))
        missing = run(lambda c: CLIENTS[kind](url, c).trace("1" * 32))
    assert missing == []
    assert sorted((s.service, s.name, s.error) for s in spans) == \
        [("storage", "PUT /objects", True), ("web", "POST /upload", False)]
    child = next(s for s in spans if s.service == "storage")
    assert child.trace_id == TRACE and child.parent_id == root.span_id
    assert next(s for s in spans if s.service == "web").attributes["http.route"] == "/upload"


def test_trace_backend_down_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="jaeger unreachable"):
        run(lambda c: JaegerTraces("http://127.0.0.1:9", c).trace(TRACE))


# -- notifications and errors ---------------------------------------------------------

def test_slack_history_through_slack_sdk() -> None:
    fake = FakeSlack(token="xoxb-test-token")
    since = time.time() - 1
    fake.post("C123", attachments=[{"title": "[FIRING:1] HighErrorRate web",
                                    "text": "web answers too many errors"}])
    fake.post("C123", "[RESOLVED] HighErrorRate web")
    fake.post("C123", "[FIRING:1] HighErrorRateX other")
    with serve(fake.app()) as url:
        rows = run(lambda c: SlackNotifications("C123", token="xoxb-test-token",
                                                base_url=url + "/").notifications(
            "HighErrorRate", since))
        with pytest.raises(BackendError, match="invalid_auth"):
            run(lambda c: SlackNotifications("C123", token="wrong", base_url=url + "/")
                .notifications("HighErrorRate", since))
        with pytest.raises(BackendError, match="channel_not_found"):
            run(lambda c: SlackNotifications("C999", token="xoxb-test-token",
                                             base_url=url + "/").notifications("X", since))
    assert [r.status for r in rows] == ["firing", "resolved"]


def test_pagerduty_incidents_become_firing_and_resolved_notifications() -> None:
    fake = FakePagerDuty(token="pd-token")
    since = time.time() - 2
    incident = fake.trigger("[FIRING:1] HighErrorRate (web critical)", at=since + 1)
    fake.resolve(incident, at=since + 1.5)
    with serve(fake.app()) as url:
        rows = run(lambda c: PagerDutyNotifications(url, c, token="pd-token", service_ids=[
            "PSVC1"]).notifications("HighErrorRate", since - 1))
        with pytest.raises(BackendError, match="refused"):
            run(lambda c: PagerDutyNotifications(url, c, token="bad", service_ids=[])
                .notifications("HighErrorRate", since))
    assert [r.status for r in rows] == ["firing", "resolved"]
    assert rows[0].link == incident["html_url"]


def test_sentry_events_by_trace_id_and_unknown_project() -> None:
    fake = FakeSentry(token="sntrys-token")
    fake.capture("ZeroDivisionError", trace_id=TRACE, request_id="r-1")
    fake.capture("other")
    with serve(fake.app()) as url:
        events = run(lambda c: SentryErrors(url, c, organization="acme", project="web",
                                            token="sntrys-token").events(trace_id=TRACE))
        with pytest.raises(BackendError, match="404"):
            run(lambda c: SentryErrors(url, c, organization="acme", project="nope",
                                       token="sntrys-token").events())
    assert [(e.message, e.trace_id, e.request_id) for e in events] == \
        [("ZeroDivisionError", TRACE, "r-1")]
