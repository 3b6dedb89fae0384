"""Error Reporting (``kind: gcloud`` errors) through the real google-cloud-error-reporting
client (errorreporting_v1beta1, REST transport) against tests/fakes/gcloud.py: an error
event carrying the failed probe's trace (or request) id passes, a missing or late one
fails, one from before the probe is not it, a backend down or answering garbage is an
error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import errorreporting_v1beta1 as er

from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.errors import GcloudErrors, period_for
from tests.fakes.gcloud import PROJECT, FakeGoogleApis
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TOKEN = "ya29.a0-errors-token"


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogleApis, str]]:
    fake = FakeGoogleApis(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def gcloud_errors(url: str) -> Any:
    return lambda http: GcloudErrors(GcloudAuth(token=TOKEN, project_id=PROJECT), url=url,
                                     timeout_s=2)


def test_an_event_whose_message_carries_the_trace_id_passes_with_a_link(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.error("Traceback ...\nStorageError: put failed (other request)", group="G1")
    fake.error(f"Traceback ...\nStorageError: put failed trace_id={TRACE}", group="G2")
    r = judge_with({"signal": "error_event", "deadline_s": 3},
                   probes=[make_probe(ok=False, trace_id=TRACE, at=time.time() - 0.5)],
                   errors=gcloud_errors(url))
    assert r.status == "pass", r.message
    assert r.evidence["backend"] == "gcloud"
    assert "/errors/detail/G2?project=" in r.evidence["link"]
    assert {q["authorization"] for q in fake.requests} == {f"Bearer {TOKEN}"}


def test_the_request_id_in_the_request_url_ties_the_event(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.error("StorageError: 500", url="https://api.example/upload?request_id=rg-req-7")
    r = judge_with({"signal": "error_event", "by": "request_id", "deadline_s": 3},
                   probes=[make_probe(ok=False, trace_id=TRACE, request_id="rg-req-7",
                                      at=time.time() - 0.5)], errors=gcloud_errors(url))
    assert r.status == "pass", r.message


def test_no_event_with_the_id_fails_naming_the_others(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    r = judge_with({"signal": "error_event", "deadline_s": 0.5},
                   probes=[make_probe(ok=False, trace_id=TRACE)], errors=gcloud_errors(url))
    assert r.status == "fail" and "no error event since the probe" in r.message
    fake.error("StorageError: unrelated")
    r = judge_with({"signal": "error_event", "deadline_s": 0.5},
                   probes=[make_probe(ok=False, trace_id=TRACE, at=time.time() - 0.2)],
                   errors=gcloud_errors(url))
    assert r.status == "fail" and "none carries its trace id" in r.message


def test_an_event_reported_after_the_deadline_is_late(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.error(f"StorageError trace={TRACE}", at=time.time() + 3)
    r = judge_with({"signal": "error_event", "deadline_s": 1},
                   probes=[make_probe(ok=False, trace_id=TRACE)], errors=gcloud_errors(url))
    assert r.status == "fail" and "late" in r.message


def test_an_event_from_before_the_window_is_not_read(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    fake.error(f"StorageError trace={TRACE}", at=time.time() - 600)
    errors = GcloudErrors(GcloudAuth(token=TOKEN, project_id=PROJECT), url=url)
    assert asyncio.run(errors.events(trace_id=TRACE, since=time.time() - 60)) == []
    assert len(asyncio.run(errors.events(trace_id=TRACE, since=time.time() - 900))) == 1


def test_the_query_period_is_the_shortest_that_reaches_back() -> None:
    period = er.QueryTimeRange.Period
    assert period_for(60) == period.PERIOD_1_HOUR
    assert period_for(2 * 3600) == period.PERIOD_6_HOURS
    assert period_for(3 * 86400) == period.PERIOD_1_WEEK
    assert period_for(20 * 86400) == period.PERIOD_30_DAYS


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_backend_answering_errors_or_garbage_is_an_error(
        google: tuple[FakeGoogleApis, str], mode: str) -> None:
    fake, url = google
    fake.mode = mode
    r = judge_with({"signal": "error_event", "deadline_s": 0.4},
                   probes=[make_probe(ok=False, trace_id=TRACE)], errors=gcloud_errors(url))
    assert r.status == "error" and "Error Reporting" in r.message, r.message


def test_a_dead_endpoint_is_an_error() -> None:
    r = judge_with({"signal": "error_event", "deadline_s": 0.4},
                   probes=[make_probe(ok=False, trace_id=TRACE)],
                   errors=gcloud_errors("http://127.0.0.1:9"))
    assert r.status == "error" and "unreachable" in r.message
