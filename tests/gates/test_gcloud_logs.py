"""Cloud Logging (``kind: gcloud`` logs) through the real google-cloud-logging client (its
REST transport) against tests/fakes/gcloud.py's ``entries.list``, which evaluates the
filter the backend sends: the logs checks pass on the probe's lines and fail when they are
missing or late; a backend down or answering garbage is an error; secret scans read the
window page by page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.logging import GcloudLogs
from gates.context import Anchors
from tests.fakes.gcloud import PROJECT, FakeGoogleApis
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TOKEN = "ya29.a0-test-access-token"
SECRET = "pw-Very-Secret-123"


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogleApis, str]]:
    fake = FakeGoogleApis(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def gcloud_logs(url: str, *, query: str | None = None, token: str = TOKEN) -> Any:
    return lambda http: GcloudLogs(GcloudAuth(token=token, project_id=PROJECT), url=url,
                                   log_filter=query, timeout_s=2)


def test_a_probe_line_found_by_the_trace_field_passes_with_the_token_sent(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.log(json_payload={"message": "upload stored", "service": "web"}, trace_id=TRACE)
    r = judge_with({"signal": "logs", "journey": "upload", "services": ["web"],
                    "deadline_s": 2}, phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   logs=gcloud_logs(url))
    assert r.status == "pass", r.message
    assert r.evidence["backend"] == "gcloud"
    assert f'trace="projects/{PROJECT}/traces/{TRACE}"' in r.evidence["query"]
    assert {q["authorization"] for q in fake.requests} == {f"Bearer {TOKEN}"}


def test_a_line_without_the_trace_fails_naming_the_request_id_near_miss(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.log(json_payload={"message": "upload", "request_id": "r-9"})  # no trace on it
    probe = make_probe(trace_id=TRACE, request_id="r-9")
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.5},
                   phase="baseline", probes=[probe], logs=gcloud_logs(url))
    assert r.status == "fail" and "request id but not its trace id" in r.message
    r = judge_with({"signal": "logs", "journey": "upload", "by": "request_id", "deadline_s": 2},
                   phase="baseline", probes=[probe], logs=gcloud_logs(url))
    assert r.status == "pass", r.message


def test_the_request_id_is_found_in_labels_and_in_the_http_request_url(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.log(text="GET /upload", labels={"request_id": "r-label"})
    fake.log(text="access", http_request={"requestMethod": "GET",
                                          "requestUrl": "https://api.example/x?rid=r-url"})
    logs = GcloudLogs(GcloudAuth(token=TOKEN, project_id=PROJECT), url=url)
    by_label = asyncio.run(logs.lines(request_id="r-label"))
    by_url = asyncio.run(logs.lines(request_id="r-url"))
    assert [line.body for line in by_label] == ["GET /upload"]
    assert by_label[0].request_id == "r-label" and by_label[0].service == "api"
    assert [line.body for line in by_url] == ["access"]


def test_no_line_is_a_fail_and_a_line_ingested_after_the_deadline_is_late(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=gcloud_logs(url))
    assert r.status == "fail" and f"no log line carries trace_id {TRACE}" in r.message
    fake.log(json_payload={"message": "slow pipeline"}, trace_id="c" * 32,
             visible_at=time.time() + 2.0)
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.6},
                   phase="baseline", probes=[make_probe(trace_id="c" * 32)],
                   logs=gcloud_logs(url))
    assert r.status == "fail" and "no log line" in r.message


def test_the_configured_filter_is_anded_with_every_look(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.log(json_payload={"message": "from the batch job"}, trace_id=TRACE,
             resource={"type": "k8s_container", "labels": {"container_name": "batch"}})
    only_run = gcloud_logs(url, query='resource.type="cloud_run_revision"')
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=only_run)
    assert r.status == "fail"
    assert '(resource.type="cloud_run_revision") AND' in r.evidence["query"]


def test_severity_and_json_fields_are_normalised(google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.log(json_payload={"message": "storage down", "error": {"type": "Timeout"}},
             trace_id=TRACE, severity="ERROR")
    r = judge_with({"signal": "log_levels", "journey": "upload", "min_level": "ERROR",
                    "deadline_s": 2}, probes=[make_probe(ok=False, trace_id=TRACE)],
                   logs=gcloud_logs(url))
    assert r.status == "pass", r.message
    r = judge_with({"signal": "log_fields", "journey": "upload",
                    "fields": ["error.type", "severity"], "deadline_s": 2}, phase="baseline",
                   probes=[make_probe(trace_id=TRACE)], logs=gcloud_logs(url))
    assert r.status == "pass", r.message


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_backend_answering_errors_or_garbage_is_an_error(
        google: tuple[FakeGoogleApis, str], mode: str) -> None:
    fake, url = google
    fake.mode = mode
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=gcloud_logs(url))
    assert r.status == "error" and "Cloud Logging" in r.message, r.message


def test_a_refused_token_and_a_dead_endpoint_are_errors(
        google: tuple[FakeGoogleApis, str]) -> None:
    _, url = google
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   logs=gcloud_logs(url, token="ya29.wrong-token"))
    assert r.status == "error" and "refused the token (401)" in r.message
    assert "ya29.wrong-token" not in r.message
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   logs=gcloud_logs("http://127.0.0.1:9"))
    assert r.status == "error" and "unreachable" in r.message


def test_secret_scan_reads_the_window_page_by_page_and_finds_a_leak(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.page_limit = 3  # entries.list answers 3 entries a page: the scan must page on
    now = time.time()
    fake.log(json_payload={"message": "before the window", "password": SECRET}, at=now - 120)
    for i in range(7):
        fake.log(json_payload={"message": f"line {i}"}, trace_id=TRACE, at=now - 1 + i * 0.01)
    check = {"signal": "secret_leak", "journey": "upload", "deadline_s": 2, "lookback_s": 0}
    anchors = Anchors(phase_start={"baseline": now - 5})
    r = judge_with(check, phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   anchors=anchors, secrets=[SECRET], logs=gcloud_logs(url))
    assert r.status == "pass", r.message  # the old leak lies before the window
    assert len([q for q in fake.requests if q["path"] == "/v2/entries:list"]) >= 3
    fake.log(json_payload={"message": "login", "password": SECRET}, at=now)
    r = judge_with(check, phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   anchors=anchors, secrets=[SECRET], logs=gcloud_logs(url))
    assert r.status == "fail" and SECRET not in r.message


def test_anonymous_credentials_send_no_authorization() -> None:
    fake = FakeGoogleApis(token=None)
    fake.log(text="hello", trace_id=TRACE)
    with serve(fake.app()) as url:
        logs = GcloudLogs(GcloudAuth(credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                                     project_id=PROJECT),
                          url=url)
        lines = asyncio.run(logs.lines(trace_id=TRACE))
    assert [line.trace_id for line in lines] == [TRACE]
    assert fake.requests[0]["authorization"] is None
