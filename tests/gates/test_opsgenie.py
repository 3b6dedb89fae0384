"""Opsgenie as a notifications backend: httpx against a local fake of the Alert API v2
(tests/fakes/opsgenie.py). A notification check passes on an alert created after the
anchor in time, and fails when none is created, when it is created late, or when the alert
was open before the anchor; Opsgenie down, refusing the key or answering garbage is an
error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.errors import BackendError, ConfigError
from gates.backends import registry
from gates.backends.opsgenie import OpsgenieNotifications
from gates.context import Anchors
from readygate.config import parse_config
from tests.fakes.opsgenie import FakeOpsgenie
from tests.fakes.server import serve
from tests.gates.conftest import judge_with

KEY = "og-genie-key-1234"
# Alertmanager's opsgenie_configs default message: its subject template
FIRING = "[FIRING:1] HighErrorRate web (critical)"


@pytest.fixture
def og() -> Iterator[tuple[FakeOpsgenie, str]]:
    fake = FakeOpsgenie(KEY)
    with serve(fake.app()) as url:
        yield fake, url


def backend(url: str, key: str = KEY, query: str | None = None) -> Any:
    return lambda http: OpsgenieNotifications(url, http, token=key, query=query, timeout_s=2)


def anchors(at: float, fault_end: float | None = None) -> Anchors:
    return Anchors(phase_start={"fault": at}, fault_start=at, fault_end=fault_end)


CHECK = {"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 5}


def test_an_alert_created_after_the_anchor_passes_with_createdat_as_its_latency(
        og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    anchor = time.time() - 4
    fake.create(FIRING, at=anchor + 2.5, alias="group-key-1")
    r = judge_with(CHECK, anchors=anchors(anchor), notifications=backend(url))
    assert r.status == "pass", r.message
    assert r.latency_s == pytest.approx(2.5, abs=0.01)
    assert r.evidence["backend"] == "opsgenie"
    assert fake.queries[-1].startswith("createdAt > ")


def test_an_alert_created_after_the_deadline_fails_late(og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    anchor = time.time() - 4
    fake.create(FIRING, at=anchor + 3)
    r = judge_with({**CHECK, "deadline_s": 2}, anchors=anchors(anchor),
                   notifications=backend(url))
    assert r.status == "fail" and "arrived late: 3.0s" in r.message


def test_no_alert_naming_the_alert_fails(og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    anchor = time.time() - 2
    fake.create("[FIRING:1] HighErrorRateBudget web", at=anchor + 1)  # a longer name
    r = judge_with({**CHECK, "deadline_s": 0.5}, anchors=anchors(anchor),
                   notifications=backend(url))
    assert r.status == "fail" and "no HighErrorRate firing notification" in r.message


def test_an_alert_open_before_the_anchor_fails_even_when_it_occurs_again_after(
        og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    anchor = time.time() - 3
    fake.create(FIRING, at=anchor - 60, alias="group-key-1")
    r = judge_with({**CHECK, "deadline_s": 1}, anchors=anchors(anchor),
                   notifications=backend(url))
    assert r.status == "fail" and "said firing and none resolved it" in r.message
    # Alertmanager re-sends the open alert (same alias): Opsgenie counts an occurrence
    fake.create(FIRING, at=anchor + 1, alias="group-key-1")
    r = judge_with({**CHECK, "deadline_s": 2}, anchors=anchors(anchor),
                   notifications=backend(url))
    assert r.status == "fail" and "already firing before the fault" in r.message


def test_a_closed_alert_is_the_resolved_notification(og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    fault = time.time() - 10
    alert = fake.create(FIRING, at=fault + 1, alias="group-key-1")
    fake.close(alert, at=fault + 7)
    check = {**CHECK, "status": "resolved", "anchor": "fault_end", "deadline_s": 5}
    r = judge_with(check, phase="recovery", anchors=anchors(fault, fault_end=fault + 5),
                   notifications=backend(url))
    assert r.status == "pass", r.message
    assert r.latency_s == pytest.approx(2.0, abs=0.01)


def test_the_configured_query_narrows_the_search(og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    anchor = time.time() - 4
    fake.create(FIRING, at=anchor + 1, teams=["payments"])
    r = judge_with({**CHECK, "deadline_s": 1}, anchors=anchors(anchor),
                   notifications=backend(url, query="teams: shop"))
    assert r.status == "fail"
    assert fake.queries[-1].endswith("AND (teams: shop)")
    fake.create(FIRING, at=anchor + 2, teams=["shop"])
    r = judge_with(CHECK, anchors=anchors(anchor), notifications=backend(url, query="teams: shop"))
    assert r.status == "pass", r.message


def test_every_page_is_read(og: tuple[FakeOpsgenie, str]) -> None:
    fake, url = og
    since = time.time() - 30
    for i in range(230):
        fake.create(f"[FIRING:1] Noise{i}", at=since + i * 0.01)
    fake.create(FIRING, at=since + 10)

    async def go() -> list[Any]:
        async with httpx.AsyncClient() as http:
            return await OpsgenieNotifications(url, http, token=KEY).notifications(
                "HighErrorRate", since)
    rows = asyncio.run(go())
    assert [r.status for r in rows] == ["firing"]


@pytest.mark.parametrize("mode", ["garbage", "500"])
def test_opsgenie_answering_garbage_is_an_error(og: tuple[FakeOpsgenie, str], mode: str) -> None:
    fake, url = og
    fake.create(FIRING, at=time.time())
    fake.mode = mode
    r = judge_with({**CHECK, "deadline_s": 0.3}, anchors=anchors(time.time() - 1),
                   notifications=backend(url))
    assert r.status == "error", r.message


def test_a_wrong_key_or_a_dead_opsgenie_is_an_error(og: tuple[FakeOpsgenie, str]) -> None:
    _, url = og
    r = judge_with({**CHECK, "deadline_s": 0.3}, anchors=anchors(time.time() - 1),
                   notifications=backend(url, key="wrong-key-000"))
    assert r.status == "error" and "refused the request (401)" in r.message
    r = judge_with({**CHECK, "deadline_s": 0.3}, anchors=anchors(time.time() - 1),
                   notifications=backend("http://127.0.0.1:9"))
    assert r.status == "error" and "unreachable" in r.message

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            await OpsgenieNotifications(url, http, token=KEY, query="owner ~ me").alerts(0)
    with pytest.raises(BackendError, match="422 for /v2/alerts: Invalid query"):
        asyncio.run(go())


def test_opsgenie_loads_from_yaml_with_the_genie_key_as_a_secret() -> None:
    config = parse_config("backends:\n  notifications: {kind: opsgenie, token: og-key-secret-9,"
                          " url: 'https://api.eu.opsgenie.com', query: 'teams: shop'}\n",
                          "r.yaml")
    assert "og-key-secret-9" in config.secrets()

    async def build() -> registry.ContextBackends:
        async with httpx.AsyncClient() as http:
            return registry.build_all(config.backends, http)
    built = asyncio.run(build())
    assert isinstance(built.notifications, OpsgenieNotifications)
    assert built.notifications.base_url == "https://api.eu.opsgenie.com"
    assert built.notifications._headers == {"Authorization": "GenieKey og-key-secret-9"}
    with pytest.raises(ConfigError, match=r"r.yaml:2 backends.notifications: a opsgenie "
                                          r"backend needs 'token'"):
        parse_config("backends:\n  notifications: {kind: opsgenie}\n", "r.yaml")
    with pytest.raises(ConfigError, match=r"did you mean 'opsgenie'"):
        parse_config("backends:\n  notifications: {kind: opsgenei, token: og-key-1}\n",
                     "r.yaml")
