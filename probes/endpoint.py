"""``/probe?module=NAME&target=...``: blackbox_exporter's multi-target endpoint.

A module is one of the user's blackbox.yml modules (``probe serve --blackbox-config``),
answered with blackbox_exporter's series and label sets, or a journey, answered with the
same names labelled ``journey`` plus readygate's per-step series. Without a blackbox.yml
the module ``http_2xx`` is blackbox's default http module. A missing ``module`` means
``http_2xx``, as in blackbox.

Every probe opens fresh connections, as blackbox does (``keepalive=True`` reuses them
across journey probes instead, which measures less: no connect or TLS after the first).
The endpoint is a plain ASGI app: Starlette's request and response objects cost more per
probe than the probe's own HTTP parsing (BENCHMARKS.md section 4).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette

from core import redact
from core.errors import ConfigError
from core.http import ConnectOptions
from probes.blackbox.config import Module
from probes.blackbox.run import BlackboxModules, probe_timeout
from probes.clients import ProbeClients
from probes.journeys import Journey, timed_out
from probes.metrics import render_single
from probes.spec import Step
from probes.transport import lean_client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()
_TIMEOUT_HEADER = b"x-prometheus-scrape-timeout-seconds"


def default_modules() -> dict[str, Module]:
    """The module ``/probe`` knows without a blackbox.yml: blackbox's ``http_2xx``."""
    return {"http_2xx": Module(prober="http")}


_PARAMS: dict[bytes, dict[str, str]] = {}


def _params(query: bytes) -> dict[str, str]:
    """Query parameters, the first value of each (cached by query string: Prometheus sends
    the same few on every scrape)."""
    found = _PARAMS.get(query)
    if found is None:
        found = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)[::-1])
        if len(_PARAMS) >= 4096:
            _PARAMS.clear()
        _PARAMS[query] = found
    return found


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    return u.scheme, u.host, u.port


class ProbeEndpoint:
    """The ASGI app behind ``/probe``; ``aclose()`` closes its clients."""

    def __init__(self, journeys: Sequence[Journey], blackbox: dict[str, Module] | None = None,
                 *, http: ConnectOptions | None = None, keepalive: bool = False,
                 max_connections: int = 128) -> None:
        self.journeys = {j.name: j for j in journeys}
        # journeys whose credentials must not follow a target the scrape names
        self.with_secrets = {j.name for j in journeys if j.spec.secrets or any(
            isinstance(s, Step) and s.basic_auth is not None for s in j.spec.steps)}
        modules = default_modules() if blackbox is None else blackbox
        for name in modules:
            if name in self.journeys:
                raise ConfigError(f"module {name!r} is both a blackbox.yml module and a "
                                  "journey: rename one", key=f"modules.{name}")
        self.blackbox = BlackboxModules(modules)
        self.http = http
        self.keepalive = keepalive
        self.max_connections = max_connections
        self._clients: ProbeClients | None = None

    def _journey_clients(self) -> ProbeClients:
        if self._clients is None:
            # Fresh connections unless asked: max_keepalive_connections=0 closes each one
            # after its response (the lean transport and httpcore alike).
            limits = httpx.Limits(max_connections=self.max_connections,
                                  max_keepalive_connections=None if self.keepalive else 0)
            self._clients = ProbeClients(lean_client(limits=limits, cookies=None), self.http,
                                         limits=limits)
        return self._clients

    async def aclose(self) -> None:
        """Close the journeys' clients."""
        if self._clients is not None:
            clients, self._clients = self._clients, None
            await clients.aclose()
            await clients.shared.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = _params(scope.get("query_string", b""))
        header = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k == _TIMEOUT_HEADER), None)
        status, body = await self.answer(params, header)
        content_type = _CONTENT_TYPE if status == 200 and params.get("debug") != "true" \
            else b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, params: dict[str, str], timeout_header: str | None
                     ) -> tuple[int, bytes]:
        """(status, body) for the query parameters of one ``/probe`` request."""
        name = params.get("module") or "http_2xx"
        target = params.get("target", "")
        if name in self.blackbox:
            module = self.blackbox.modules[name]
            try:
                timeout_s = probe_timeout(module, timeout_header)
            except ValueError as exc:
                return 500, f"Failed to parse timeout from Prometheus header: {exc}\n".encode()
            if not target:
                return 400, b"Target parameter is missing\n"
            hostname = params.get("hostname") or None
            if hostname and any(c <= " " or c == "\x7f" for c in hostname):
                return 400, b"invalid hostname parameter\n"  # it becomes the Host header
            if hostname and module.prober == "http":
                configured = next((v for k, v in module.http.headers.items()
                                   if k.lower() == "host"), None)
                if configured is not None and configured != hostname:
                    return 400, (f"host header defined both in module configuration "
                                 f"({configured}) and with URL-parameter 'hostname' "
                                 f"({hostname})\n").encode()
            text = await self.blackbox.run(name, target, timeout_s, hostname)
            if params.get("debug") == "true":
                return 200, redact.scrub(self._debug(name, module, text)).encode()
            # Numbers, phases and the server's certificate names: nothing of the config's
            # secrets can be in it (the debug page, which shows the module, is scrubbed).
            return 200, text.encode()
        journey = self.journeys.get(name)
        if journey is None:
            return 400, f'Unknown module "{name}"\n'.encode()
        if not target:
            return 400, b"Target parameter is missing\n"
        return await self._journey(journey, target, timeout_header)

    async def _journey(self, journey: Journey, target: str, timeout_header: str | None
                       ) -> tuple[int, bytes]:
        if journey.name in self.with_secrets and _origin(target) != _origin(journey.base_url):
            # Never send a journey's credentials to a host the scrape request names.
            return 403, (f"module {journey.name!r} carries credentials and may only probe "
                         "its configured target\n").encode()
        one = replace(journey, base_url=target)
        bound = one.run_timeout_s
        if timeout_header:
            try:
                bound = min(bound, max(0.1, float(timeout_header) - 0.5))
            except ValueError as exc:
                return 500, f"Failed to parse timeout from Prometheus header: {exc}\n".encode()
        started, t0 = time.time(), time.monotonic()
        try:
            async with asyncio.timeout(bound):
                result = await one.run(self._journey_clients().for_journey(one))
        except TimeoutError:
            result = timed_out(one, started, time.monotonic() - t0)
        return 200, render_single(result)

    @staticmethod
    def _debug(name: str, module: Module, exposition: str) -> str:
        config = module.model_dump_json(indent=2, exclude_defaults=True)
        return (f"Module {name}:\n{config}\n\nMetrics that would have been returned:\n"
                f"{exposition}\n(readygate keeps no per-probe log: the series say what "
                "happened)\n")


class ExporterApp(Starlette):
    """A Starlette app that hands ``/probe`` to its endpoint before any routing.

    Starlette's middleware layers and router cost about a tenth of a probe's CPU
    (py-spy, BENCHMARKS.md section 4) and do nothing for this one endpoint: it answers
    every method, has no path parameters and raises nothing.
    """

    def __init__(self, probe: ProbeEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/probe":
            await self.probe(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
