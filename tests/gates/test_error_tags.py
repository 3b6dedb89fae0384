"""error_event's ``release: true`` and ``environment:`` asks: the real sentry-sdk reporting to the
real sink (``kind: sink``) and Sentry's events API (``kind: sentry``, a fake): an event
carrying both passes and names them; one without the tag, or with another environment,
fails naming what is missing; an event from before the probe is not the probe's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk

from gates.backends.sentry import SentryErrors
from gates.backends.sink import SinkClient, SinkErrors
from sink.server import create_app
from sink.store import SinkDB
from tests.fakes.saas import FakeSentry
from tests.fakes.server import serve
from tests.gates.conftest import Build, judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = SinkDB(Path(tmp_path_factory.mktemp("sink")) / "sink.db")
    try:
        with serve(create_app(db)) as url:
            yield url
    finally:
        db.close()


def report(sink: str, trace_id: str, *, release: str, environment: str) -> None:
    """One error through the real sentry-sdk, continuing ``trace_id``, into the sink."""
    host = sink.split("//")[1]
    client = sentry_sdk.Client(f"http://readygate@{host}/1", release=release,
                               environment=environment, default_integrations=False,
                               _experiments={"transport_compression_algo": "gzip"})  # type: ignore[typeddict-item]
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        scope.generate_propagation_context({"sentry-trace": f"{trace_id}-00f067aa0ba902b7-1"})
        try:
            raise RuntimeError("storage failed")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
    client.flush(timeout=5)
    client.close()


def errors_in(sink: str) -> Build:
    return lambda http: SinkErrors(SinkClient(sink, http))


FAILED_UPLOAD: dict[str, object] = {"signal": "error_event", "journey": "upload", "deadline_s": 3}


def test_sentry_sdk_release_and_environment_pass_and_are_named(sink: str) -> None:
    trace = "a1" * 16
    probe = make_probe(ok=False, trace_id=trace)
    report(sink, trace, release="web@1.4.2", environment="production")
    r = judge_with({**FAILED_UPLOAD, "release": True, "environment": "production"},
                   probes=[probe], errors=errors_in(sink))
    assert r.status == "pass", r.message
    assert r.message.endswith("; release web@1.4.2, environment production")
    assert r.evidence["release"] == "web@1.4.2"


def test_another_environment_fails_naming_it(sink: str) -> None:
    trace = "b2" * 16
    probe = make_probe(ok=False, trace_id=trace)
    report(sink, trace, release="web@1.4.2", environment="staging")
    r = judge_with({**FAILED_UPLOAD, "environment": "production", "deadline_s": 1},
                   probes=[probe], errors=errors_in(sink))
    assert r.status == "fail" and "environment 'staging', not 'production'" in r.message, \
        r.message


def test_an_event_without_release_and_environment_tags_fails_naming_both() -> None:
    fake = FakeSentry(token="sntrys-t")
    with serve(fake.app()) as url:
        probe = make_probe(ok=False, trace_id=TRACE)
        fake.capture("StorageError: 500", trace_id=TRACE)  # tags: level and trace only
        r = judge_with({**FAILED_UPLOAD, "release": True, "environment": "production",
                        "deadline_s": 0.5}, probes=[probe],
                       errors=lambda http: SentryErrors(url, http, organization="acme",
                                                        project="web", token="sntrys-t"))
    assert r.status == "fail", r.message
    assert "carries no release tag and no environment tag" in r.message


def test_the_sentry_api_tags_list_satisfies_the_asks() -> None:
    fake = FakeSentry(token="sntrys-t")
    with serve(fake.app()) as url:
        probe = make_probe(ok=False, trace_id=TRACE)
        event = fake.capture("StorageError: 500", trace_id=TRACE)
        event["tags"] += [{"key": "release", "value": "web@2.0.0"},
                          {"key": "environment", "value": "production"}]
        r = judge_with({**FAILED_UPLOAD, "release": True, "environment": "production"},
                       probes=[probe],
                       errors=lambda http: SentryErrors(url, http, organization="acme",
                                                        project="web", token="sntrys-t"))
    assert r.status == "pass" and "release web@2.0.0" in r.message, r.message


def test_an_event_with_the_id_from_before_the_probe_is_not_its() -> None:
    fake = FakeSentry(token="sntrys-t")
    with serve(fake.app()) as url:
        probe = make_probe(ok=False, trace_id=TRACE)
        fake.capture("StorageError: 500", trace_id=TRACE, at=probe.started_at - 30)
        r = judge_with({**FAILED_UPLOAD, "deadline_s": 0.5}, probes=[probe],
                       errors=lambda http: SentryErrors(url, http, organization="acme",
                                                        project="web", token="sntrys-t"))
    assert r.status == "fail" and "arrived before the probe was sent" in r.message, r.message
