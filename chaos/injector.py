"""Faults from a gate's config, injected through readygate's fault proxies.

Chaos touches only the services named in ``target.fault_proxies``.
"""

from __future__ import annotations

from typing import Any

import httpx

from chaos.base import InjectedFault
from chaos.client import FaultProxyClient
from readygate.config import Fault
from readygate.errors import ConfigError


def fault_spec(fault: Fault) -> dict[str, Any]:
    """The proxy's JSON spec for a configured fault."""
    spec: dict[str, Any] = {"kind": fault.kind, "rate": fault.rate, "ttl_s": fault.ttl_s,
                            "name": f"readygate:{fault.kind}:{fault.service}"}
    if fault.path_prefix:
        spec["path_prefix"] = fault.path_prefix
    if fault.methods:
        spec["methods"] = fault.methods
    if fault.kind == "http_error":
        spec["status"] = fault.status
    elif fault.kind == "latency":
        spec.update(latency_ms=fault.latency_ms, jitter_ms=fault.jitter_ms)
    return spec


def describe(fault: Fault) -> str:
    where = f" on {fault.path_prefix}" if fault.path_prefix else ""
    if fault.kind == "http_error":
        return f"HTTP {fault.status} at rate {fault.rate:g}{where}"
    if fault.kind == "latency":
        return f"+{fault.latency_ms} ms ±{fault.jitter_ms} ms at rate {fault.rate:g}{where}"
    return f"aborted connections at rate {fault.rate:g}{where}"


class ProxyFaultInjector:
    """Injects faults into the fault proxy in front of each named service."""

    def __init__(self, proxies: dict[str, str], client: httpx.AsyncClient) -> None:
        self.proxies = dict(proxies)
        self.client = client

    def _proxy(self, service: str) -> FaultProxyClient:
        url = self.proxies.get(service)
        if url is None:
            raise ConfigError(f"chaos refused: {service!r} is not in target.fault_proxies",
                              key="scenario.fault.service")
        return FaultProxyClient(url, self.client)

    async def inject(self, fault: Fault) -> InjectedFault:
        record = await self._proxy(fault.service).inject(fault_spec(fault))
        return InjectedFault(fault_id=record.id, service=fault.service, kind=fault.kind,
                             summary=describe(fault), started_at=record.started_at,
                             expires_at=record.expires_at)

    async def remove(self, injected: InjectedFault) -> float:
        record = await self._proxy(injected.service).remove(injected.fault_id)
        return record.ended_at or record.expires_at
