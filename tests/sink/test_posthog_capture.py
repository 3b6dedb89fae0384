"""PostHog's capture API on the real sink: posthog-python (the real client library) and
posthog-js's wire forms (gzip, base64 ``data=``, JSON batches); ``$exception`` events become
errors rows the errors API finds by trace id; bad bodies are 400; browsers may post (CORS)."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from posthog import Posthog

from sink.formats import BadPayload
from sink.posthog import capture_events, decode_capture, error_row
from tests.sink.conftest import Sink

KEY = "phc_test_project_key"


def exception_event(trace_id: str, **properties: Any) -> dict[str, Any]:
    """An $exception event as posthog-js builds it (caught/outermost exception first)."""
    return {"event": "$exception", "uuid": str(uuid.uuid4()), "timestamp": "2026-01-01T00:00:00Z",
            "properties": {"token": KEY, "distinct_id": "probe", "$trace_id": trace_id,
                           "$exception_list": [
                               {"type": "TypeError", "value": "x is undefined",
                                "mechanism": {"handled": False, "type": "onerror"}},
                               {"type": "Error", "value": "inner cause"}],
                           **properties}}


def wait_rows(sink: Sink, trace_id: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rows = sink.rows("errors", trace_id=trace_id)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.mark.parametrize("compress", [True, False])
def test_posthog_python_capture_exception_lands_as_an_error_row(sink: Sink,
                                                               compress: bool) -> None:
    trace_id = secrets.token_hex(16)
    client = Posthog(KEY, host=sink.url, sync_mode=True, gzip=compress)
    try:
        raise ValueError("checkout failed")
    except ValueError as exc:
        client.capture_exception(exc, distinct_id="probe", properties={
            "$trace_id": trace_id, "request_id": "rg-1", "service": "api"})
    client.capture("checkout started", distinct_id="probe",
                   properties={"$trace_id": trace_id})  # not an error: not stored
    client.shutdown()
    rows = wait_rows(sink, trace_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["service"], row["exception_type"], row["request_id"]) == ("api", "ValueError",
                                                                          "rg-1")
    assert row["message"] == "ValueError: checkout failed"
    assert row["event"]["properties"]["$exception_list"][0]["type"] == "ValueError"


@pytest.mark.parametrize("form", ["gzip-magic", "gzip-param", "base64", "base64-form",
                                  "json-list", "json-batch", "json-event"])
def test_posthog_js_wire_forms_all_store_the_exception(sink: Sink, form: str) -> None:
    trace_id = secrets.token_hex(16)
    event = exception_event(trace_id)
    text = json.dumps([event])
    batch = json.dumps({"api_key": KEY, "batch": [event], "sent_at": "2026-01-01T00:00:01Z"})
    path, headers, body = "/e/", {"Content-Type": "text/plain"}, text.encode()
    if form == "gzip-magic":      # posthog-js's gzip: no parameter, the magic bytes tell
        path, body = "/i/v0/e/", gzip.compress(batch.encode())
    elif form == "gzip-param":
        path, body = "/e/?compression=gzip-js&ver=1.449.2", gzip.compress(text.encode())
    elif form == "base64":        # sendBeacon: data=<base64>, compression=base64
        path = "/e/?compression=base64"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = ("data=" + quote(base64.b64encode(text.encode()).decode(), safe="")).encode()
    elif form == "base64-form":   # the same body with no parameter
        body = ("data=" + quote(base64.b64encode(batch.encode()).decode(), safe="")).encode()
    elif form == "json-batch":
        path, body = "/batch/", batch.encode()
    elif form == "json-event":
        path, body = "/capture/", json.dumps(event).encode()
    resp = sink.post(path, body, headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": 1, "events": 1, "stored": 1}
    rows = wait_rows(sink, trace_id)
    assert [r["message"] for r in rows] == ["TypeError: x is undefined"]


@pytest.mark.parametrize("body, why", [
    (b"not json", "invalid capture JSON"),
    (b"\x1f\x8b\x08garbage", "cannot decode gzip"),
    (b'{"no": "event"}', "neither an event"),
    (b'{"batch": [{"properties": {}}]}', "'event' name"),
    (b'[{"event": "$exception", "properties": "x"}]', "properties must be an object"),
    (b"data=", "no data= field"),
])
def test_a_capture_body_the_sink_cannot_read_is_a_400_naming_why(sink: Sink, body: bytes,
                                                                why: str) -> None:
    resp = sink.post("/e/", body, {"Content-Type": "text/plain"})
    assert resp.status_code == 400 and why in resp.json()["error"], resp.text


def test_unsupported_compression_is_refused() -> None:
    with pytest.raises(BadPayload, match="unsupported capture compression 'lz64'"):
        decode_capture(b"abc", compression="lz64")
    with pytest.raises(BadPayload, match="not gzip"):
        decode_capture(b"{}", compression="gzip-js")


def test_browser_sdks_may_post_cross_origin_to_the_ingest_routes_only(sink: Sink) -> None:
    for path in ("/e/", "/i/v0/e/", "/api/3/envelope/"):
        pre = sink.http.options(sink.url + path, headers={
            "Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    resp = sink.post("/e/", json.dumps(exception_event(secrets.token_hex(16))).encode())
    assert resp.headers["access-control-allow-origin"] == "*"
    # the query API is not opened to other origins
    assert "access-control-allow-origin" not in sink.get("/api/errors").headers


def test_the_row_takes_the_trace_id_from_a_plain_property_and_names_posthog() -> None:
    trace = secrets.token_hex(16).upper()
    events = capture_events({"event": "$exception", "properties": {
        "trace_id": trace, "$exception_type": "Error", "$exception_message": "old form"}})
    row = error_row(events[0], 1.0)
    assert row["trace_id"] == trace.lower() and row["message"] == "Error: old form"
    assert row["project_id"] == row["service"] == "posthog" and row["event_id"]


def test_a_base64_form_body_with_unescaped_plus_signs_still_decodes() -> None:
    pad = next(p for p in range(200) if "+" in base64.b64encode(
        json.dumps({"event": "$exception", "properties": {"pad": ">" * p}}).encode()).decode())
    text = json.dumps({"event": "$exception", "properties": {"pad": ">" * pad}})
    body = b"data=" + base64.b64encode(text.encode())  # "+" not percent-encoded
    assert capture_events(decode_capture(body))[0]["properties"]["pad"] == ">" * pad
