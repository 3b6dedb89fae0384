"""Faults from a gate's config, injected by the injector for their ``kind``.

Chaos touches only named targets: ``target.fault_proxies`` (HTTP and TCP fault proxies),
``target.processes``, ``target.toxiproxy.proxies``; command hooks run the user's commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from chaos.base import FaultInjector, InjectedFault
from chaos.client import FaultProxyClient, TcpProxyClient
from chaos.config import Fault, HttpFault, TcpFault, chaos_host_problem, fault_urls
from chaos.tcpfaults import TCP_KINDS
from core.errors import ConfigError
from core.target import Target


def fault_spec(fault: HttpFault) -> dict[str, Any]:
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


def describe(fault: HttpFault) -> str:
    """One line saying what an HTTP fault does."""
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
        """Start the fault on the proxy in front of its service."""
        if not isinstance(fault, HttpFault):
            raise ConfigError(f"the HTTP fault proxy cannot inject {fault.kind!r}")
        record = await self._proxy(fault.service).inject(fault_spec(fault))
        return InjectedFault(fault_id=record.id, service=fault.service, kind=fault.kind,
                             summary=describe(fault), started_at=record.started_at,
                             expires_at=record.expires_at)

    async def remove(self, injected: InjectedFault) -> float:
        """End the fault on its proxy; return when it ended."""
        record = await self._proxy(injected.service).remove(injected.fault_id)
        return record.ended_at or record.expires_at


def tcp_spec(fault: TcpFault) -> dict[str, Any]:
    """The TCP proxy's JSON spec for a configured fault."""
    spec: dict[str, Any] = {"kind": fault.kind, "ttl_s": fault.ttl_s,
                            "direction": fault.direction,
                            "name": f"readygate:{fault.kind}:{fault.service}"}
    if fault.kind == "tcp_latency":
        spec.update(latency_ms=fault.latency_ms, jitter_ms=fault.jitter_ms)
    elif fault.kind == "tcp_bandwidth":
        spec["bytes_per_s"] = fault.bytes_per_s
    return spec


def describe_tcp(fault: TcpFault) -> str:
    """One line saying what a TCP fault does."""
    if fault.kind == "tcp_latency":
        what = f"+{fault.latency_ms} ms ±{fault.jitter_ms} ms per chunk"
    elif fault.kind == "tcp_bandwidth":
        what = f"at most {fault.bytes_per_s} bytes/s"
    elif fault.kind == "tcp_reset":
        what = "connections reset"
    else:
        what = "bytes swallowed (blackhole)"
    return f"TCP {what} ({fault.direction})"


class TcpProxyInjector:
    """Injects TCP faults into the TCP fault proxy in front of each named service."""

    def __init__(self, proxies: dict[str, str], client: httpx.AsyncClient) -> None:
        self.proxies = dict(proxies)
        self.client = client

    def _proxy(self, service: str) -> TcpProxyClient:
        url = self.proxies.get(service)
        if url is None:
            raise ConfigError(f"chaos refused: {service!r} is not in target.fault_proxies",
                              key="scenario.fault.service")
        return TcpProxyClient(url, self.client)

    async def inject(self, fault: Fault) -> InjectedFault:
        """Start the fault on the TCP proxy in front of its service."""
        if not isinstance(fault, TcpFault):
            raise ConfigError(f"the TCP fault proxy cannot inject {fault.kind!r}")
        record = await self._proxy(fault.service).inject(tcp_spec(fault))
        return InjectedFault(fault_id=record.id, service=fault.service, kind=fault.kind,
                             summary=describe_tcp(fault), started_at=record.started_at,
                             expires_at=record.expires_at)

    async def remove(self, injected: InjectedFault) -> float:
        """End the fault on its proxy; return when it ended."""
        record = await self._proxy(injected.service).remove(injected.fault_id)
        return record.ended_at or record.expires_at


class ChaosInjector:
    """The one injector the runner gets: picks the injector for each fault's kind.

    With a ``target``, a fault toward a host that is neither loopback nor in
    ``target.chaos_allowed_hosts`` is refused here too, whoever calls.
    """

    def __init__(self, by_kind: dict[str, FaultInjector], target: Target | None = None) -> None:
        self.by_kind = by_kind
        self.target = target
        self._owner: dict[str, FaultInjector] = {}

    def _for(self, kind: str) -> FaultInjector:
        injector = self.by_kind.get(kind)
        if injector is None:
            raise ConfigError(f"chaos refused: no target is configured for {kind!r} faults",
                              key="scenario.fault.kind")
        return injector

    async def inject(self, fault: Fault) -> InjectedFault:
        """Inject through the injector for ``fault.kind``."""
        if self.target is not None:
            problem = chaos_host_problem(fault_urls(fault, self.target), self.target)
            if problem is not None:
                raise ConfigError(problem, key="target.chaos_allowed_hosts")
        injector = self._for(fault.kind)
        injected = await injector.inject(fault)
        self._owner[injected.fault_id] = injector
        return injected

    async def remove(self, injected: InjectedFault) -> float:
        """Remove through the injector that injected it."""
        injector = self._owner.pop(injected.fault_id, None) or self._for(injected.kind)
        return await injector.remove(injected)


def build_injector(target: Target, client: httpx.AsyncClient, *,
                   log_dir: Path | None = None) -> ChaosInjector | None:
    """The injector for a target: only the kinds whose targets the config names."""
    from chaos.hooks import CommandFaultInjector
    from chaos.process import ProcessFaultInjector
    from chaos.toxiproxy import ToxiproxyInjector

    by_kind: dict[str, FaultInjector] = {}
    if target.fault_proxies:
        http = ProxyFaultInjector(target.fault_proxies, client)
        tcp = TcpProxyInjector(target.fault_proxies, client)
        by_kind.update(dict.fromkeys(("http_error", "latency", "abort"), http))
        by_kind.update(dict.fromkeys(TCP_KINDS, tcp))
    if target.processes:
        by_kind["process"] = ProcessFaultInjector(target.processes, log_dir=log_dir)
    if target.toxiproxy is not None:
        by_kind["toxiproxy"] = ToxiproxyInjector(target.toxiproxy, client, log_dir=log_dir)
    # Command hooks touch what the user's commands touch; the config check ties them to a
    # named target (readygate.config.fault_target_problem).
    by_kind["command"] = CommandFaultInjector(log_dir=log_dir)
    return ChaosInjector(by_kind, target)
