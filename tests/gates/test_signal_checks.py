"""The logs, traces, errors and notification checks: each passes on the signal and fails when
it is missing or late, against fakes of Loki, Jaeger, Tempo, Zipkin, Sentry, Slack, PagerDuty
speaking their documented formats (tests/fakes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gates.backends.jsonl import JsonLinesLogs
from gates.backends.loki import LokiLogs
from gates.backends.notifications import PagerDutyNotifications, SlackNotifications
from gates.backends.sentry import SentryErrors
from gates.backends.traces import JaegerTraces, TempoTraces, ZipkinTraces
from tests.fakes.logs import FakeLoki
from tests.fakes.saas import FakePagerDuty, FakeSentry, FakeSlack
from tests.fakes.server import serve
from tests.fakes.tracing import FakeTraces
from tests.gates.conftest import judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRET = "pw-Very-Secret-123"


@pytest.fixture
def loki() -> Iterator[tuple[FakeLoki, str]]:
    fake = FakeLoki()
    with serve(fake.app()) as url:
        yield fake, url


def loki_backend(url: str) -> object:
    return lambda http: LokiLogs(url, http, selector='{service_name=~".+"}')


# -- logs -----------------------------------------------------------------------------

def test_logs_via_loki_pass_and_fail_with_the_request_id_near_miss(
        loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    fake.push({"service_name": "web"}, {"level": "info", "msg": "upload", "request_id": "r-9"})
    probe = make_probe(trace_id=TRACE, request_id="r-9")
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4}, phase="baseline",
                   probes=[probe], logs=loki_backend(url))
    assert r.status == "fail" and "request id but not its trace id" in r.message
    r = judge_with({"signal": "logs", "journey": "upload", "by": "request_id", "deadline_s": 1},
                   phase="baseline", probes=[probe], logs=loki_backend(url))
    assert r.status == "pass" and r.evidence["backend"] == "loki"


def test_logs_from_jsonl_files(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text(f'{{"level": "INFO", "service": "web", "trace_id": "{TRACE}"}}\n')
    logs = {"logs": lambda http: JsonLinesLogs(str(path))}
    r = judge_with({"signal": "logs", "journey": "login", "services": ["web"], "deadline_s": 1},
                   phase="baseline", probes=[make_probe("login", trace_id=TRACE)], **logs)
    assert r.status == "pass"
    r = judge_with({"signal": "logs", "journey": "login", "deadline_s": 0.3}, phase="baseline",
                   probes=[make_probe("login", trace_id="c" * 32)], **logs)
    assert r.status == "fail" and "no log line carries trace_id" in r.message
    r = judge_with({"signal": "logs", "journey": "login", "deadline_s": 0.3}, phase="baseline",
                   probes=[make_probe("login", trace_id=TRACE)],
                   logs=lambda http: JsonLinesLogs(str(tmp_path / "gone.log")))
    assert r.status == "error" and "no log file" in r.message


def test_log_fields_pass_and_fail_naming_the_missing_field(loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    fake.push({"service_name": "web"}, {"level": "info", "msg": "a", "trace_id": TRACE,
                                        "request_id": "r-1"})
    check = {"signal": "log_fields", "journey": "login", "deadline_s": 0.5,
             "fields": ["level", "service", "trace_id", "request_id"]}
    probes = [make_probe("login", trace_id=TRACE)]
    assert judge_with(check, phase="baseline", probes=probes,
                      logs=loki_backend(url)).status == "pass"
    fake.push({"service_name": "web"}, {"level": "info", "msg": "no rid", "trace_id": TRACE})
    r = judge_with(check, phase="baseline", probes=probes, logs=loki_backend(url))
    assert r.status == "fail" and "1 of 2 line(s) lack 'request_id'" in r.message


def test_log_levels_pass_at_error_and_fail_at_info(loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    bad, good = "1" * 32, "2" * 32
    fake.push({"service_name": "web"}, {"level": "INFO", "msg": "upload failed", "trace_id": bad})
    fake.push({"service_name": "web"}, {"level": "ERROR", "msg": "upload failed",
                                        "trace_id": good})
    check = {"signal": "log_levels", "journey": "upload", "deadline_s": 0.4}
    r = judge_with(check, probes=[make_probe(ok=False, trace_id=bad)], logs=loki_backend(url))
    assert r.status == "fail" and "not logged at ERROR" in r.message and "INFO" in r.message
    r = judge_with(check, probes=[make_probe(ok=False, trace_id=good)], logs=loki_backend(url))
    assert r.status == "pass"
    # no failed probe to follow: readygate could not judge, it did not see a pass
    r = judge_with(check, probes=[make_probe(ok=True, trace_id=good)], logs=loki_backend(url))
    assert r.status == "error"


def test_log_budget_holds_and_breaks(loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    quiet, noisy = "3" * 32, "4" * 32
    for _ in range(3):
        fake.push({"service_name": "web"}, {"level": "info", "trace_id": quiet})
    for _ in range(30):
        fake.push({"service_name": "web"}, {"level": "debug", "trace_id": noisy})
    check = {"signal": "log_budget", "journey": "upload", "max_lines_per_request": 10,
             "deadline_s": 1}
    r = judge_with(check, phase="baseline", probes=[make_probe(trace_id=quiet)],
                   logs=loki_backend(url))
    assert r.status == "pass" and "at most 3 line(s)" in r.message
    r = judge_with(check, phase="baseline",
                   probes=[make_probe(trace_id=quiet), make_probe(trace_id=noisy)],
                   logs=loki_backend(url))
    assert r.status == "fail" and "wrote 30 log lines" in r.message
    r = judge_with({**check, "deadline_s": 0.3}, phase="baseline",
                   probes=[make_probe(trace_id="5" * 32)], logs=loki_backend(url))
    assert r.status == "fail" and "no log lines" in r.message


def test_secret_leak_pass_fail_and_no_data(loki: tuple[FakeLoki, str]) -> None:
    fake, url = loki
    fake.push({"service_name": "web"}, {"level": "info", "msg": "login ok", "trace_id": TRACE})
    check = {"signal": "secret_leak", "phase": "baseline", "journey": "login", "deadline_s": 0.5}
    probes = [make_probe("login", trace_id=TRACE)]
    r = judge_with(check, phase="baseline", probes=probes, secrets=[SECRET],
                   logs=loki_backend(url))
    assert r.status == "pass"
    fake.push({"service_name": "web"}, {"level": "debug", "msg": f"login password={SECRET}"})
    r = judge_with(check, phase="baseline", probes=probes, secrets=[SECRET],
                   logs=loki_backend(url))
    assert r.status == "fail" and "secret #1 appears in 1 log line(s)" in r.message
    assert SECRET not in r.message and SECRET not in str(r.evidence)
    # the probe's own lines cannot be found (a service that logs no trace or request ids):
    # the window is still scanned, and the leak in it is reported
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id="9" * 32)],
                   secrets=[SECRET], logs=loki_backend(url))
    assert r.status == "fail" and "secret #1 appears in 1 log line(s)" in r.message
    assert "proves nothing" in r.evidence["flow_unproven"]


def test_secret_leak_without_the_probes_lines_proves_nothing(
        loki: tuple[FakeLoki, str]) -> None:
    """Lines that cannot be tied to the probe and hold no secret: absence is unproven."""
    fake, url = loki
    fake.push({"service_name": "web"}, {"level": "info", "msg": "GET /v2/ 200"})  # no ids
    check = {"signal": "secret_leak", "phase": "baseline", "journey": "login", "deadline_s": 0.5}
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id="9" * 32)],
                   secrets=[SECRET], logs=loki_backend(url))
    assert r.status == "fail" and "proves nothing" in r.message


# -- traces ---------------------------------------------------------------------------

TRACE_CLIENTS = {"jaeger": JaegerTraces, "tempo": TempoTraces, "zipkin": ZipkinTraces}


@pytest.mark.parametrize("kind", sorted(TRACE_CLIENTS))
def test_trace_check_on_each_trace_store(kind: str) -> None:
    fake = FakeTraces()
    root = fake.add(TRACE, "POST /upload", "web")
    fake.add(TRACE, "PUT /objects/{id}", "storage", parent_id=root.span_id,
             attributes={"http.route": "/objects/{id}"})
    cls = TRACE_CLIENTS[kind]
    probes = [make_probe(trace_id=TRACE)]
    with serve(fake.app(kind)) as url:
        traces = {"traces": lambda http: cls(url, http)}
        r = judge_with({"signal": "trace", "services": ["web", "storage"], "deadline_s": 2,
                        "spans": [{"service": "storage", "attributes":
                                   {"http.route": "/objects/*"}}]},
                       phase="baseline", probes=probes, **traces)
        assert r.status == "pass", r.message
        r = judge_with({"signal": "trace", "services": ["web", "db"], "deadline_s": 0.3},
                       phase="baseline", probes=probes, **traces)
        assert r.status == "fail" and "missing db" in r.message
        r = judge_with({"signal": "trace", "services": ["web"], "deadline_s": 0.4,
                        "spans": [{"name": "SELECT *"}]}, phase="baseline", probes=probes,
                       **traces)
        assert r.status == "fail" and "no span matches span{name=SELECT *}" in r.message, r.message
        r = judge_with({"signal": "trace", "deadline_s": 0.3}, phase="baseline",
                       probes=[make_probe(trace_id="7" * 32)], **traces)
        assert r.status == "fail" and "no spans" in r.message


def test_trace_error_span_pass_and_fail() -> None:
    fake = FakeTraces()
    bad, good = "5" * 32, "6" * 32
    fake.add(bad, "PUT /objects", "storage")                  # the fault left no error mark
    fake.add(good, "PUT /objects", "storage", error=True)
    check = {"signal": "trace_error_span", "span": {"service": "storage"}, "deadline_s": 0.4}
    with serve(fake.app("jaeger")) as url:
        traces = {"traces": lambda http: JaegerTraces(url, http)}
        r = judge_with(check, probes=[make_probe(ok=False, trace_id=good)], **traces)
        assert r.status == "pass" and r.evidence["link"].endswith(f"/trace/{good}")
        r = judge_with(check, probes=[make_probe(ok=False, trace_id=bad)], **traces)
        assert r.status == "fail" and "none has error status" in r.message


def test_trace_attributes_pass_and_fail_on_header_and_secret_value() -> None:
    fake = FakeTraces()
    clean, dirty = "a" * 32, "b" * 32
    fake.add(clean, "POST /api/login", "web", attributes={"http.route": "/api/login"})
    fake.add(dirty, "POST /api/login", "web",
             attributes={"http.request.header.authorization": "Bearer x",
                         "db.statement": f"UPDATE users SET pw='{SECRET}'"})
    check = {"signal": "trace_attributes", "deadline_s": 1}
    with serve(fake.app("zipkin")) as url:
        traces = {"traces": lambda http: ZipkinTraces(url, http)}
        r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id=clean)],
                       secrets=[SECRET], **traces)
        assert r.status == "pass"
        r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id=dirty)],
                       secrets=[SECRET], **traces)
        assert r.status == "fail" and "http.request.header.authorization" in r.message
        assert "holds a secret value" in r.message and SECRET not in r.message


# -- errors ---------------------------------------------------------------------------

@pytest.fixture
def sentry() -> Iterator[tuple[FakeSentry, str]]:
    fake = FakeSentry(token="sntrys-t")
    with serve(fake.app()) as url:
        yield fake, url


def sentry_backend(url: str) -> object:
    return lambda http: SentryErrors(url, http, organization="acme", project="web",
                                     token="sntrys-t")


def test_error_event_pass_fail_and_late(sentry: tuple[FakeSentry, str]) -> None:
    fake, url = sentry
    probe = make_probe(ok=False, trace_id=TRACE)
    fake.capture("StorageError: 500", request_id="r-1")          # no trace id on it
    r = judge_with({"signal": "error_event", "deadline_s": 0.4}, probes=[probe],
                   errors=sentry_backend(url))
    assert r.status == "fail" and "none carries its trace id" in r.message
    r = judge_with({"signal": "error_event", "by": "request_id", "deadline_s": 5},
                   probes=[make_probe(ok=False, trace_id=TRACE, request_id="r-1",
                                      at=time.time() - 0.5)], errors=sentry_backend(url))
    assert r.status == "pass" and "/events/" in r.evidence["link"]
    fake.capture("late", trace_id="e" * 32, at=time.time() + 3)  # received 3 s after the probe
    r = judge_with({"signal": "error_event", "deadline_s": 1},
                   probes=[make_probe(ok=False, trace_id="e" * 32)], errors=sentry_backend(url))
    assert r.status == "fail" and "late" in r.message


def test_pii_scrubbed_pass_and_fail(sentry: tuple[FakeSentry, str]) -> None:
    fake, url = sentry
    fake.capture("boom", trace_id="c" * 32, user={"id": "42", "email": "[Filtered]"})
    fake.capture("boom", trace_id="d" * 32, user={"id": "42", "email": "ann@example.com"},
                 request={"headers": {"authorization": "Bearer abc"}})
    check = {"signal": "pii_scrubbed", "deadline_s": 0.5}
    r = judge_with(check, probes=[make_probe(ok=False, trace_id="c" * 32)],
                   errors=sentry_backend(url))
    assert r.status == "pass"
    r = judge_with(check, probes=[make_probe(ok=False, trace_id="d" * 32)],
                   errors=sentry_backend(url))
    assert r.status == "fail" and "user.email" in r.message
    assert "request.headers.Authorization" in r.message
    r = judge_with(check, probes=[make_probe(ok=False, trace_id="0" * 32)],
                   errors=sentry_backend(url))
    assert r.status == "fail" and "nothing to inspect" in r.message


# -- notifications --------------------------------------------------------------------

def test_notification_via_slack_pass_fail_and_refused() -> None:
    fake = FakeSlack(token="xoxb-t")
    anchor = time.time() - 2
    fake.post("C1", attachments=[{"title": "[FIRING:1] HighErrorRate (web)"}], ts=anchor + 1.1)
    check = {"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 5}
    from gates.context import Anchors
    anchors = Anchors(phase_start={"fault": anchor}, fault_start=anchor)
    with serve(fake.app()) as url:
        slack = {"notifications": lambda http: SlackNotifications("C1", token="xoxb-t",
                                                                  base_url=url + "/")}
        r = judge_with(check, anchors=anchors, **slack)
        assert r.status == "pass" and r.latency_s == pytest.approx(1.1, abs=0.01)
        r = judge_with({**check, "status": "resolved", "deadline_s": 2.3}, anchors=anchors,
                       **slack)
        assert r.status == "fail" and "received instead: HighErrorRate firing" in r.message
        r = judge_with(check, anchors=anchors, notifications=lambda http: SlackNotifications(
            "C1", token="wrong", base_url=url + "/"))
        assert r.status == "error" and "invalid_auth" in r.message


def test_notification_via_pagerduty_pass_and_late() -> None:
    fake = FakePagerDuty(token="pd-t")
    anchor = time.time() - 4
    fake.trigger("[FIRING:1] HighErrorRate web", at=anchor + 3)
    from gates.context import Anchors
    anchors = Anchors(phase_start={"fault": anchor}, fault_start=anchor)
    with serve(fake.app()) as url:
        pd = {"notifications": lambda http: PagerDutyNotifications(url, http, token="pd-t",
                                                                   service_ids=[])}
        r = judge_with({"signal": "notification", "alertname": "HighErrorRate",
                        "deadline_s": 5}, anchors=anchors, **pd)
        assert r.status == "pass" and r.evidence["link"].startswith("https://")
        r = judge_with({"signal": "notification", "alertname": "HighErrorRate",
                        "deadline_s": 2}, anchors=anchors, **pd)
        assert r.status == "fail" and "arrived late" in r.message  # PD: 1 s resolution


def test_trace_attributes_find_a_secret_encoded_or_split_across_attributes() -> None:
    """base64, URL-encoded and split secrets in span attributes fail as a plain one does."""
    import base64
    import urllib.parse
    fake = FakeTraces()
    ids = {"b64": "c" * 32, "url": "d" * 32, "split": "e" * 32}
    fake.add(ids["b64"], "POST /api/login", "web", attributes={
        "http.request.header.x-debug": base64.b64encode(f"demo:{SECRET}".encode()).decode()})
    fake.add(ids["url"], "POST /api/login", "web", attributes={
        "url.query": "password=" + urllib.parse.quote(SECRET + "&=/", safe="")})
    half = len(SECRET) // 2
    fake.add(ids["split"], "POST /api/login", "web",
             attributes={"a.part1": SECRET[:half], "a.part2": SECRET[half:]})
    check = {"signal": "trace_attributes", "deadline_s": 1}
    with serve(fake.app("zipkin")) as url:
        traces = {"traces": lambda http: ZipkinTraces(url, http)}
        for how, trace_id in ids.items():
            r = judge_with(check, phase="baseline",
                           probes=[make_probe("login", trace_id=trace_id)],
                           secrets=[SECRET], **traces)
            assert r.status == "fail", (how, r.message)
            assert "secret value" in r.message and SECRET not in r.message
            assert SECRET not in str(r.evidence)


def test_pii_scrubbed_finds_a_secret_encoded_or_with_a_quote_in_an_error_event(
        sentry: tuple[FakeSentry, str]) -> None:
    """URL-encoded, base64, and a secret with a quote (which JSON escapes) all fail."""
    import base64
    import urllib.parse
    fake, url = sentry
    quoted = 'pa"ss-w0rd-42'
    cases = {
        "url": ("1" * 32, "/login?password=" + urllib.parse.quote(SECRET + "&/", safe=""), SECRET),
        "b64": ("2" * 32, "Basic " + base64.b64encode(f"demo:{SECRET}".encode()).decode(),
                SECRET),
        "quote": ("3" * 32, f"login failed for {quoted}", quoted),
    }
    check = {"signal": "pii_scrubbed", "deadline_s": 0.5}
    for how, (trace_id, leaked, secret) in cases.items():
        fake.capture(leaked, trace_id=trace_id, user={"id": "42", "email": "[Filtered]"})
        r = judge_with(check, probes=[make_probe(ok=False, trace_id=trace_id)],
                       secrets=[secret], errors=sentry_backend(url))
        assert r.status == "fail" and "contains a secret value" in r.message, (how, r.message)
        assert secret not in r.message + str(r.evidence)
