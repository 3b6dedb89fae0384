"""A Toxiproxy adapter: faults as toxics on the proxies ``target.toxiproxy.proxies`` names.

Speaks Toxiproxy's REST API (``GET /proxies``, ``GET|POST /proxies/{proxy}``,
``GET|POST /proxies/{proxy}/toxics``, ``DELETE /proxies/{proxy}/toxics/{toxic}``,
``GET /version``). ``type: down`` disables the proxy (``POST /proxies/{proxy}
{"enabled": false}``) instead of adding a toxic. Toxiproxy has no TTL of its own, so each
fault gets a detached watchdog that removes the toxic (or re-enables the proxy) at the TTL.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from chaos.base import InjectedFault
from chaos.config import Fault, ToxiproxyFault
from chaos.watchdog import start_watchdog, stop_watchdog
from core.errors import BackendError, ConfigError
from core.target import ToxiproxyTarget


class ToxiproxyClient:
    """The few Toxiproxy API calls readygate needs."""

    def __init__(self, url: str, client: httpx.AsyncClient, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._client = client
        self._timeout = timeout

    async def _call(self, method: str, path: str, action: str, *, body: Any = None) -> Any:
        try:
            resp = await self._client.request(method, self.url + path, json=body,
                                              timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise BackendError(f"toxiproxy {self.url}: cannot {action}: "
                               f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 300:
            try:
                message = str(resp.json().get("error", resp.text))
            except (ValueError, AttributeError):
                message = resp.text[:200]
            if resp.status_code in (400, 409):
                raise ConfigError(f"toxiproxy: cannot {action}: {message}")
            raise BackendError(f"toxiproxy {self.url}: cannot {action}: HTTP "
                               f"{resp.status_code}: {message}")
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise BackendError(f"toxiproxy {self.url}: {action}: answer is not JSON") from None

    async def version(self) -> str:
        """The server's version string."""
        try:
            resp = await self._client.get(self.url + "/version", timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise BackendError(f"toxiproxy {self.url}: cannot get version: {exc}") from exc
        return resp.text.strip()

    async def proxy(self, name: str) -> dict[str, Any]:
        """One proxy with its toxics."""
        body = await self._call("GET", f"/proxies/{name}", f"get proxy {name!r}")
        if not isinstance(body, dict):
            raise BackendError(f"toxiproxy {self.url}: proxy {name!r}: expected an object")
        return body

    async def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Enable or disable a proxy (a disabled proxy refuses and drops connections)."""
        body = await self._call("POST", f"/proxies/{name}", f"update proxy {name!r}",
                                body={"enabled": enabled})
        return body if isinstance(body, dict) else {}

    async def add_toxic(self, proxy: str, toxic: dict[str, Any]) -> dict[str, Any]:
        """Create a toxic; returns it as the server stored it."""
        body = await self._call("POST", f"/proxies/{proxy}/toxics",
                                f"add toxic to {proxy!r}", body=toxic)
        return body if isinstance(body, dict) else {}

    async def toxics(self, proxy: str) -> list[dict[str, Any]]:
        """The toxics on a proxy."""
        body = await self._call("GET", f"/proxies/{proxy}/toxics", f"list toxics of {proxy!r}")
        return list(body or [])

    async def remove_toxic(self, proxy: str, toxic: str) -> None:
        """Delete a toxic (a toxic already gone is fine: the TTL watchdog may have won)."""
        try:
            await self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}",
                             f"remove toxic {toxic!r}")
        except BackendError as exc:
            if "HTTP 404" not in str(exc):
                raise


class ToxiproxyInjector:
    """Adds toxics to the Toxiproxy proxies named in the config, and only those."""

    def __init__(self, target: ToxiproxyTarget, client: httpx.AsyncClient, *,
                 log_dir: Path | None = None) -> None:
        self.target = target
        self.api = ToxiproxyClient(target.url, client)
        self.log_dir = log_dir
        self._held: dict[str, tuple[str, str, subprocess.Popen[bytes]]] = {}

    def _proxy_name(self, service: str) -> str:
        name = self.target.proxies.get(service)
        if name is None:
            raise ConfigError(f"chaos refused: {service!r} is not in target.toxiproxy.proxies",
                              key="scenario.fault.service")
        return name

    async def inject(self, fault: Fault) -> InjectedFault:
        """Add the toxic (or disable the proxy) and start its TTL watchdog."""
        if not isinstance(fault, ToxiproxyFault):
            raise ConfigError(f"the toxiproxy injector cannot inject {fault.kind!r}")
        proxy = self._proxy_name(fault.service)
        await self.api.proxy(proxy)  # fails early and clearly if the proxy does not exist
        started = time.time()
        expires = started + fault.ttl_s
        fault_id = f"x-{uuid.uuid4().hex[:12]}"
        toxic = f"readygate-{fault_id}"
        if fault.type == "down":
            undo = ["--http-post", f"{self.api.url}/proxies/{proxy}",
                    "--json", json.dumps({"enabled": True})]
        else:
            undo = ["--http-delete", f"{self.api.url}/proxies/{proxy}/toxics/{toxic}"]
        log = self.log_dir / f"watchdog-{fault_id}.log" if self.log_dir else None
        watchdog = start_watchdog(undo, expires_at=expires, log_path=log)
        try:
            if fault.type == "down":
                await self.api.set_enabled(proxy, False)
                summary = f"toxiproxy {proxy} disabled"
            else:
                await self.api.add_toxic(proxy, {
                    "name": toxic, "type": fault.type, "stream": fault.stream,
                    "toxicity": fault.toxicity, "attributes": dict(fault.attributes)})
                summary = f"toxiproxy {proxy}: {fault.type} {fault.stream} {fault.attributes}"
        except BaseException:
            stop_watchdog(watchdog)
            raise
        self._held[fault_id] = (proxy, "" if fault.type == "down" else toxic, watchdog)
        return InjectedFault(fault_id=fault_id, service=fault.service, kind=fault.kind,
                             summary=summary, started_at=started, expires_at=expires,
                             detail={"proxy": proxy, "toxic": toxic if fault.type != "down"
                                     else None, "watchdog_pid": watchdog.pid})

    async def remove(self, injected: InjectedFault) -> float:
        """Remove the toxic (or re-enable the proxy), then stop the watchdog."""
        held = self._held.pop(injected.fault_id, None)
        if held is None:
            return time.time()
        proxy, toxic, watchdog = held
        if toxic:
            await self.api.remove_toxic(proxy, toxic)
        else:
            await self.api.set_enabled(proxy, True)
        stop_watchdog(watchdog)
        return time.time()
