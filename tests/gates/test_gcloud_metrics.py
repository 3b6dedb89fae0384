"""Cloud Monitoring's PromQL API (``kind: gcloud`` metrics) as the metric checks' backend,
against tests/fakes/gcloud.py's ``/v1/projects/P/location/global/prometheus``: a condition
that comes true after the anchor passes, one that never does or comes true too late fails,
one that already held at the anchor fails, a backend down or answering garbage is an error;
the google-auth bearer token is refreshed as it expires."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.auth import credentials as ga_credentials

from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.monitoring import GcloudPrometheus
from gates.context import Anchors
from tests.fakes.gcloud import PROJECT, FakeGoogleApis
from tests.fakes.server import serve
from tests.gates.conftest import judge_with

TOKEN = "ya29.a0-metrics-token"
QUERY = ('sum(rate(http_requests_total{code=~"5.."}[1m]))'
         ' / sum(rate(http_requests_total[1m])) > 0.05')


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogleApis, str]]:
    fake = FakeGoogleApis(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def gcloud_metrics(url: str) -> Any:
    return lambda http: GcloudPrometheus(GcloudAuth(token=TOKEN, project_id=PROJECT), http,
                                         url=url, timeout_s=2)


def anchored(now: float) -> Anchors:
    return Anchors(phase_start={"fault": now - 1}, fault_start=now)


def test_a_condition_that_comes_true_after_the_fault_passes(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    now = time.time()
    fake.holds(QUERY, since=now + 0.3, value=0.4)
    r = judge_with({"signal": "metric", "query": QUERY, "anchor": "fault_start",
                    "deadline_s": 3}, anchors=anchored(now), metrics=gcloud_metrics(url))
    assert r.status == "pass", r.message
    paths = {q["path"] for q in fake.requests}
    assert paths == {f"/v1/projects/{PROJECT}/location/global/prometheus/api/v1/query"}
    assert {q["authorization"] for q in fake.requests} == {f"Bearer {TOKEN}"}


def test_a_condition_that_already_held_at_the_anchor_fails(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    now = time.time()
    fake.holds(QUERY, since=now - 60)
    r = judge_with({"signal": "metric", "query": QUERY, "anchor": "fault_start",
                    "deadline_s": 2}, anchors=anchored(now), metrics=gcloud_metrics(url))
    assert r.status == "fail" and "already held before fault_start" in r.message


def test_a_condition_that_never_holds_or_holds_too_late_fails(
        google: tuple[FakeGoogleApis, str]) -> None:
    fake, url = google
    now = time.time()
    r = judge_with({"signal": "metric", "query": QUERY, "anchor": "fault_start",
                    "deadline_s": 0.5}, anchors=anchored(now), metrics=gcloud_metrics(url))
    assert r.status == "fail" and "did not hold" in r.message
    now = time.time()
    fake.holds(QUERY, since=now + 2.5)
    r = judge_with({"signal": "metric", "query": QUERY, "anchor": "fault_start",
                    "deadline_s": 0.8}, anchors=anchored(now), metrics=gcloud_metrics(url))
    assert r.status == "fail" and "did not hold" in r.message


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_backend_answering_errors_or_garbage_is_an_error(
        google: tuple[FakeGoogleApis, str], mode: str) -> None:
    fake, url = google
    fake.mode = mode
    r = judge_with({"signal": "metric", "query": QUERY, "deadline_s": 0.5},
                   metrics=gcloud_metrics(url))
    assert r.status == "error" and "gcloud" in r.message, r.message


def test_a_wrong_token_is_an_error_not_a_silent_miss(google: tuple[FakeGoogleApis, str]) -> None:
    _, url = google
    def wrong(http: httpx.AsyncClient) -> GcloudPrometheus:
        return GcloudPrometheus(GcloudAuth(token="ya29.not-it", project_id=PROJECT), http,
                                url=url)
    r = judge_with({"signal": "metric", "query": QUERY, "deadline_s": 0.5}, metrics=wrong)
    assert r.status == "error" and "refused the request (401)" in r.message
    assert "ya29.not-it" not in r.message


class Rotating(ga_credentials.Credentials):
    """Credentials whose tokens expire at once: each request must refresh first."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.minted = 0

    def refresh(self, request: Any) -> None:
        self.minted += 1
        self.token = f"ya29.minted-{self.minted}"
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1)


def test_an_expiring_token_is_refreshed_before_each_request() -> None:
    fake = FakeGoogleApis(token=None)
    fake.holds("up", since=0)
    creds = Rotating()
    with serve(fake.app()) as url:
        async def go() -> None:
            async with httpx.AsyncClient() as http:
                prom = GcloudPrometheus(GcloudAuth(credentials=creds, project_id=PROJECT), http,
                                        url=url)
                assert await prom.query("up")
                assert await prom.query("up")
        asyncio.run(go())
    assert [q["authorization"] for q in fake.requests] == ["Bearer ya29.minted-1",
                                                           "Bearer ya29.minted-2"]
