"""The ``toxiproxy`` fault kind driving a real Toxiproxy server: latency, reset_peer and down,
felt by a real HTTP client going through the proxy, and undone by remove or the TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chaos.config import ToxiproxyFault
from chaos.toxiproxy import ToxiproxyInjector
from core.target import ToxiproxyTarget
from demo.stack import free_port
from tests.fakes.server import serve
from tests.fixtures.demo_system import eventually
from tests.peers.conftest import peer_binary, running


@dataclass
class Toxi:
    api: str      # Toxiproxy's REST API
    through: str  # the upstream app, reached through the proxy "web"


@pytest.fixture(scope="module")
def toxi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxi]:
    binary = peer_binary("toxiproxy")
    tmp = tmp_path_factory.mktemp("toxiproxy")

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    with serve(Starlette(routes=[Route("/", hello)])) as upstream:
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        with running("toxiproxy", [str(binary), "-host", "127.0.0.1", "-port", str(port)],
                     tmp) as peer:
            peer.wait_http(api + "/version", ok=lambda r: r.status_code == 200)
            listen = f"127.0.0.1:{free_port()}"
            resp = httpx.post(api + "/proxies", timeout=5, json={
                "name": "web", "listen": listen, "upstream": upstream.split("//")[1]})
            assert resp.status_code == 201, resp.text
            yield Toxi(api, f"http://{resp.json()['listen']}/")


def get(url: str) -> tuple[float, str]:
    """(seconds, outcome) of one GET through the proxy on a fresh connection."""
    started = time.monotonic()
    try:
        with httpx.Client(trust_env=False, timeout=5) as client:
            outcome = client.get(url).text
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return time.monotonic() - started, outcome


def inject(toxi: Toxi, tmp: Path, fault: ToxiproxyFault, felt: Any) -> float:
    """Inject, check the effect ``felt`` is seen, remove; returns the request time under it."""
    async def go() -> float:
        async with httpx.AsyncClient(trust_env=False) as client:
            injector = ToxiproxyInjector(ToxiproxyTarget(url=toxi.api, proxies={"web": "web"}),
                                         client, log_dir=tmp)
            injected = await injector.inject(fault)
            try:
                took, outcome = await asyncio.to_thread(get, toxi.through)
                felt(took, outcome)
            finally:
                await injector.remove(injected)
            return took
    return asyncio.run(go())


def test_latency_toxic_slows_real_requests_and_is_removed(toxi: Toxi, tmp_path: Path) -> None:
    assert get(toxi.through)[1] == "hello"

    def slow(took: float, outcome: str) -> None:
        assert outcome == "hello" and took >= 0.4, (took, outcome)

    inject(toxi, tmp_path, ToxiproxyFault(kind="toxiproxy", service="web", type="latency",
                                          ttl_s=60, attributes={"latency": 400}), slow)
    took, outcome = get(toxi.through)
    assert outcome == "hello" and took < 0.4
    assert httpx.get(f"{toxi.api}/proxies/web/toxics", timeout=5).json() == []


def test_reset_peer_and_down_break_real_requests_until_removed(toxi: Toxi,
                                                               tmp_path: Path) -> None:
    def broken(took: float, outcome: str) -> None:
        assert outcome != "hello", outcome

    inject(toxi, tmp_path, ToxiproxyFault(kind="toxiproxy", service="web", type="reset_peer",
                                          ttl_s=60, attributes={"timeout": 0}), broken)
    assert get(toxi.through)[1] == "hello"
    inject(toxi, tmp_path, ToxiproxyFault(kind="toxiproxy", service="web", type="down",
                                          ttl_s=60), broken)
    assert httpx.get(f"{toxi.api}/proxies/web", timeout=5).json()["enabled"] is True
    assert get(toxi.through)[1] == "hello"


def test_the_watchdog_removes_the_toxic_at_the_ttl(toxi: Toxi, tmp_path: Path) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            injector = ToxiproxyInjector(ToxiproxyTarget(url=toxi.api, proxies={"web": "web"}),
                                         client, log_dir=tmp_path)
            injected = await injector.inject(ToxiproxyFault(
                kind="toxiproxy", service="web", type="reset_peer", ttl_s=1.0,
                attributes={"timeout": 0}))
            assert get(toxi.through)[1] != "hello"
            eventually(lambda: httpx.get(f"{toxi.api}/proxies/web/toxics",
                                         timeout=5).json() == [], timeout=6,
                       what="toxic removed at the TTL")
            assert get(toxi.through)[1] == "hello"
            await injector.remove(injected)  # already gone: not an error
            assert injector._held == {}
    asyncio.run(go())
