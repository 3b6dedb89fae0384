"""The blackbox-compatible probers and ``/probe`` against misbehaving loopback servers.

What blackbox_exporter itself is compared with lives in test_blackbox_parity.py (slow);
these cases are the ones a well-behaved target never shows: stalls, redirect loops,
compressed and oversized bodies, garbage, and the work ``/probe`` makes a target do.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from probes.blackbox.config import parse_blackbox
from probes.blackbox.run import BlackboxModules
from probes.endpoint import ProbeEndpoint
from probes.journeys import Journey
from probes.metrics import render_single
from probes.model import HttpFacts, ProbeResult, StepResult
from probes.spec import BasicAuth, HttpJourney, Step

BODY = b"hello from the target\n"


class Target:
    """A raw HTTP server whose answer depends on the path; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.split(b" ", 2)[:2]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                done = await self._answer(method.decode(), path.decode(), writer)
                if done or b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, w: asyncio.StreamWriter) -> bool:
        def simple(status: str, body: bytes, extra: str = "") -> bytes:
            return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                    .encode() + (b"" if method == "HEAD" else body))
        if path == "/ok":
            w.write(simple("200 OK", BODY))
        elif path.startswith("/loop"):
            n = int(path.removeprefix("/loop") or "0")
            w.write(simple("302 Found", b"", f"Location: /loop{n + 1}\r\n"))
        elif path == "/stall-head":
            await asyncio.sleep(30)
        elif path == "/stall-body":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await w.drain()
            await asyncio.sleep(30)
        elif path == "/gzip":
            w.write(simple("200 OK", gzip.compress(BODY * 10), "Content-Encoding: gzip\r\n"))
        elif path == "/not-gzip":
            w.write(simple("200 OK", BODY, "Content-Encoding: gzip\r\n"))
        elif path == "/close-delimited":
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY)
            await w.drain()
            return True
        elif path == "/continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + simple("200 OK", BODY))
        elif path == "/garbage":
            w.write(b"this is not HTTP\r\n\r\n")
            await w.drain()
            return True
        else:
            w.write(simple("404 Not Found", b"no\n"))
        await w.drain()
        return False


CONFIG = """
modules:
  http_2xx: {prober: http, timeout: 5s}
  short: {prober: http, timeout: 300ms}
  gzip: {prober: http, http: {compression: gzip}}
  small: {prober: http, http: {body_size_limit: 10}}
  head: {prober: http, http: {method: HEAD}}
"""


def probe(fn: Callable[[Target, BlackboxModules], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        target = Target()
        await target.start()
        try:
            return await fn(target, BlackboxModules(parse_blackbox(CONFIG)))
        finally:
            await target.stop()
    return asyncio.run(main())


def values(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def one(module: str, path: str) -> tuple[dict[str, float], float]:
    async def fn(t: Target, modules: BlackboxModules) -> tuple[dict[str, float], float]:
        t0 = time.monotonic()
        text = await modules.run(module, t.url + path, modules.modules[module].timeout or 5)
        return values(text), time.monotonic() - t0
    result: tuple[dict[str, float], float] = probe(fn)
    return result


def test_a_target_that_never_answers_fails_at_the_module_timeout_with_its_phases() -> None:
    v, took = one("short", "/stall-head")
    assert v["probe_success"] == 0 and 0.25 < took < 2
    assert v['probe_http_duration_seconds{phase="connect"}'] > 0
    assert v['probe_http_duration_seconds{phase="processing"}'] == 0
    assert v["probe_http_status_code"] == 0


def test_a_body_that_stalls_keeps_its_status_but_fails() -> None:
    v, _ = one("short", "/stall-body")
    assert v["probe_success"] == 0 and v["probe_http_status_code"] == 200
    assert v["probe_http_content_length"] == 100


def test_a_redirect_loop_stops_after_ten_redirects_as_gos_client_does() -> None:
    v, _ = one("http_2xx", "/loop")
    assert v["probe_success"] == 0
    assert v["probe_http_redirects"] == 11 and v["probe_http_status_code"] == 302


def test_compression_is_decoded_and_a_body_that_is_not_fails() -> None:
    v, _ = one("gzip", "/gzip")
    assert v["probe_success"] == 1
    assert v["probe_http_uncompressed_body_length"] == len(BODY) * 10
    assert v["probe_http_content_length"] < len(BODY) * 10
    bad, _ = one("gzip", "/not-gzip")
    assert bad["probe_success"] == 0


def test_body_size_limit_fails_a_larger_body() -> None:
    v, _ = one("small", "/ok")
    assert v["probe_success"] == 0 and v["probe_http_status_code"] == 200


def test_head_close_delimited_informational_and_garbage_answers() -> None:
    head, _ = one("head", "/ok")
    assert head["probe_success"] == 1 and head["probe_http_content_length"] == len(BODY)
    closed, _ = one("http_2xx", "/close-delimited")
    assert closed["probe_success"] == 1 and closed["probe_http_content_length"] == -1
    assert closed["probe_http_uncompressed_body_length"] == len(BODY)
    cont, _ = one("http_2xx", "/continue")
    assert cont["probe_success"] == 1 and cont["probe_http_status_code"] == 200
    garbage, _ = one("http_2xx", "/garbage")
    assert garbage["probe_success"] == 0 and garbage["probe_http_status_code"] == 0


def test_a_refused_connection_fails_fast_without_retries() -> None:
    async def refused(t: Target, modules: BlackboxModules) -> dict[str, float]:
        return values(await modules.run("http_2xx", "http://127.0.0.1:9/", 5))
    v = probe(refused)
    assert v["probe_success"] == 0 and v["probe_duration_seconds"] < 0.1
    assert v['probe_http_duration_seconds{phase="connect"}'] == 0  # never connected


# --- /probe: the work it makes a target do, its answers to bad requests ---

def journey(name: str = "get", **kw: Any) -> Journey:
    return Journey(name, HttpJourney(steps=[Step(name="a", url="/ok"),
                                            Step(name="b", url="/ok")], **kw), "http://x")


@pytest.mark.parametrize(("keepalive", "connections"), [(False, 6), (True, 1)])
def test_journey_probes_open_fresh_connections_unless_keepalive(keepalive: bool,
                                                                connections: int) -> None:
    async def fn(t: Target, modules: BlackboxModules) -> int:
        endpoint = ProbeEndpoint([journey()], keepalive=keepalive)
        try:
            for _i in range(3):  # three probes of a two-step journey
                status, body = await endpoint.answer({"module": "get", "target": t.url}, None)
                assert status == 200 and b'probe_success{journey="get"} 1.0' in body
        finally:
            await endpoint.aclose()
        return t.connections
    assert probe(fn) == connections


def test_blackbox_modules_open_a_connection_per_probe() -> None:
    async def fn(t: Target, modules: BlackboxModules) -> int:
        endpoint = ProbeEndpoint([])
        for _i in range(3):
            status, body = await endpoint.answer({"target": t.url + "/ok"}, None)
            assert status == 200 and b"\nprobe_success 1\n" in body
        return t.connections
    assert probe(fn) == 3


def test_probe_answers_bad_requests_as_blackbox_does() -> None:
    async def fn(t: Target, _: BlackboxModules) -> list[tuple[int, bytes]]:
        spec = HttpJourney(steps=[Step(url="/ok", basic_auth=BasicAuth(
            username="u", password="a-password"))])
        endpoint = ProbeEndpoint([Journey("creds", spec, t.url)],
                                 parse_blackbox("modules:\n  h:\n    prober: http\n    http:"
                                                "\n      headers: {Host: a.test}\n"))
        try:
            return [await endpoint.answer(p, h) for p, h in [
                ({"module": "nope", "target": "x"}, None),
                ({"module": "h"}, None),
                ({"module": "h", "target": t.url}, "soon"),
                ({"module": "h", "target": t.url, "hostname": "b.test"}, None),
                ({"module": "creds", "target": "http://elsewhere.test"}, None)]]
        finally:
            await endpoint.aclose()
    answers = probe(fn)
    assert [a[0] for a in answers] == [400, 400, 500, 400, 403]
    assert answers[0][1] == b'Unknown module "nope"\n'
    assert answers[1][1] == b"Target parameter is missing\n"


def test_a_journeys_status_code_is_its_meaningful_steps_not_its_clean_up() -> None:
    def step(name: str, status: int, ok: bool = True, cleanup: bool = False) -> StepResult:
        return StepResult(name, "GET", "http://t/", status, 0.01, "rg", ok, cleanup=cleanup,
                          http=HttpFacts(version=1.1, content_length=3, body_length=3,
                                         redirects=0, ip="127.0.0.1"))

    def code(*steps: StepResult) -> str:
        text = render_single(ProbeResult("upload", 1.0, 0.1, all(s.ok for s in steps),
                                         "t" * 32, steps)).decode()
        return next(line for line in text.splitlines()
                    if line.startswith("probe_http_status_code{"))

    passed = (step("upload", 201), step("read back", 200), step("clean up", 204, cleanup=True))
    assert code(*passed).endswith(" 200.0")  # the read-back, not the DELETE's 204
    failed = (step("upload", 201), step("read back", 500, ok=False),
              step("clean up", 204, cleanup=True))
    assert code(*failed).endswith(" 500.0")  # why it failed
    cleanup_failed = (step("upload", 201), step("clean up", 500, ok=False, cleanup=True))
    assert code(*cleanup_failed).endswith(" 500.0")
    assert code(step("only", 204, cleanup=True)).endswith(" 204.0")


def test_journey_probes_answer_blackbox_names_beside_readygate_series() -> None:
    async def fn(t: Target, _: BlackboxModules) -> str:
        endpoint = ProbeEndpoint([journey()])
        try:
            return (await endpoint.answer({"module": "get", "target": t.url}, None))[1].decode()
        finally:
            await endpoint.aclose()
    text = probe(fn)
    for line in ('probe_http_version{journey="get"} 1.1',
                 f'probe_http_content_length{{journey="get"}} {float(len(BODY))}',
                 'probe_http_redirects{journey="get"} 0.0', 'probe_ip_protocol{journey="get"} 4.0',
                 'probe_failed_due_to_regex{journey="get"} 0.0',
                 'probe_http_duration_seconds{journey="get",phase="resolve"} 0.0',
                 'readygate_step_success{journey="get",step="b"} 1.0'):
        assert line in text, line
    assert 'probe_ip_addr_hash{journey="get"} 3.668918509e+09' in text



def test_a_scrape_cannot_inject_headers_through_target_or_hostname() -> None:
    async def fn(t: Target, modules: BlackboxModules) -> tuple[dict[str, float], int, int]:
        endpoint = ProbeEndpoint([])
        text = await modules.run("http_2xx", t.url + "/ok\r\nX-Injected: 1", 5)
        status, _ = await endpoint.answer({"target": t.url + "/ok",
                                           "hostname": "a.test\r\nX-Injected: 1"}, None)
        return values(text), status, t.connections
    v, status, connections = probe(fn)
    assert v["probe_success"] == 0 and status == 400
    assert connections == 0  # neither request was sent


def test_a_path_with_spaces_is_escaped_on_the_request_line() -> None:
    v, _ = one("http_2xx", "/o k")
    assert v["probe_http_status_code"] == 404  # sent as /o%20k: a valid request, unknown path
