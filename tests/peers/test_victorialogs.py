"""The ``victorialogs`` logs kind (LogsQL) against a real VictoriaLogs: lines shipped through
its JSON-lines ingestion API, and the real demo services' logs over OTLP."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import BackendError, ConfigError
from core.procs import ProcessSet, start_python_service
from demo.stack import free_port
from gates.backends.config import SignalBackend
from gates.backends.registry import build
from gates.backends.victorialogs import VictoriaLogs
from readygate.config import parse_config
from tests.fixtures.demo_system import api_token
from tests.gates.conftest import judge_with, make_probe
from tests.peers.conftest import peer_binary, running

SECRET = "pw-Very-Secret-123"


@pytest.fixture(scope="module")
def vl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = peer_binary("victorialogs")
    tmp = tmp_path_factory.mktemp("vl")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running("victoria-logs", [str(binary), f"-httpListenAddr=127.0.0.1:{port}",
                                   f"-storageDataPath={tmp / 'data'}", "-loggerLevel=WARN"],
                 tmp) as peer:
        peer.wait_http(url + "/health", ok=lambda r: r.status_code == 200)
        yield url


def ship(url: str, *records: dict[str, Any]) -> None:
    """POST records to VictoriaLogs' JSON-lines ingestion (``service`` is the stream)."""
    body = "\n".join(json.dumps(r) for r in records) + "\n"
    resp = httpx.post(url + "/insert/jsonline", content=body, timeout=5, params={
        "_stream_fields": "service", "_msg_field": "msg"})
    assert resp.status_code == 200, resp.text
    # VictoriaLogs makes fresh lines searchable about a second later; the secret scan reads
    # its window once, so make them visible now
    assert httpx.get(url + "/internal/force_flush", timeout=5).status_code == 200


def logs(url: str, logsql: str = "*") -> Any:
    # built through the registry, as `backends.logs: {kind: victorialogs, url: ...}` is
    return lambda http: build("logs", SignalBackend(kind="victorialogs", url=url,
                                                    logsql=logsql), http, None)


def test_victorialogs_config_and_query_need_no_server() -> None:
    config = parse_config("backends:\n  logs: {kind: victorialogs, url: http://127.0.0.1:1,"
                          " logsql: '{service=\"web\"}'}\n", "r.yaml")
    assert config.backends.logs is not None and config.backends.logs.logsql == '{service="web"}'
    with pytest.raises(ConfigError, match=r"r.yaml:2 backends.logs: a victorialogs backend "
                                          r"needs 'url'"):
        parse_config("backends:\n  logs: {kind: victorialogs}\n", "r.yaml")
    vl = VictoriaLogs("http://x", httpx.AsyncClient(), logsql='{service="web"}')
    query = vl.query(trace_id="AB" * 16, limit=5)
    assert query.startswith('({service="web"}) AND ("trace_id":="' + "ab" * 16 + '" OR ')
    assert query.endswith(f' OR "{"ab" * 16}") | sort by (_time) | limit 5')
    assert vl.describe_query(contains='say "hi"') == \
        'LogsQL ({service="web"}) AND "say \\"hi\\"" | sort by (_time) | limit 1000'


def test_logs_check_finds_the_trace_id_and_names_the_near_miss(vl: str) -> None:
    trace, rid = secrets.token_hex(16), "r-" + secrets.token_hex(4)
    ship(vl, {"service": "web", "level": "info", "msg": "upload", "request_id": rid})
    def probe() -> Any:  # made per look: a probe must fall inside the check's phase
        return make_probe(trace_id=trace, request_id=rid)

    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 1}, phase="baseline",
                   probes=[probe()], logs=logs(vl))
    assert r.status == "fail" and "request id but not its trace id" in r.message
    r = judge_with({"signal": "logs", "journey": "upload", "by": "request_id",
                    "deadline_s": 5}, phase="baseline", probes=[probe()], logs=logs(vl))
    assert r.status == "pass" and r.evidence["backend"] == "victorialogs", r.message
    ship(vl, {"service": "web", "level": "info", "msg": "upload", "trace_id": trace})
    r = judge_with({"signal": "logs", "journey": "upload", "services": ["web"],
                    "deadline_s": 5}, phase="baseline", probes=[probe()], logs=logs(vl))
    assert r.status == "pass", r.message
    # the configured filter narrows every look: another service's stream finds nothing
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 1}, phase="baseline",
                   probes=[probe()], logs=logs(vl, '{service="db"}'))
    assert r.status == "fail", r.message


def test_log_levels_and_fields_on_victorialogs(vl: str) -> None:
    bad, good = secrets.token_hex(16), secrets.token_hex(16)
    ship(vl, {"service": "web", "level": "INFO", "msg": "upload failed", "trace_id": bad},
         {"service": "web", "level": "ERROR", "msg": "upload failed", "trace_id": good,
          "request_id": "r-1"})
    check = {"signal": "log_levels", "journey": "upload", "deadline_s": 5}
    r = judge_with(check, probes=[make_probe(ok=False, trace_id=good)], logs=logs(vl))
    assert r.status == "pass", r.message
    r = judge_with({**check, "deadline_s": 1}, probes=[make_probe(ok=False, trace_id=bad)],
                   logs=logs(vl))
    assert r.status == "fail" and "not logged at ERROR" in r.message
    fields = {"signal": "log_fields", "journey": "upload", "deadline_s": 1,
              "fields": ["level", "service", "trace_id", "request_id"]}
    r = judge_with(fields, phase="baseline", probes=[make_probe(trace_id=good)], logs=logs(vl))
    assert r.status == "pass", r.message
    r = judge_with(fields, phase="baseline", probes=[make_probe(trace_id=bad)], logs=logs(vl))
    assert r.status == "fail" and "lack 'request_id'" in r.message


def test_secret_leak_pass_fail_and_no_data_on_victorialogs(vl: str) -> None:
    trace = secrets.token_hex(16)
    check = {"signal": "secret_leak", "phase": "baseline", "journey": "login",
             "deadline_s": 2}
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id="9" * 32)],
                   secrets=[SECRET], logs=logs(vl, '{service="auth"}'))
    assert r.status == "fail" and "proves nothing" in r.message  # an empty store proves nothing
    ship(vl, {"service": "auth", "level": "info", "msg": "login ok", "trace_id": trace})
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id=trace)],
                   secrets=[SECRET], logs=logs(vl, '{service="auth"}'))
    assert r.status == "pass", r.message
    ship(vl, {"service": "auth", "level": "debug", "msg": f"login password={SECRET}"})
    r = judge_with({**check, "deadline_s": 5}, phase="baseline",
                   probes=[make_probe("login", trace_id=trace)], secrets=[SECRET],
                   logs=logs(vl, '{service="auth"}'))
    assert r.status == "fail" and "secret #1 appears in 1 log line(s)" in r.message
    assert SECRET not in r.message and SECRET not in str(r.evidence)


def test_a_bad_logsql_filter_is_could_not_look_not_a_verdict(vl: str) -> None:
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 1}, phase="baseline",
                   probes=[make_probe()], logs=logs(vl, "service:(("))
    assert r.status == "error" and "victorialogs answered 400" in r.message

    async def unreachable() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            await VictoriaLogs("http://127.0.0.1:9", http).lines(trace_id="a" * 32)
    with pytest.raises(BackendError, match="victorialogs unreachable"):
        asyncio.run(unreachable())


def test_demo_services_ship_logs_over_otlp_to_victorialogs(vl: str, tmp_path: Path) -> None:
    """The real demo web and storage send their OTLP logs to VictoriaLogs."""
    procs = ProcessSet()
    otlp = vl + "/insert/opentelemetry"  # the demo appends /v1/logs (and /v1/traces)
    try:
        storage = asyncio.run(start_python_service(
            procs, "storage", "demo.storage", ["--sink-url", otlp], log_dir=tmp_path))
        web = asyncio.run(start_python_service(
            procs, "web", "demo.web", ["--storage-url", str(storage.url), "--sink-url", otlp],
            env={"DEMO_PASSWORD": "pw-peer-test-1", "DEMO_USER": "demo"}, log_dir=tmp_path))
        base = str(web.url)
        token = api_token(base, "demo", "pw-peer-test-1")
        trace = secrets.token_hex(16)
        resp = httpx.post(base + "/api/uploads", files={"file": ("p.bin", b"x" * 64)},
                          headers={"Authorization": f"Bearer {token}",
                                   "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"},
                          timeout=10)
        assert resp.status_code == 201, resp.text
        r = judge_with({"signal": "logs", "journey": "upload", "services": ["web", "storage"],
                        "deadline_s": 15}, phase="baseline",
                       probes=[make_probe(trace_id=trace)], logs=logs(vl))
        assert r.status == "pass", r.message
    finally:
        procs.stop_all()
