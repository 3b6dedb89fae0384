"""Cloud Trace (``kind: gcloud`` traces) through the real google-cloud-trace client (v1,
REST transport) against tests/fakes/gcloud.py: a trace spanning the services passes, a
missing or late one fails, a backend down or answering garbage is an error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.trace import GcloudTraces
from tests.fakes.gcloud import PROJECT, FakeGoogleApis
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TOKEN = "ya29.a0-trace-token"


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogleApis, str]]:
    fake = FakeGoogleApis(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def gcloud_traces(url: str) -> Any:
    return lambda http: GcloudTraces(GcloudAuth(token=TOKEN, project_id=PROJECT), url=url,
                                     timeout_s=2)


def test_a_trace_spanning_the_services_passes_with_spans_per_service(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.span(TRACE, 0x1F, "POST /upload", service="web")
    fake.span(TRACE, 0x2A, "storage.put", service="storage", parent=0x1F,
              labels={"service.name": "storage"})
    r = judge_with({"signal": "trace", "journey": "upload", "services": ["web", "storage"],
                    "spans": [{"service": "storage", "name": "storage.put"}], "deadline_s": 3},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces(url))
    assert r.status == "pass", r.message
    assert f"tid={TRACE}&project={PROJECT}" in r.evidence["link"]
    assert {q["authorization"] for q in fake.requests} == {f"Bearer {TOKEN}"}


def test_an_error_span_is_found_by_its_http_status_label(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.span(TRACE, 1, "POST /upload", service="web")
    fake.span(TRACE, 2, "storage.put", service="storage", parent=1,
              labels={"/http/status_code": "503"})
    r = judge_with({"signal": "trace_error_span", "journey": "upload",
                    "span": {"service": "storage"}, "deadline_s": 3},
                   probes=[make_probe(ok=False, trace_id=TRACE)], traces=gcloud_traces(url))
    assert r.status == "pass", r.message


def test_a_missing_trace_and_a_missing_service_fail(google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    r = judge_with({"signal": "trace", "journey": "upload", "deadline_s": 0.5},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces(url))
    assert r.status == "fail" and f"no spans with trace id {TRACE}" in r.message
    fake.span(TRACE, 1, "POST /upload", service="web")
    r = judge_with({"signal": "trace", "journey": "upload", "services": ["web", "storage"],
                    "deadline_s": 0.5}, phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces(url))
    assert r.status == "fail" and "missing storage" in r.message


def test_a_trace_stored_after_the_deadline_fails(google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.span(TRACE, 1, "POST /upload", service="web", visible_at=time.time() + 2.0)
    r = judge_with({"signal": "trace", "journey": "upload", "deadline_s": 0.6},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces(url))
    assert r.status == "fail" and "no spans" in r.message


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_backend_answering_errors_or_garbage_is_an_error(
        google: tuple[FakeGoogleApis, str], mode: str) -> None:
    fake, url = google
    fake.mode = mode
    r = judge_with({"signal": "trace", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces(url))
    assert r.status == "error" and "Cloud Trace" in r.message, r.message


def test_a_dead_endpoint_is_an_error() -> None:
    r = judge_with({"signal": "trace", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   traces=gcloud_traces("http://127.0.0.1:9"))
    assert r.status == "error" and "unreachable" in r.message
