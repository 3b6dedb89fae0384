"""The demo services behave, and emit the evidence readygate checks, as documented.

Each sabotage knob gets a test showing the evidence really goes missing, so the
checks that look for it can be shown to fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.procs import ManagedProcess
from tests.fixtures.demo_system import Demo, api_token, eventually, traceparent


def _url(proc: ManagedProcess) -> str:
    assert proc.url is not None
    return proc.url


def _upload(base_url: str, token: str, data: bytes, headers: dict[str, str] | None = None
            ) -> httpx.Response:
    return httpx.post(base_url + "/api/uploads", files={"file": ("probe.bin", data)},
                      headers={"Authorization": f"Bearer {token}", **(headers or {})},
                      timeout=10.0)


def _trace(demo: Demo, trace_id: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = demo.sink_get(f"/api/traces/{trace_id}").json()["spans"]
    return spans


def _stderr_records(proc: ManagedProcess) -> list[dict[str, Any]]:
    assert proc.log_path is not None
    records = []
    for line in proc.log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


# ---- health -------------------------------------------------------------------------


def test_health_live_and_ready_are_200_while_storage_is_up(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "checks": {"storage": "ok"}}
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_health_and_ready_go_503_when_storage_is_stopped(demo: Demo) -> None:
    web = demo.web(storage="storage-stopping")
    storage = demo.storage("storage-stopping")
    base = _url(web)
    assert httpx.get(base + "/health/ready").status_code == 200
    storage.stop()
    resp = httpx.get(base + "/health", timeout=5.0)
    assert resp.status_code == 503
    assert resp.json()["checks"] == {"storage": "down"}
    assert httpx.get(base + "/health/ready", timeout=5.0).status_code == 503
    assert httpx.get(base + "/health/live", timeout=5.0).status_code == 200


@pytest.mark.parametrize(("knob", "path"), [("health_ignores_storage", "/health"),
                                            ("ready_always_200", "/health/ready")])
def test_health_sabotage_answers_200_with_storage_down(demo: Demo, knob: str, path: str) -> None:
    demo.dead_storage()
    base = _url(demo.web(knob, storage="storage-dead"))
    assert httpx.get(base + path, timeout=5.0).status_code == 200


# ---- login --------------------------------------------------------------------------


def test_api_login_accepts_the_password_and_rejects_a_wrong_one(demo: Demo,
                                                               client: httpx.Client) -> None:
    good = client.post("/api/login", json={"username": demo.user, "password": demo.password})
    assert good.status_code == 200
    assert good.json()["user"] == "demo" and good.json()["token"]
    assert "httponly" in good.headers["set-cookie"].lower()
    bad = client.post("/api/login", json={"username": demo.user, "password": "wrong"})
    assert bad.status_code == 401
    assert bad.json() == {"error": "invalid credentials"}


def test_api_auth_accepts_cookie_bearer_and_basic_and_refuses_none(demo: Demo,
                                                                   web: ManagedProcess) -> None:
    base = _url(web)
    files = {"file": ("a.txt", b"a")}
    assert httpx.post(base + "/api/uploads", files=files).status_code == 401
    token = api_token(base, demo.user, demo.password)
    bearer = httpx.post(base + "/api/uploads", files=files,
                        headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 201
    basic = base64.b64encode(f"{demo.user}:{demo.password}".encode()).decode()
    assert httpx.post(base + "/api/uploads", files=files,
                      headers={"Authorization": f"Basic {basic}"}).status_code == 201
    login = httpx.post(base + "/api/login", headers={"Authorization": f"Basic {basic}"})
    assert login.status_code == 200 and login.json()["token"]
    wrong = base64.b64encode(f"{demo.user}:nope".encode()).decode()
    assert httpx.post(base + "/api/uploads", files=files,
                      headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    with httpx.Client(base_url=base) as session:
        session.post("/api/login", json={"username": demo.user, "password": demo.password})
        assert session.post("/api/uploads", files=files).status_code == 201


def _csrf(session: httpx.Client) -> str:
    page = session.get("/login")
    assert page.status_code == 200
    match = re.search(r"name='csrf_token' value='([^']+)'", page.text)
    assert match, page.text
    return match.group(1)


def test_form_login_redirects_to_upload_and_sets_an_httponly_session(
        demo: Demo, web: ManagedProcess) -> None:
    with httpx.Client(base_url=_url(web)) as session:
        assert session.get("/upload").headers["location"] == "/login"
        token = _csrf(session)
        resp = session.post("/login", data={"username": demo.user, "password": demo.password,
                                            "csrf_token": token})
        assert resp.status_code == 303 and resp.headers["location"] == "/upload"
        assert "session=" in resp.headers["set-cookie"]
        assert "httponly" in resp.headers["set-cookie"].lower()
        page = session.get("/upload")
        assert page.status_code == 200 and "multipart/form-data" in page.text
        done = session.post("/upload", files={"file": ("f.txt", b"form upload")})
        assert done.status_code == 200
        assert hashlib.sha256(b"form upload").hexdigest() in done.text


def test_form_login_rejects_a_wrong_password_and_a_bad_csrf_token(
        demo: Demo, web: ManagedProcess) -> None:
    with httpx.Client(base_url=_url(web)) as session:
        token = _csrf(session)
        wrong = session.post("/login", data={"username": demo.user, "password": "nope",
                                             "csrf_token": token})
        assert wrong.status_code == 401 and "Invalid username or password" in wrong.text
        forged = session.post("/login", data={"username": demo.user,
                                              "password": demo.password,
                                              "csrf_token": "forged"})
        assert forged.status_code == 401 and "CSRF" in forged.text
        assert "session" not in session.cookies


# ---- uploads and pages --------------------------------------------------------------


def test_upload_reads_back_with_the_same_sha256_then_deletes(demo: Demo,
                                                             web: ManagedProcess) -> None:
    base = _url(web)
    token = api_token(base, demo.user, demo.password)
    auth = {"Authorization": f"Bearer {token}"}
    data = bytes(range(256)) * 40
    created = _upload(base, token, data)
    assert created.status_code == 201
    body = created.json()
    assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    back = httpx.get(f"{base}/api/uploads/{body['id']}", headers=auth)
    assert back.status_code == 200
    assert hashlib.sha256(back.content).hexdigest() == body["sha256"]
    assert httpx.delete(f"{base}/api/uploads/{body['id']}", headers=auth).status_code == 204
    assert httpx.get(f"{base}/api/uploads/{body['id']}", headers=auth).status_code == 404


def test_runbooks_exist_for_the_demo_alerts_only(client: httpx.Client) -> None:
    for name in ("ServiceDown", "HighErrorRate", "SlowRequests", "UploadFailureSpike"):
        resp = client.get(f"/runbooks/{name}")
        assert resp.status_code == 200 and name in resp.text
    assert client.get("/runbooks/NoSuchAlert").status_code == 404


# ---- traces ---------------------------------------------------------------------------


def test_client_traceparent_yields_one_trace_across_web_and_storage(
        demo: Demo, web: ManagedProcess) -> None:
    base = _url(web)
    token = api_token(base, demo.user, demo.password)
    trace_id, parent_id, header = traceparent()
    assert _upload(base, token, b"traced", {"traceparent": header}).status_code == 201

    def both_services() -> list[dict[str, Any]] | None:
        spans = _trace(demo, trace_id)
        return spans if {s["service"] for s in spans} >= {"web", "storage"} else None

    spans = eventually(both_services, what=f"spans of trace {trace_id} from web and storage")
    server = next(s for s in spans if s["service"] == "web" and s["kind"] == "SERVER")
    assert server["parent_span_id"] == parent_id
    assert server["name"] == "POST /api/uploads"
    assert server["attributes"]["http.route"] == "/api/uploads"
    client_span = next(s for s in spans if s["kind"] == "CLIENT")
    storage_span = next(s for s in spans if s["service"] == "storage")
    assert storage_span["parent_span_id"] == client_span["span_id"]
    assert storage_span["name"] == "PUT /objects/{object_id}"


def test_no_propagation_leaves_storage_out_of_the_trace(demo: Demo) -> None:
    base = _url(demo.web("no_propagation"))
    token = api_token(base, demo.user, demo.password)
    trace_id, _, header = traceparent()
    request_id = "noprop-" + trace_id[:8]
    resp = _upload(base, token, b"x", {"traceparent": header, "X-Request-ID": request_id})
    assert resp.status_code == 201
    # Storage's own access line (same request id) proves its telemetry has arrived, so
    # the absence of its spans from the trace below is not just lateness.
    storage_logs = eventually(lambda: demo.sink_logs(request_id=request_id, service="storage"),
                              what="storage log lines of the request")
    assert all(log["trace_id"] != trace_id for log in storage_logs)
    eventually(lambda: len(_trace(demo, trace_id)) >= 2, what="web server and client span")
    assert {s["service"] for s in _trace(demo, trace_id)} == {"web"}


# ---- logs -----------------------------------------------------------------------------


def test_logs_carry_the_trace_id_on_stderr_and_in_the_sink(demo: Demo,
                                                           web: ManagedProcess) -> None:
    trace_id, _, header = traceparent()
    request_id = "logs-" + trace_id[:8]
    resp = httpx.get(_url(web) + "/health", headers={"traceparent": header,
                                                     "X-Request-ID": request_id})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == request_id
    logs = eventually(lambda: demo.sink_logs(trace_id=trace_id, service="web"),
                      what="web logs with the trace id")
    access = logs[-1]
    assert access["attributes"]["request_id"] == request_id
    assert {"method", "route", "status", "duration_ms"} <= set(access["attributes"])
    assert access["attributes"]["route"] == "/health"
    assert access["span_id"]
    # The storage side of the health check logs under the same trace and request id.
    eventually(lambda: demo.sink_logs(trace_id=trace_id, service="storage"),
               what="storage logs with the trace id")
    line = eventually(lambda: [r for r in _stderr_records(web)
                               if r.get("request_id") == request_id], what="stderr line")[-1]
    assert line["trace_id"] == trace_id and line["level"] == "INFO"
    assert {"ts", "service", "message", "span_id", "method", "route", "status",
            "duration_ms"} <= set(line)


def test_no_trace_ids_in_logs_strips_them_everywhere(demo: Demo) -> None:
    web = demo.web("no_trace_ids_in_logs")
    trace_id, _, header = traceparent()
    request_id = "noids-" + trace_id[:8]
    httpx.get(_url(web) + "/health/live", headers={"traceparent": header,
                                                   "X-Request-ID": request_id})
    logs = eventually(lambda: demo.sink_logs(request_id=request_id, service="web"),
                      what="web logs by request id")
    assert all(not log["trace_id"] and not log["span_id"] for log in logs)
    assert demo.sink_logs(trace_id=trace_id) == []
    lines = [r for r in _stderr_records(web) if r.get("request_id") == request_id]
    assert lines and all(r["trace_id"] is None and r["span_id"] is None for r in lines)


# ---- errors ---------------------------------------------------------------------------


def _failed_upload(demo: Demo, web: ManagedProcess) -> tuple[str, str]:
    base = _url(web)
    token = api_token(base, demo.user, demo.password)
    trace_id, _, header = traceparent()
    request_id = "fail-" + trace_id[:8]
    resp = _upload(base, token, b"doomed", {"traceparent": header, "X-Request-ID": request_id})
    assert resp.status_code == 502
    assert resp.json() == {"error": "storage failed"}
    return trace_id, request_id


def test_upload_with_storage_down_reports_an_error_and_logs_at_error(demo: Demo) -> None:
    demo.dead_storage()
    trace_id, request_id = _failed_upload(demo, demo.web(storage="storage-dead"))
    errors = eventually(lambda: demo.sink_get("/api/errors", trace_id=trace_id).json()["errors"],
                        what="error event for the trace")
    event = errors[0]
    assert event["service"] == "web" and event["request_id"] == request_id
    assert event["exception_type"] == "StorageError"
    # sentry-sdk itself put the OTel trace id into the event's trace context.
    assert event["event"]["contexts"]["trace"]["trace_id"] == trace_id
    logs = eventually(lambda: demo.sink_logs(trace_id=trace_id, level="ERROR"),
                      what="ERROR log line")
    assert logs[0]["body"] == "storage failed"
    spans = eventually(lambda: [s for s in _trace(demo, trace_id) if s["kind"] == "SERVER"],
                       what="server span")
    assert spans[0]["status_code"] == "ERROR"


def test_errors_at_info_logs_the_storage_failure_at_info(demo: Demo) -> None:
    demo.dead_storage()
    trace_id, _ = _failed_upload(demo, demo.web("errors_at_info", storage="storage-dead"))
    line = eventually(lambda: demo.sink_logs(trace_id=trace_id, contains="storage failed"),
                      what="storage failure log line")
    assert line[0]["severity_text"] == "INFO"
    assert demo.sink_logs(trace_id=trace_id, level="ERROR") == []


def test_no_error_reporting_sends_no_error_event(demo: Demo) -> None:
    demo.dead_storage()
    web = demo.web("no_error_reporting", storage="storage-dead")
    trace_id, _ = _failed_upload(demo, web)
    # Sentry sends at once while logs wait for a 200 ms batch: once the access line is in,
    # an event would have been too.
    eventually(lambda: demo.sink_logs(trace_id=trace_id, contains="POST /api/uploads 502"),
               what="access log line")
    assert demo.sink_get("/api/errors", trace_id=trace_id).json()["errors"] == []


# ---- metrics --------------------------------------------------------------------------


def test_metrics_have_method_route_status_labels(demo: Demo, client: httpx.Client) -> None:
    client.get("/health")
    client.post("/api/login", json={"username": demo.user, "password": "wrong"})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/health",status="200"}' \
        in text
    assert 'demo_logins_total{result="failure"}' in text
    assert 'demo_uploads_total{result="success"}' in text
    assert 'route="/metrics"' not in text


def test_drop_route_label_removes_the_route_label(demo: Demo) -> None:
    base = _url(demo.web("drop_route_label"))
    httpx.get(base + "/health")
    text = httpx.get(base + "/metrics").text
    assert 'http_requests_total{method="GET",status="200"}' in text
    assert "route=" not in text


# ---- secrets ---------------------------------------------------------------------------


def _login_every_way(demo: Demo, base: str, trace_id: str, header: str) -> None:
    hdrs = {"traceparent": header, "X-Request-ID": "login-" + trace_id[:8]}
    for password in (demo.password, demo.password + "x"):
        httpx.post(base + "/api/login", json={"username": demo.user, "password": password},
                   headers=hdrs)
    with httpx.Client(base_url=base, headers=hdrs) as session:
        session.post("/login", data={"username": demo.user, "password": demo.password,
                                     "csrf_token": _csrf(session)})


def test_password_never_appears_in_logs_or_spans(demo: Demo, web: ManagedProcess) -> None:
    trace_id, _, header = traceparent()
    _login_every_way(demo, _url(web), trace_id, header)
    eventually(lambda: len(demo.sink_logs(trace_id=trace_id, service="web")) >= 3,
               what="login log lines")
    eventually(lambda: len(_trace(demo, trace_id)) >= 3, what="login spans")
    assert demo.sink_logs(contains=demo.password) == []
    assert demo.password not in json.dumps(_trace(demo, trace_id))
    assert web.log_path is not None
    assert demo.password not in web.log_path.read_text(encoding="utf-8")


def test_leak_password_puts_it_in_logs_so_a_scan_can_fail(demo: Demo) -> None:
    web = demo.web("leak_password")
    trace_id, _, header = traceparent()
    _login_every_way(demo, _url(web), trace_id, header)
    leaked = eventually(lambda: demo.sink_logs(contains=demo.password, service="web"),
                        what="leaked password in sink logs")
    assert leaked[0]["trace_id"] == trace_id
    assert web.log_path is not None
    assert demo.password in web.log_path.read_text(encoding="utf-8")


# ---- command line -----------------------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]
# Nothing listens there, and nothing is contacted: these processes exit before serving.
NOWHERE = "http://127.0.0.1:9"


@pytest.mark.parametrize("argv", [["demo.web", "--storage-url", NOWHERE, "--sink-url", NOWHERE],
                                  ["demo.storage", "--sink-url", NOWHERE]])
def test_unknown_sabotage_knob_exits_3_with_one_line(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *argv], cwd=REPO,
                          env={"DEMO_SABOTAGE": "ready_always_200,bogus",
                               "DEMO_PASSWORD": "x", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "'bogus'" in done.stderr


def test_web_without_password_exits_3() -> None:
    done = subprocess.run([sys.executable, "-m", "demo.web", "--sink-url", NOWHERE,
                           "--storage-url", NOWHERE], cwd=REPO,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 3 and "DEMO_PASSWORD" in done.stderr
