"""Load runs the gate's own journeys (or the user's locustfile) in Locust child processes.

The target is a small HTTP server of the test's own on 127.0.0.1 (not the demo): it
counts what arrives, checks the credentials the journeys send and can answer 500, so the
tests see the load from the server's side as well as from Locust's stats.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.events import Event, LoadStats, Note
from core.procs import ManagedProcess
from probes.journeys import Journey, build_catalog, resolve
from probes.spec import BrowserJourney, HttpJourney
from scenarios.config import Load
from scenarios.load import (
    LOCUSTFILE,
    SPEC_ENV,
    STATS_PLUGIN,
    LoadRunner,
    child_spec,
    parse_stats_line,
)
from tests.e2e.conftest import assert_all_stopped
from tests.fixtures.tls import https_server, make_pki

pytestmark = pytest.mark.anyio

PASSWORD = "pw-" + secrets.token_urlsafe(16)
API_KEY = "key-" + secrets.token_urlsafe(16)
PAYLOAD = b"readygate-load-payload " + secrets.token_bytes(16).hex().encode()


# -- the target ----------------------------------------------------------------------------

@dataclass
class Target:
    """What the test server saw."""

    hits: Counter[str] = field(default_factory=Counter)
    uncorrelated: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def total(self, *paths: str) -> int:
        with self.lock:
            return sum(self.hits[p] for p in paths)


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body or {}).encode()
            # One write: headers and body apart meet Nagle and delayed ACKs (40 ms stalls).
            self.wfile.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (status, len(data), data))

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            with target.lock:
                target.hits[path] += 1
                target.inflight += 1
                target.max_inflight = max(target.max_inflight, target.inflight)
                if not (self.headers.get("traceparent") and self.headers.get("X-Request-ID")):
                    target.uncorrelated.append(path)
            try:
                self._route(path, body)
            finally:
                with target.lock:
                    target.inflight -= 1

        def _route(self, path: str, body: bytes) -> None:
            if path == "/login":
                sent = json.loads(body or b"{}")
                if sent.get("password") != PASSWORD:
                    target.rejected.append(path)
                    return self._answer(401)
                return self._answer(200, {"token": "tok-" + secrets.token_hex(8)})
            if path == "/items":
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer tok-") or self.headers.get("X-Api-Key") != API_KEY:
                    target.rejected.append(path)
                    return self._answer(403)
                return self._answer(200, {"items": [1, 2]})
            if path == "/upload":
                if PAYLOAD not in body:
                    target.rejected.append(path)
                    return self._answer(400)
                return self._answer(201, {"id": "u1"})
            if path == "/fail":
                return self._answer(500, {"error": "boom"})
            if path == "/slow":
                time.sleep(0.2)
            return self._answer(200, {"ok": True})

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default 5 drops bursts (FIELD-NOTES)
    daemon_threads = True


@pytest.fixture
def target() -> Iterator[Target]:
    """The test's own HTTP server on a free loopback port."""
    state = Target()
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- journeys as users write them ----------------------------------------------------------

JOURNEYS = """\
journeys:
  browse:
    steps:
      - {name: get a, url: /a}
  buy:
    secrets: {api_key: "API_KEY"}
    steps:
      - name: log in
        method: POST
        url: /login
        json: {username: "{{username}}", password: "{{password}}"}
        expect: {status: 200}
        extract: {token: {json: $.token, secret: true}}
      - name: list items
        url: /items
        headers: {Authorization: "Bearer {{token}}", X-Api-Key: "{{api_key}}"}
      - name: upload
        method: POST
        url: /upload
        multipart: {file: {file: payload.bin}}
        expect: {status: 201}
  checkout:
    steps:
      - {name: cart, url: /a}
      - {name: pay, url: /fail}
      - {name: receipt, url: /receipt}
      - {name: clean up, url: /cleanup, always: true}
  slow:
    steps:
      - {name: wait, url: /slow}
browser_journeys:
  ui:
    steps:
      - {goto: /}
""".replace("API_KEY", API_KEY, 1)


@pytest.fixture
def journeys(tmp_path: Path, target: Target) -> dict[str, Journey]:
    """The journeys above, resolved as the scenario runner resolves them."""
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "journeys.yaml").write_text(JOURNEYS)
    (folder / "payload.bin").write_bytes(PAYLOAD)
    catalog = build_catalog([folder / "journeys.yaml"])
    resolved = resolve([], catalog, base_url=target.url, username="load-user",
                       password=PASSWORD)
    return {j.name: j for j in resolved}


# -- running load --------------------------------------------------------------------------

async def run_load(runner: LoadRunner, events: list[Event], until: Callable[[], bool],
                   timeout: float = 40.0, during: Callable[[], None] | None = None
                   ) -> dict[str, Any]:
    """Start, wait (bounded) until ``until()`` holds, stop; return the summary."""
    await runner.start()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, (events, runner.procs[0].log_tail(20))
            await asyncio.sleep(0.1)
        if during is not None:
            during()
    finally:
        summary = await runner.stop()
    return summary


def no_secret_in_cmdlines(pids: list[int]) -> None:
    """No child's argv (readable by every user of the machine) holds a secret."""
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline and API_KEY.encode() not in cmdline


def no_secret_in_files(workdir: Path) -> None:
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert files  # the logs and Locust's summary were written
    for path in files:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and API_KEY.encode() not in data, path


def load_stats(events: list[Event]) -> list[LoadStats]:
    return [e for e in events if isinstance(e, LoadStats)]


@pytest.mark.slow
async def test_weighted_journeys_run_in_ratio_with_per_step_stats_and_secrets_kept(
        target: Target, journeys: dict[str, Journey], tmp_path: Path) -> None:
    events: list[Event] = []
    workdir = tmp_path / "load"
    runner = LoadRunner(Load(users=4, spawn_rate=4, wait_min_s=0, wait_max_s=0.01,
                             stats_interval_s=0.5),
                        target.url, [(journeys["browse"], 3), (journeys["buy"], 1),
                                     (journeys["ui"], 2)],
                        workdir=workdir, emit=events.append)
    summary = await run_load(runner, events, lambda: target.total("/a", "/login") >= 400,
                             during=lambda: no_secret_in_cmdlines(runner.pids()))
    assert_all_stopped(runner.pids())
    browse, buy = target.hits["/a"], target.hits["/login"]
    assert 0.68 <= browse / (browse + buy) <= 0.82, target.hits  # 3:1 is 0.75
    # The journeys ran as the probes run them: credentials, extraction, files, correlation.
    assert target.hits["/items"] > 0 and target.hits["/upload"] > 0
    assert not target.rejected and not target.uncorrelated
    by_request = summary["by_request"]
    assert set(by_request) == {"browse: get a", "buy: log in", "buy: list items", "buy: upload"}
    assert all(v["failures"] == 0 for v in by_request.values()), by_request
    # Locust may stop a user between two steps of a journey, never before the first one.
    assert by_request["buy: log in"]["requests"] >= by_request["buy: upload"]["requests"]
    assert summary["failures"] == 0 and isinstance(summary["p95_ms"], float)
    assert summary["journeys"] == {"browse": 3, "buy": 1}
    stats = load_stats(events)
    assert stats[-1].final and not any(e.final for e in stats[:-1])
    assert any(float(e.stats["rps"]) > 0 for e in stats if not e.final)
    warnings = [e for e in events if isinstance(e, Note) and e.level == "warning"]
    assert len(warnings) == 1 and "ui" in warnings[0].message
    no_secret_in_files(workdir)
    assert PASSWORD not in str(summary) and API_KEY not in str(summary)


@pytest.mark.slow
async def test_distributed_load_counts_failed_steps_across_workers_and_stops_them_all(
        target: Target, journeys: dict[str, Journey], tmp_path: Path) -> None:
    events: list[Event] = []
    runner = LoadRunner(Load(users=4, spawn_rate=4, workers=2, wait_min_s=0, wait_max_s=0.05,
                             stats_interval_s=0.5),
                        target.url, [(journeys["checkout"], 1)], workdir=tmp_path / "load",
                        emit=events.append)
    # Until the failures reach the timeline while load runs (workers report every 0.5 s).
    summary = await run_load(runner, events, lambda: any(
        int(e.stats.get("failures") or 0) > 0 for e in load_stats(events)))
    assert [p.name for p in runner.procs] == ["locust-master", "locust-worker-1",
                                              "locust-worker-2"]
    assert_all_stopped(runner.pids())
    assert max(int(e.stats.get("connected_workers") or 0) for e in load_stats(events)) == 2
    by_request = summary["by_request"]
    # The failed step counts as failed; the step after it never ran; `always` ran anyway.
    assert by_request["checkout: pay"]["failures"] == by_request["checkout: pay"]["requests"] > 0
    assert by_request["checkout: cart"]["failures"] == 0
    assert by_request["checkout: clean up"]["failures"] == 0
    assert "checkout: receipt" not in by_request and target.hits["/receipt"] == 0
    assert summary["failures"] == by_request["checkout: pay"]["failures"]
    assert any("pay: GET /fail returned 500" in e["error"] for e in summary["errors"])
    assert any(float(e.stats["failures_per_s"]) > 0 for e in load_stats(events)[:-1])


@pytest.mark.slow
async def test_a_worker_started_elsewhere_gets_the_journeys_from_the_master(
        target: Target, journeys: dict[str, Journey], tmp_path: Path) -> None:
    """An external worker has no READYGATE_LOAD_SPEC: the master sends the journeys."""
    events: list[Event] = []
    runner = LoadRunner(Load(users=2, spawn_rate=2, external_workers=1, wait_min_s=0,
                             wait_max_s=0.05, stats_interval_s=0.5),
                        target.url, [(journeys["buy"], 1)], workdir=tmp_path / "load",
                        emit=events.append)
    worker: ManagedProcess | None = None

    def start_worker() -> bool:
        nonlocal worker
        if worker is None:
            master = runner.procs[0].argv
            port = master[master.index("--master-bind-port") + 1]
            worker = ManagedProcess("external-worker", [
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                "--master-host", "127.0.0.1", "--master-port", port],
                log_path=tmp_path / "external-worker.log")
            worker.start()  # with this process's environment, which has no spec
            assert worker.pid is not None
            assert f"{SPEC_ENV}=".encode() not in \
                Path(f"/proc/{worker.pid}/environ").read_bytes()
        return target.total("/upload") >= 5

    try:
        summary = await run_load(runner, events, start_worker)
    finally:
        if worker is not None:
            worker.stop()
    assert worker is not None and worker.pid is not None
    assert_all_stopped([*runner.pids(), worker.pid])
    assert not target.rejected, target.rejected  # the secrets arrived and were used
    assert summary["by_request"]["buy: upload"]["failures"] == 0


@pytest.mark.slow
async def test_users_run_journeys_concurrently_in_one_process(
        target: Target, journeys: dict[str, Journey], tmp_path: Path) -> None:
    """Eight users against a 200 ms endpoint overlap: the shared event loop never serializes."""
    events: list[Event] = []
    runner = LoadRunner(Load(users=8, spawn_rate=100, wait_min_s=0, wait_max_s=0),
                        target.url, [(journeys["slow"], 1)], workdir=tmp_path / "load",
                        emit=events.append)
    summary = await run_load(runner, events, lambda: target.total("/slow") >= 60)
    assert_all_stopped(runner.pids())
    assert target.max_inflight >= 6, target.max_inflight
    assert summary["failures"] == 0


@pytest.mark.slow
async def test_a_journeys_own_tls_is_used_under_load_as_by_the_probes(tmp_path: Path) -> None:
    """A private CA and a client certificate from the journey's tls: (mutual TLS)."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "journeys.yaml").write_text(f"""\
journeys:
  secure:
    tls: {{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key}}}
    steps:
      - {{name: home, url: /}}
  untrusted:
    steps:
      - {{name: home, url: /}}
""")
    with https_server(pki, require_client_cert=True) as (url, server):
        resolved = {j.name: j for j in resolve([], build_catalog([folder / "journeys.yaml"]),
                                                base_url=url)}
        events: list[Event] = []
        runner = LoadRunner(Load(users=2, spawn_rate=2, wait_min_s=0, wait_max_s=0.05,
                                 stats_interval_s=0.5),
                            url, [(resolved["secure"], 1), (resolved["untrusted"], 1)],
                            workdir=tmp_path / "load", emit=events.append)
        summary = await run_load(runner, events, lambda: len(server.seen) >= 10)
    assert_all_stopped(runner.pids())
    by_request = summary["by_request"]
    assert by_request["secure: home"]["failures"] == 0
    untrusted = by_request["untrusted: home"]
    assert untrusted["failures"] == untrusted["requests"] > 0
    assert any(e["name"] == "untrusted: home" and "CERTIFICATE_VERIFY_FAILED" in e["error"]
               for e in summary["errors"]), summary["errors"]


USER_LOCUSTFILE = """\
from locust import HttpUser, constant, task


class Shopper(HttpUser):
    wait_time = constant(0.01)

    @task
    def page(self):
        self.client.get("/custom", name="custom page")
"""


@pytest.mark.slow
async def test_a_users_own_locustfile_runs_and_its_stats_reach_the_timeline(
        target: Target, tmp_path: Path) -> None:
    locustfile = tmp_path / "mine" / "locustfile.py"
    locustfile.parent.mkdir()
    locustfile.write_text(USER_LOCUSTFILE)
    events: list[Event] = []
    runner = LoadRunner(Load(users=2, spawn_rate=2, locustfile=str(locustfile),
                             stats_interval_s=0.5),
                        target.url, [], workdir=tmp_path / "load", emit=events.append)
    summary = await run_load(runner, events, lambda: sum(
        1 for e in load_stats(events) if int(e.stats.get("requests") or 0) > 0) >= 2)
    assert_all_stopped(runner.pids())
    # running once both users run and requests went out (the baseline waits for it)
    assert summary["started_at"] < summary["running_at"] < summary["stopped_at"]
    assert any(isinstance(e, Note) and e.message.startswith("load running: 2 users")
               for e in events)
    assert target.hits["/custom"] > 0
    assert summary["by_request"]["custom page"]["requests"] > 0
    assert summary["locustfile"] == str(locustfile) and "journeys" not in summary
    assert load_stats(events)[-1].final


IDLE_LOCUSTFILE = """\
from locust import User, constant, task


class Idle(User):
    wait_time = constant(0.1)

    @task
    def nothing(self):
        pass
"""


@pytest.mark.slow
async def test_a_load_that_never_runs_is_not_waited_for_forever(target: Target,
                                                                tmp_path: Path) -> None:
    """Users that make no request never count as running; a Locust that exits ends the
    wait at once (the baseline then goes on with a warning, not a hang)."""
    idle = tmp_path / "idle.py"
    idle.write_text(IDLE_LOCUSTFILE)
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('no such locustfile setup')\n")
    events: list[Event] = []
    runner = LoadRunner(Load(users=2, spawn_rate=10, locustfile=str(idle),
                             stats_interval_s=0.5),
                        target.url, [], workdir=tmp_path / "idle", emit=events.append)
    await runner.start()
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.wait_running(), timeout=4)
        assert any(int(e.stats.get("active_users") or 0) == 2 for e in load_stats(events))
    finally:
        summary = await runner.stop()
    assert summary["running_at"] is None
    runner = LoadRunner(Load(users=2, locustfile=str(broken)), target.url, [],
                        workdir=tmp_path / "broken", emit=events.append)
    await runner.start()
    try:
        await asyncio.wait_for(runner.wait_running(), timeout=30)
        assert runner.running_at is None and not runner.procs[0].alive()
    finally:
        await runner.stop()
    assert_all_stopped(runner.pids())


# -- without Locust ------------------------------------------------------------------------

def _journey(name: str, spec: dict[str, Any], cls: type[HttpJourney | BrowserJourney]
             = HttpJourney) -> Journey:
    return Journey(name, cls.model_validate(spec), "http://127.0.0.1:1")


def test_distributed_argv_binds_the_master_where_configured() -> None:
    load = Load(workers=1, external_workers=2, master_bind_host="127.0.0.1")
    argvs = dict(LoadRunner(load, "http://127.0.0.1:1", [], workdir=Path("/nonexistent"),
                            emit=lambda e: None).argvs(master_port=5999))
    master = argvs["locust-master"]
    assert master[master.index("--expect-workers") + 1] == "3"  # local and external
    assert master[master.index("--master-bind-port") + 1] == "5999"
    worker = argvs["locust-worker-1"]
    assert worker[worker.index("--master-port") + 1] == "5999"
    assert "-u" not in worker  # workers take users from the master
    assert master[master.index("-f") + 1] == f"{LOCUSTFILE},{STATS_PLUGIN}"


def test_a_users_locustfile_runs_with_the_stats_plugin_in_every_process() -> None:
    load = Load(workers=1, locustfile="/srv/load/locustfile.py")
    for _name, argv in LoadRunner(load, "http://127.0.0.1:1/", [], workdir=Path("/x"),
                                  emit=lambda e: None).argvs(master_port=5999):
        assert argv[argv.index("-f") + 1] == f"/srv/load/locustfile.py,{STATS_PLUGIN}"
    argv = dict(LoadRunner(Load(locustfile="/srv/l.py"), "http://127.0.0.1:1/", [],
                           workdir=Path("/x"), emit=lambda e: None).argvs())["locust"]
    assert argv[argv.index("--host") + 1] == "http://127.0.0.1:1"


def test_a_target_with_credentials_reaches_locust_through_the_environment_only() -> None:
    host = "https://svc:url-s3cret@api.example.test"
    runner = LoadRunner(Load(workers=1, locustfile="/srv/l.py"), host, [], workdir=Path("/x"),
                        emit=lambda e: None)
    for _name, argv in runner.argvs(master_port=5999):
        assert "url-s3cret" not in " ".join(argv) and "--host" not in argv
    assert runner.child_env()["LOCUST_HOST"] == host
    assert "url-s3cret" not in str(runner.summary())
    plain = LoadRunner(Load(), "http://127.0.0.1:1", [], workdir=Path("/x"), emit=lambda e: None)
    assert "LOCUST_HOST" not in plain.child_env()


def test_the_spec_carries_each_journey_with_its_secrets_for_the_child_only() -> None:
    spec = {"secrets": {"key": "s3cret-value"}, "vars": {"who": "x"}, "steps": [
        {"name": "in", "url": "/in", "basic_auth": {"username": "u", "password": "basic-pw"},
         "json": {"a": "{{key}}"}, "expect": {"json": {"$.ok": True}},
         "extract": {"t": {"json": "$.t"}}}]}
    journey = _journey("j", spec)
    text = child_spec(Load(wait_min_s=0.2, wait_max_s=0.3), [(journey, 3)])
    doc = json.loads(text)
    assert {"wait_min_s": 0.2, "wait_max_s": 0.3}.items() <= doc.items()
    item = doc["journeys"][0]
    assert (item["name"], item["weight"], item["base_url"]) == ("j", 3, "http://127.0.0.1:1")
    assert "s3cret-value" in text and "basic-pw" in text and "**********" not in text
    again = HttpJourney.model_validate(item["spec"])
    assert again.secrets["key"].get_secret_value() == "s3cret-value"
    step = again.steps[0]
    assert step.basic_auth is not None and step.basic_auth.password.get_secret_value() == \
        "basic-pw"
    assert again.model_dump(exclude={"secrets", "steps"}) == \
        journey.spec.model_dump(exclude={"secrets", "steps"})
    assert step.expect == journey.spec.steps[0].expect  # type: ignore[union-attr]


async def test_load_of_browser_journeys_only_is_a_config_error(tmp_path: Path) -> None:
    ui = _journey("ui", {"steps": [{"goto": "/"}]}, BrowserJourney)
    runner = LoadRunner(Load(), "http://127.0.0.1:1", [(ui, 1)], workdir=tmp_path,
                        emit=lambda e: None)
    with pytest.raises(ConfigError, match=r"scenario.load.journeys: load has no HTTP journey "
                                          r"to run \(browser journeys are skipped: ui\)"):
        await runner.start()
    assert runner.procs == []


async def test_journeys_too_large_for_the_environment_are_a_config_error(
        tmp_path: Path) -> None:
    big = _journey("big", {"steps": [{"url": "/", "method": "POST",
                                      "body": {"text": "x" * 200_000}}]})
    runner = LoadRunner(Load(), "http://127.0.0.1:1", [(big, 1)], workdir=tmp_path,
                        emit=lambda e: None)
    with pytest.raises(ConfigError, match="move large inline bodies to files"):
        await runner.start()
    assert runner.procs == []


async def test_a_locustfile_path_with_a_comma_is_a_config_error(tmp_path: Path) -> None:
    runner = LoadRunner(Load(locustfile="/srv/a,b.py"), "http://127.0.0.1:1", [],
                        workdir=tmp_path, emit=lambda e: None)
    with pytest.raises(ConfigError, match=r"scenario\.load\.locustfile: .*comma"):
        await runner.start()


def test_only_stats_lines_are_parsed() -> None:
    assert parse_stats_line('READYGATE_LOAD {"rps": 1.5}') == {"rps": 1.5}
    assert parse_stats_line("Type     Name  # reqs") is None
    assert parse_stats_line("READYGATE_LOAD not json") is None
