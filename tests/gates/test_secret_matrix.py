"""secret_leak against every log backend (readygate's sink, JSON-lines files, and the Loki
and Elasticsearch fakes): it fails for a secret logged in any encoding (URL, base64 Basic
header, JSON/HTML escapes, hex, split over two fields, a start-up dump before the run),
passes on clean logs, and never calls a window it could not read to its end clean."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.redact import encodings, find_leaks
from gates.backends.elasticsearch import ElasticsearchLogs
from gates.backends.jsonl import JsonLinesLogs
from gates.backends.loki import LokiLogs
from gates.backends.sink import SinkClient, SinkLogs
from gates.backends.types import IncompleteWindow, LogLine
from gates.context import Anchors
from reports.model import CheckResult
from tests.fakes.logs import FakeElasticsearch, FakeLoki
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe
from tests.sink.conftest import Sink, start_sink

NASTY = 'pä"ss\\wörd&%+ '  # quote, backslash, non-ASCII, &, %, +, space (a suffix follows)
BACKENDS = ["sink", "jsonl", "loki", "elasticsearch"]
ENCODINGS = sorted(encodings(NASTY))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


class Store:
    """One log backend under test: write records into it, build its client."""

    kind = ""

    def push(self, record: dict[str, Any], ts: float) -> None:
        """Store one structured record (``message`` plus fields) written at ``ts``."""
        raise NotImplementedError

    def backend(self, http: httpx.AsyncClient) -> Any:
        raise NotImplementedError

    @property
    def backdates(self) -> bool:
        """Whether a record's own time places it in the window (the sink uses arrival)."""
        return True


class SinkStore(Store):
    kind = "sink"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    @property
    def backdates(self) -> bool:
        return False

    def push(self, record: dict[str, Any], ts: float) -> None:
        attrs = [{"key": k, "value": {"stringValue": str(v)}} for k, v in record.items()
                 if k not in ("message", "trace_id")]
        doc = {"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "web"}}]},
            "scopeLogs": [{"logRecords": [{
                "timeUnixNano": str(int(ts * 1e9)), "severityText": "INFO",
                "body": {"stringValue": record.get("message", "")},
                "traceId": record.get("trace_id", ""), "attributes": attrs}]}]}]}
        resp = self.sink.post("/v1/logs", json.dumps(doc).encode(),
                              {"Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text

    def backend(self, http: httpx.AsyncClient) -> Any:
        return SinkLogs(SinkClient(self.sink.url, http))


class JsonlStore(Store):
    kind = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def push(self, record: dict[str, Any], ts: float) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"ts": _iso(ts), "service": "web", **record}) + "\n")

    def backend(self, http: httpx.AsyncClient) -> Any:
        return JsonLinesLogs(str(self.path))


class LokiStore(Store):
    kind = "loki"

    def __init__(self, fake: FakeLoki, url: str) -> None:
        self.fake, self.url = fake, url

    def push(self, record: dict[str, Any], ts: float) -> None:
        self.fake.push({"service_name": "web"}, record, ts=ts)

    def backend(self, http: httpx.AsyncClient) -> Any:
        return LokiLogs(self.url, http, selector='{service_name=~".+"}')


class EsStore(Store):
    kind = "elasticsearch"

    def __init__(self, fake: FakeElasticsearch, url: str) -> None:
        self.fake, self.url = fake, url

    def push(self, record: dict[str, Any], ts: float) -> None:
        self.fake.index("logs-web", {"@timestamp": _iso(ts), "service": {"name": "web"},
                                     **record})

    def backend(self, http: httpx.AsyncClient) -> Any:
        return ElasticsearchLogs(self.url, http, index="logs-*")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Store]]:
    """Every backend, shared by the module: each test uses its own secret and trace id."""
    tmp = tmp_path_factory.mktemp("secret-matrix")
    sink = start_sink("sink-matrix", [f"--db={tmp / 'sink.db'}", "--grpc-listen=off"], tmp)
    loki, es = FakeLoki(), FakeElasticsearch()
    try:
        with serve(loki.app()) as loki_url, serve(es.app()) as es_url:
            yield {"sink": SinkStore(sink), "jsonl": JsonlStore(tmp / "web.log"),
                   "loki": LokiStore(loki, loki_url),
                   "elasticsearch": EsStore(es, es_url)}
    finally:
        sink.stop()


def fresh() -> tuple[str, str]:
    """A secret of this test alone (the stores are shared) and a trace id."""
    return NASTY + secrets.token_hex(4), secrets.token_hex(16)


def scan(store: Store, secret: str, trace: str, *, run_start: float | None = None,
         **check: Any) -> CheckResult:
    """Judge secret_leak (baseline, the login probe of ``trace``) against ``store``."""
    start = run_start if run_start is not None else time.time() - 1.0
    return judge_with({"signal": "secret_leak", "phase": "baseline", "journey": "login",
                       "deadline_s": 2, **check}, phase="baseline",
                      anchors=Anchors(phase_start={"baseline": start}),
                      probes=[make_probe("login", trace_id=trace, at=start + 0.01)],
                      secrets=[secret], logs=store.backend)


def assert_masked(result: CheckResult, secret: str) -> None:
    text = result.message + json.dumps(result.evidence, ensure_ascii=False)
    assert find_leaks(text, [secret]) == [], text


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_secret_logged_in_any_encoding_fails_the_check(
        stores: dict[str, Store], backend: str, encoding: str) -> None:
    store = stores[backend]
    secret, trace = fresh()
    encoded = encodings(secret, "demo")[encoding]
    store.push({"level": "info", "message": f"login request {encoded} ok", "trace_id": trace},
               time.time())
    r = scan(store, secret, trace)
    assert r.status == "fail", r.message
    assert "secret leaked into the logs: secret #1 appears in 1 log line(s) from web" \
        in r.message
    assert_masked(r, secret)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_secret_split_over_two_fields_fails_the_check(stores: dict[str, Store],
                                                        backend: str) -> None:
    store = stores[backend]
    secret, trace = fresh()
    half = len(secret) // 2
    store.push({"message": "login attempt", "trace_id": trace, "user": "demo",
                "pw_head": secret[:half], "pw_tail": secret[half:]}, time.time())
    r = scan(store, secret, trace)
    assert r.status == "fail" and "secret #1 appears in 1 log line(s)" in r.message, r.message
    assert_masked(r, secret)
    assert secret[:half] not in r.message and secret[half:] not in r.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_clean_logs_pass(stores: dict[str, Store], backend: str) -> None:
    store = stores[backend]
    secret, trace = fresh()
    # a near miss, closed by "-": the joined view (split secrets) concatenates field values,
    # so a value ending in all but the secret's last character, followed by a value that
    # starts with it (a timestamp's "2"), would be the secret whole
    store.push({"message": f"login ok password=*** almost={secret[:-1]}-", "trace_id": trace,
                "auth": "Basic ZGVtbzpvdGhlci1wYXNzd29yZA=="}, time.time())
    r = scan(store, secret, trace)
    assert r.status == "pass", r.message
    assert "none of 1 secret(s) appears in any encoding" in r.message
    assert r.evidence["lines_scanned"] >= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_startup_dump_before_the_run_is_in_the_window(stores: dict[str, Store],
                                                        backend: str) -> None:
    store = stores[backend]
    secret, trace = fresh()
    now = time.time()
    if store.backdates:
        run_start = now
        store.push({"message": "web config", "password": secret}, now - 600)
    else:  # the sink times lines by arrival: the run begins after the dump arrived
        store.push({"message": "web config", "password": secret}, now)
        time.sleep(0.05)
        run_start = time.time()
    store.push({"message": "login ok", "trace_id": trace}, run_start + 0.02)
    r = scan(store, secret, trace, run_start=run_start)
    assert r.status == "fail" and "secret #1 appears" in r.message, r.message
    assert_masked(r, secret)
    # only the run itself (lookback 0): the dump is outside, and that is what it says
    r = scan(store, secret, trace, run_start=run_start, lookback_s=0)
    assert r.status == "pass", r.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_window_longer_than_max_lines_is_an_error_not_a_pass(stores: dict[str, Store],
                                                               backend: str) -> None:
    store = stores[backend]
    secret, trace = fresh()
    for n in range(3):
        store.push({"message": f"line {n}", "trace_id": trace}, time.time())
    r = scan(store, secret, trace, max_lines=2)
    assert r.status == "error" and "could not scan the whole log window" in r.message, \
        r.message
    # a leak found in what could be read is still a leak
    store.push({"message": f"password={secret}", "trace_id": trace}, time.time())
    r = scan(store, secret, trace, max_lines=10_000)
    assert r.status == "fail"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_line_of_the_probe_is_a_fail(stores: dict[str, Store], backend: str) -> None:
    secret, _ = fresh()
    r = scan(stores[backend], secret, secrets.token_hex(16), deadline_s=0.3)
    assert r.status == "fail" and "proves nothing" in r.message


# -- paging through a window --------------------------------------------------------------

async def _read(pages: Any) -> tuple[list[LogLine], str | None]:
    out: list[LogLine] = []
    try:
        async for page in pages:
            out += page
    except IncompleteWindow as exc:
        return out, str(exc)
    return out, None


def test_loki_pages_through_lines_sharing_a_timestamp() -> None:
    fake = FakeLoki()
    t0 = time.time() - 5
    for n in range(8):  # pairs of lines share one nanosecond
        fake.push({"service_name": "web"}, {"msg": f"m{n}"}, ts=t0 + n // 2)
    with serve(fake.app()) as url:
        async def go() -> tuple[list[LogLine], str | None]:
            async with httpx.AsyncClient(trust_env=False) as http:
                logs = LokiLogs(url, http, selector='{service_name="web"}')
                return await _read(logs.window(t0 - 1, page_size=3))
        lines, problem = asyncio.run(go())
    assert problem is None
    assert sorted(line.body for line in lines) == [f"m{n}" for n in range(8)]


def test_sink_pages_by_arrival_and_says_when_it_cannot(stores: dict[str, Store]) -> None:
    store = stores["sink"]
    assert isinstance(store, SinkStore)
    since = time.time()
    tag = secrets.token_hex(4)
    for n in range(7):
        store.push({"message": f"{tag} {n}"}, time.time())

    async def go(page_size: int) -> tuple[list[LogLine], str | None]:
        async with httpx.AsyncClient(trust_env=False) as http:
            return await _read(store.backend(http).window(since, page_size=page_size))

    lines, problem = asyncio.run(go(3))
    assert problem is None
    assert [line.body for line in lines if line.body.startswith(tag)] == \
        [f"{tag} {n}" for n in range(7)]
    # one OTLP request's lines arrive at one instant: more of them than a page cannot be
    # paged past, and the window says so instead of ending early
    since = time.time()
    doc = {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": [
        {"body": {"stringValue": f"batch {n}"}} for n in range(5)]}]}]}
    assert store.sink.post("/v1/logs", json.dumps(doc).encode(),
                           {"Content-Type": "application/json"}).status_code == 200
    lines, problem = asyncio.run(go(3))
    assert problem is not None and "one instant" in problem


def test_elasticsearch_without_sort_values_cannot_page_and_says_so() -> None:
    fake = FakeElasticsearch()
    for n in range(4):
        fake.index("logs-web", {"@timestamp": _iso(time.time()), "message": f"m{n}"})
    with serve(fake.app()) as url:
        async def go(page_size: int) -> tuple[list[LogLine], str | None]:
            async with httpx.AsyncClient(trust_env=False) as http:
                logs = ElasticsearchLogs(url, http, index="logs-*")
                return await _read(logs.window(time.time() - 60, page_size=page_size))
        lines, problem = asyncio.run(go(10))
        assert problem is None and len(lines) == 4
        lines, problem = asyncio.run(go(3))
    assert problem is not None and "cannot page on" in problem
    assert fake.bodies[-1]["sort"][-1] == {"_doc": "asc"}
