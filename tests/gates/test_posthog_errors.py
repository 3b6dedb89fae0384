"""``errors: {kind: posthog}``: ``$exception`` events (or any named event) read through PostHog's
HogQL query API, against a fake speaking its documented shape; the events are captured with
the real posthog-python client into the fake. Present and on time (pass), absent (fail), late
(fail), before the probe (fail), down or garbage (error). Also the config: the kind is
offered, its required keys are named, a misspelling gets a did-you-mean."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from posthog import Posthog

from core.errors import ConfigError
from gates.backends.posthog import PostHogErrors
from gates.context import Anchors
from readygate.config import load_config
from reports.model import CheckResult
from tests.fakes.sentry_posthog import FakePostHog
from tests.fakes.server import serve
from tests.gates.conftest import Build, judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TOKEN = "phx_personal_key"


@pytest.fixture
def posthog() -> Iterator[tuple[FakePostHog, str]]:
    fake = FakePostHog(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def backend(url: str, *, token: str = TOKEN, event: str = "$exception") -> Build:
    return lambda http: PostHogErrors(url, http, project_id="4242", token=token, event=event)


def frontend_check(**extra: object) -> dict[str, object]:
    return {"signal": "error_event", "phase": "baseline", "journey": "frontend",
            "probe": "succeeded", "deadline_s": 3, **extra}


def test_an_exception_captured_by_posthog_python_passes_with_its_tags(
        posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog
    probe = make_probe("frontend", trace_id=TRACE)
    client = Posthog("phc_project", host=url, sync_mode=True)
    try:
        raise TypeError("x is undefined")
    except TypeError as exc:
        client.capture_exception(exc, distinct_id="probe", properties={
            "$trace_id": TRACE, "release": "web@1.4.2", "environment": "production"})
    client.shutdown()
    r = judge_with(frontend_check(release=True, environment="production"), phase="baseline",
                   probes=[probe], errors=backend(url))
    assert r.status == "pass", r.message
    assert "TypeError: x is undefined" in r.message and "release web@1.4.2" in r.message
    query = fake.queries[0]["query"]
    assert query["kind"] == "HogQLQuery" and TRACE not in query["query"]  # values, not text
    assert query["values"]["trace_id"] == TRACE and query["values"]["event"] == "$exception"


def test_no_exception_event_for_the_probe_fails(posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog
    probe = make_probe("frontend", trace_id=TRACE)
    fake.add(properties={"$trace_id": "f" * 32, "$exception_list": [{"type": "Error"}]})
    r = judge_with(frontend_check(deadline_s=0.5), phase="baseline", probes=[probe],
                   errors=backend(url))
    assert r.status == "fail" and "none carries its trace id" in r.message, r.message


def test_an_exception_ingested_after_the_deadline_fails_as_late(
        posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog
    probe = make_probe("frontend", trace_id=TRACE, at=time.time() - 10)
    fake.add(properties={"$trace_id": TRACE}, at=probe.started_at + 1,
             created_at=probe.started_at + 7)  # PostHog ingested it 7 s after the probe
    r = judge_with(frontend_check(), phase="baseline", probes=[probe], errors=backend(url),
                   anchors=Anchors(phase_start={"baseline": probe.started_at - 1}))
    assert r.status == "fail" and "showed up late: 7.0s" in r.message, r.message


def test_an_event_from_before_the_probe_is_not_the_probes(
        posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog
    probe = make_probe("frontend", trace_id=TRACE)
    # same trace id (a reused id, a replayed session), captured a minute earlier
    fake.add(properties={"trace_id": TRACE}, at=probe.started_at - 60)
    r = judge_with(frontend_check(deadline_s=0.5), phase="baseline", probes=[probe],
                   errors=backend(url))
    assert r.status == "fail" and "arrived before the probe was sent" in r.message, r.message


def test_posthog_down_refusing_or_answering_garbage_is_an_error(
        posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog

    def look(errors: Build) -> CheckResult:
        return judge_with(frontend_check(deadline_s=0.3), phase="baseline",
                          probes=[make_probe("frontend", trace_id=TRACE)], errors=errors)

    r = look(backend(url, token="wrong"))
    assert r.status == "error" and "refused" in r.message, r.message
    fake.garbage = True
    r = look(backend(url))
    assert r.status == "error" and "non-JSON" in r.message, r.message
    with serve(fake.app()) as closed:
        pass
    r = look(backend(closed))
    assert r.status == "error" and "unreachable" in r.message, r.message


def test_a_query_posthog_rejects_is_an_error_naming_its_detail(
        posthog: tuple[FakePostHog, str]) -> None:
    _, url = posthog

    class Broken(PostHogErrors):
        def hogql(self, *, trace_id: str | None, request_id: str | None) -> str:
            return "SELECT uuid FROM events WHERE event = {nope}"

    r = judge_with(frontend_check(deadline_s=0.3), phase="baseline",
                   probes=[make_probe("frontend", trace_id=TRACE)],
                   errors=lambda http: Broken(url, http, project_id="4242", token=TOKEN))
    assert r.status == "error" and "Unable to resolve the query" in r.message, r.message


def test_any_named_event_can_be_read(posthog: tuple[FakePostHog, str]) -> None:
    fake, url = posthog
    fake.add("checkout failed", properties={"request_id": "rg-req-1"})
    r = judge_with(frontend_check(by="request_id"), phase="baseline",
                   probes=[make_probe("frontend", request_id="rg-req-1")],
                   errors=backend(url, event="checkout failed"))
    assert r.status == "pass", r.message


def write(tmp_path: Path, errors: str) -> Path:
    path = tmp_path / "readygate.yaml"
    path.write_text("version: 1\ntarget: {name: t}\nbackends:\n"
                    f"  errors: {errors}\ngates: {{}}\n")
    return path


def test_the_posthog_kind_is_valid_and_needs_its_project_and_key(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, "{kind: posthog, project_id: '4242', "
                                             "token: phx_abc}")))
    assert config.backends.errors is not None and config.backends.errors.kind == "posthog"
    with pytest.raises(ConfigError, match="a posthog backend needs 'project_id'"):
        load_config(str(write(tmp_path, "{kind: posthog, token: phx_abc}")))
    with pytest.raises(ConfigError, match="did you mean 'posthog'"):
        load_config(str(write(tmp_path, "{kind: posthgo, project_id: '1', token: phx_abc}")))
