"""Journeys as YAML (the demo's own and variants of them), against the real demo web and storage."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import httpx
import pytest

from core.errors import ConfigError
from probes.http import run_http
from probes.journeys import build_catalog, with_credentials
from probes.model import ProbeResult
from probes.spec import HttpJourney, parse_journeys
from tests.fixtures.demo_system import Demo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "demo" / "journeys-examples.yaml"
CATALOG = build_catalog([ROOT / "demo" / "journeys.yaml",
                         Path(__file__).parent / "data" / "demo-variants.yaml"])


def run(spec: HttpJourney, base_url: str, *, name: str = "j",
        transport: httpx.AsyncBaseTransport | None = None,
        files_dir: Path | None = None) -> ProbeResult:
    async def go() -> ProbeResult:
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            return await run_http(name, spec, client, base_url, files_dir)
    return asyncio.run(go())


def built(name: str, demo: Demo, password: str | None = None) -> HttpJourney:
    """A demo journey (or a variant) with the demo's credentials, as a gate would run it."""
    spec = with_credentials(CATALOG.journeys[name].spec, demo.user, password or demo.password)
    assert isinstance(spec, HttpJourney)
    return spec


def web_url(demo: Demo, sabotage: str = "", storage: str = "storage") -> str:
    url = demo.web(sabotage, storage).url
    assert url is not None
    return url


@pytest.mark.parametrize("mode", ["json", "form", "basic"])
def test_login_modes_pass_and_fail_precisely_on_a_wrong_password(demo: Demo, mode: str) -> None:
    name = {"json": "login", "form": "login-form", "basic": "login-basic"}[mode]
    ok = run(built(name, demo), web_url(demo), name="login")
    assert ok.success, ok.error
    bad = run(built(name, demo, password="wrong-password"), web_url(demo))
    assert not bad.success
    expected = {"json": "login: POST /api/login returned 401, expected 200",
                "basic": "login: POST /api/login returned 401, expected 200",
                "form": "login: POST /login returned 401, expected 303"}[mode]
    assert bad.error == expected


def test_form_login_sends_the_csrf_token_and_keeps_the_session_cookie(demo: Demo) -> None:
    result = run(built("login-form", demo), web_url(demo))
    assert [s.name for s in result.steps] == ["login page", "login", "session"]
    assert [s.status for s in result.steps] == [200, 303, 200]


def test_ready_must_be_503_while_storage_is_down(demo: Demo) -> None:
    demo.dead_storage()
    down = web_url(demo, storage="storage-dead")
    assert run(built("health-503", demo), down).success
    healthy = run(built("health-503", demo), web_url(demo))
    assert healthy.error == "ready: GET /health/ready returned 200, expected 503"
    lying = web_url(demo, "ready_always_200", "storage-dead")
    result = run(built("health-503", demo), lying)
    assert result.error == "ready: GET /health/ready returned 200, expected 503"


@pytest.mark.parametrize("name", ["upload", "upload-basic-70k"])
def test_multipart_upload_reads_back_the_same_bytes_and_cleans_up(demo: Demo, name: str) -> None:
    result = run(built(name, demo), web_url(demo))
    assert result.success, result.error
    assert [s.name for s in result.steps][-3:] == ["upload", "read back", "clean up"]
    assert result.steps[-1].status == 204


def test_raw_put_upload_against_storage(demo: Demo) -> None:
    storage = demo.storage().url
    assert storage is not None
    result = run(built("put-10k", demo), storage)
    assert result.success, result.error
    assert [(s.method, s.status) for s in result.steps] == [("PUT", 201), ("GET", 200),
                                                            ("DELETE", 204)]


def test_upload_fails_precisely_when_storage_is_down(demo: Demo) -> None:
    demo.dead_storage()
    result = run(built("upload", demo), web_url(demo, storage="storage-dead"))
    assert result.error == "upload: POST /api/uploads returned 502, expected 201"
    # the clean-up cannot run without an upload id: skipped, not failed
    assert result.steps[-1].skipped and result.steps[-1].name == "clean up"


def corrupting(base_url: str) -> httpx.AsyncBaseTransport:
    """A transport to the real demo that flips the last byte of every read back."""
    real = httpx.AsyncHTTPTransport()

    class Corrupt(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            resp = await real.handle_async_request(request)
            if request.method == "GET" and "/api/uploads/" in request.url.path:
                body = await resp.aread()
                return httpx.Response(resp.status_code, headers=resp.headers,
                                      content=body[:-1] + bytes([body[-1] ^ 1]))
            return resp
    return Corrupt()


def test_a_corrupted_read_back_fails_with_the_checksums_and_is_still_cleaned_up(
        demo: Demo) -> None:
    url = web_url(demo)
    result = run(built("upload", demo), url, transport=corrupting(url))
    assert result.error is not None
    assert result.error.startswith("read back: GET /api/uploads/")
    assert "body came back corrupted (sha256 " in result.error
    assert result.steps[-1].name == "clean up" and result.steps[-1].status == 204


def test_the_example_journeys_file_passes_on_the_demo(demo: Demo,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", demo.password)
    spec = parse_journeys(EXAMPLE.read_text(), str(EXAMPLE))
    for name, journey in spec.journeys.items():
        spec = with_credentials(journey, demo.user, demo.password)
        assert isinstance(spec, HttpJourney)
        result = run(spec, web_url(demo), name=name)
        assert result.success, f"{name}: {result.error}"
        assert demo.password not in json.dumps(result.to_dict())


def yaml_journey(text: str, tmp_path: Path | None = None) -> HttpJourney:
    spec = parse_journeys(textwrap.dedent(text), "j.yaml")
    return next(iter(spec.journeys.values()))


def test_extraction_by_header_cookie_and_regex_feeds_later_steps(demo: Demo) -> None:
    journey = yaml_journey("""
        journeys:
          x:
            steps:
              - name: form
                url: /login
                extract:
                  csrf_cookie: {cookie: csrftoken}
                  csrf_field: {regex: "name='csrf_token' value='([^']+)'"}
                  kind: {header: content-type}
              - name: echo
                url: /health
                query: {c: "{{csrf_cookie}}", f: "{{csrf_field}}"}
                expect: {status: 200, json: {$.checks.storage: ok}}
        """)
    result = run(journey, web_url(demo))
    assert result.success, result.error
    url = result.steps[1].url
    assert "?" not in url  # queries may hold secrets: results keep the path only


def test_json_assertion_names_the_near_miss(demo: Demo) -> None:
    journey = yaml_journey("""
        journeys:
          x:
            steps:
              - {name: ready, url: /health, expect: {json: {$.checks.storage: down}}}
        """)
    result = run(journey, web_url(demo))
    assert result.error == "ready: GET /health: $.checks.storage is 'ok', expected 'down'"


def test_bodies_from_files_and_raw_text(demo: Demo, tmp_path: Path) -> None:
    (tmp_path / "payload.bin").write_bytes(b"\x00\x01hello")
    journey = yaml_journey("""
        journeys:
          x:
            steps:
              - {name: put file, method: PUT, url: "/objects/a{{run_id}}",
                 body: {file: payload.bin}, expect: {status: 201, json: {$.size: 7}}}
              - {name: get, url: "/objects/a{{run_id}}", expect: {sha256: "{{request_sha256}}"}}
              - {name: put text, method: PUT, url: "/objects/b{{run_id}}",
                 body: {text: "trace {{trace_id}}"}, expect: {json: {$.size: 38}}}
        """)
    storage = demo.storage().url
    assert storage is not None
    result = run(journey, storage, files_dir=tmp_path)
    assert result.success, result.error


def flaky(fail_first: int, exc: type[Exception] | None = httpx.ConnectError,
          status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= fail_first:
            if exc is not None:
                raise exc("connection refused", request=request)  # type: ignore[call-arg]
            return httpx.Response(status)
        return httpx.Response(200, json={"ok": True})
    return httpx.MockTransport(handler), seen


def one_step(retry: str = "") -> HttpJourney:
    return yaml_journey(f"""
        journeys:
          x:
            {retry}
            steps: [{{name: get, url: /x}}]
        """)


def test_a_success_after_a_network_retry_is_reported_as_retried() -> None:
    transport, seen = flaky(1)
    result = run(one_step(), "http://t.test", transport=transport)
    assert result.success and result.retried
    assert result.steps[0].attempts == 2 and len(seen) == 2
    # each attempt is its own request (new span, new request id) under the same trace
    assert seen[0].headers["x-request-id"] != seen[1].headers["x-request-id"]
    assert len({r.headers["traceparent"].split("-")[1] for r in seen}) == 1


def test_by_default_an_http_error_status_is_not_retried() -> None:
    transport, seen = flaky(1, exc=None, status=500)
    result = run(one_step(), "http://t.test", transport=transport)
    assert result.error == "get: GET /x returned 500, expected 2xx" and len(seen) == 1


def test_retry_on_5xx_when_asked_and_give_up_after_the_attempts() -> None:
    transport, seen = flaky(5, exc=None, status=503)
    result = run(one_step("retry: {attempts: 3, on: [5xx], backoff_s: 0}"), "http://t.test",
                 transport=transport)
    assert result.error == "get: GET /x returned 503, expected 2xx (after 3 attempts)"
    assert len(seen) == 3


def test_network_failures_are_retried_then_reported() -> None:
    transport, seen = flaky(5)
    result = run(one_step(), "http://t.test", transport=transport)
    assert result.error == "get: GET /x: ConnectError: connection refused (after 2 attempts)"
    assert len(seen) == 2


def test_a_post_is_not_resent_after_it_went_out_but_is_when_the_connection_never_opened(
        ) -> None:
    post = yaml_journey("""
        journeys:
          x:
            steps: [{name: send, method: POST, url: /x, json: {a: 1}}]
        """)
    transport, seen = flaky(1, exc=httpx.ReadError)
    result = run(post, "http://t.test", transport=transport)
    assert not result.success and len(seen) == 1, "a POST that went out is never resent"
    transport, seen = flaky(1, exc=httpx.ConnectError)
    result = run(post, "http://t.test", transport=transport)
    assert result.success and result.retried and len(seen) == 2


@pytest.mark.parametrize(("text", "where", "message"), [
    ("journeys:\n  x:\n    steps:\n      - {url: /a, methd: GET}\n", "j.yaml:4 "
     "journeys.x.steps[0].methd", "unknown key 'methd' (did you mean 'method'?)"),
    ("journeys:\n  x:\n    steps:\n      - url: /a\n        headers: {A: '{{tokn}}'}\n",
     "j.yaml:5 journeys.x.steps[0].headers.A", "unknown variable 'tokn'"),
    ("journeys:\n  x:\n    steps:\n      - url: /a\n        multipart: {f: {generat: 3}}\n",
     "j.yaml:5 journeys.x.steps[0].multipart.f.generat", "unknown key 'generat' (did you mean "
     "'generate'?)"),
    ("journeys:\n  x:\n    steps:\n      - url: /a\n        expect: {regex: '('}\n",
     "j.yaml:5 journeys.x.steps[0].expect", "bad regex"),
    ("journeys:\n  x:\n    steps:\n      - url: /a\n        json: {}\n        form: {}\n",
     "j.yaml:4 journeys.x.steps[0]", "at most one of json, form, multipart, body"),
])
def test_bad_journey_yaml_is_one_line_naming_file_line_and_key(text: str, where: str,
                                                               message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_journeys(text, "j.yaml")
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(where + ": "), line
    assert message in line
