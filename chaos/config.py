"""Faults and Chaos Toolkit experiments: ``scenario.fault`` and ``scenario.experiment``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from core.config import Model, Severity
from core.target import Target, url_host


class _FaultBase(Model):
    """What every fault has: the named target it touches and the TTL that ends it."""

    service: str = Field(description="the named target (see docs/chaos.md per kind)")
    ttl_s: float = Field(120.0, gt=0, le=3600, description="the fault removes itself after this")


class HttpFault(_FaultBase):
    """A fault injected through the HTTP fault proxy in front of ``service``."""

    kind: Literal["http_error", "latency", "abort"] = "http_error"
    status: int = Field(500, ge=400, le=599)
    rate: float = Field(1.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=600_000)
    jitter_ms: int = Field(0, ge=0, le=600_000)
    path_prefix: str | None = None
    methods: list[str] | None = None


class TcpFault(_FaultBase):
    """A fault injected through the TCP fault proxy (``python -m chaos.tcpproxy``)."""

    kind: Literal["tcp_latency", "tcp_reset", "tcp_blackhole", "tcp_bandwidth"]
    latency_ms: int = Field(0, ge=0, le=600_000, description="tcp_latency: per chunk")
    jitter_ms: int = Field(0, ge=0, le=600_000)
    bytes_per_s: int | None = Field(None, gt=0, description="tcp_bandwidth: the limit")
    direction: Literal["both", "upstream", "downstream"] = "both"

    @model_validator(mode="after")
    def _needs(self) -> TcpFault:
        if self.kind == "tcp_bandwidth" and self.bytes_per_s is None:
            raise ValueError("tcp_bandwidth needs bytes_per_s")
        return self


class ProcessFault(_FaultBase):
    """Pause (SIGSTOP, resumed on rollback or TTL), kill or terminate a named local process."""

    kind: Literal["process"]
    action: Literal["stop", "kill", "term"] = "stop"
    scope: Literal["tree", "group", "pid"] = Field(
        "tree", description="tree: the pidfile's process and all its descendants; group: its "
                            "process group; pid: that process only")
    verify_s: float = Field(5.0, gt=0, le=600, description="how long the effect may take to "
                            "show (stop: stopped; kill/term: gone) before injection fails")


class CommandFault(_FaultBase):
    """The user's own shell commands: ``inject`` starts the fault, ``rollback`` ends it."""

    kind: Literal["command"]
    inject: str = Field(min_length=1)
    rollback: str = Field(min_length=1, description="also run by a watchdog at the TTL")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="per command")


class ToxiproxyFault(_FaultBase):
    """A toxic added to a Toxiproxy proxy (``type: down`` disables the proxy instead)."""

    kind: Literal["toxiproxy"]
    type: Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                  "limit_data", "down"]
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0, le=1)
    attributes: dict[str, int | float] = Field(default_factory=dict)


FAULT_KINDS: dict[str, type[_FaultBase]] = {
    "http_error": HttpFault, "latency": HttpFault, "abort": HttpFault,
    "tcp_latency": TcpFault, "tcp_reset": TcpFault, "tcp_blackhole": TcpFault,
    "tcp_bandwidth": TcpFault, "process": ProcessFault, "command": CommandFault,
    "toxiproxy": ToxiproxyFault}
"""Every fault ``kind`` and its model."""


def _fault_tag(value: Any) -> str:
    """The union tag of a fault: its kind (``http_error`` when omitted, as before the union)."""
    kind = value.get("kind", "http_error") if isinstance(value, dict) else \
        getattr(value, "kind", "http_error")
    return str(kind)


Fault = Annotated[
    Union[  # noqa: UP007
        Annotated[HttpFault, Tag("http_error")], Annotated[HttpFault, Tag("latency")],
        Annotated[HttpFault, Tag("abort")], Annotated[TcpFault, Tag("tcp_latency")],
        Annotated[TcpFault, Tag("tcp_reset")], Annotated[TcpFault, Tag("tcp_blackhole")],
        Annotated[TcpFault, Tag("tcp_bandwidth")], Annotated[ProcessFault, Tag("process")],
        Annotated[CommandFault, Tag("command")], Annotated[ToxiproxyFault, Tag("toxiproxy")]],
    Discriminator(_fault_tag),
]
"""Any fault; ``kind`` selects the model (docs/chaos.md lists them)."""


class Experiment(Model):
    """A Chaos Toolkit experiment run during the fault phase; its journal becomes a check."""

    path: str = Field(description="experiment file (JSON or YAML), relative to the checkout")
    configuration: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the experiment's configuration")
    timeout_s: float = Field(300.0, gt=0, le=86400)
    severity: Severity = "critical"


def fault_target_problem(fault: Fault, target: Target) -> str | None:
    """Why ``fault`` may not run on ``target`` (chaos touches only named targets), or None."""
    def missing(where: str, names: Mapping[str, Any]) -> str:
        return f"{fault.service!r} is not in target.{where} ({', '.join(sorted(names))})"

    if isinstance(fault, HttpFault | TcpFault):
        # Empty fault_proxies: `--demo` fills them in at run time; the injector checks again.
        if target.fault_proxies and fault.service not in target.fault_proxies:
            return missing("fault_proxies", target.fault_proxies)
    elif isinstance(fault, ProcessFault):
        if fault.service not in target.processes:
            return missing("processes", target.processes)
    elif isinstance(fault, ToxiproxyFault):
        if target.toxiproxy is None:
            return "a toxiproxy fault needs target.toxiproxy (url and proxies)"
        if fault.service not in target.toxiproxy.proxies:
            return missing("toxiproxy.proxies", target.toxiproxy.proxies)
    else:
        named = {**target.services, **target.fault_proxies, **target.processes,
                 **(target.toxiproxy.proxies if target.toxiproxy else {})}
        if named and fault.service not in named:
            return f"{fault.service!r} is not a target named in the config " \
                   f"({', '.join(sorted(named))})"
    return chaos_host_problem(fault_urls(fault, target), target)


def fault_urls(fault: Fault, target: Target) -> list[tuple[str, str]]:
    """The URLs ``fault`` acts on, each with the key naming it (process faults are local)."""
    if isinstance(fault, ProcessFault):
        return []
    out = [(f"target.{where}.{fault.service}", urls[fault.service])
           for where, urls in (("services", target.services),
                               ("fault_proxies", target.fault_proxies))
           if fault.service in urls]
    toxiproxy = target.toxiproxy
    if toxiproxy is not None and (isinstance(fault, ToxiproxyFault)
                                  or fault.service in toxiproxy.proxies):
        out.append(("target.toxiproxy.url", toxiproxy.url))
    return out


def experiment_urls(experiment: Experiment, target: Target) -> list[tuple[str, str]]:
    """The URLs an experiment is handed to act on: every service and fault proxy, and the
    URLs in its configuration overrides (backends only observe, so they are not here)."""
    out = [(f"target.services.{n}", u) for n, u in target.services.items()]
    out += [(f"target.fault_proxies.{n}", u) for n, u in target.fault_proxies.items()]
    out += [(f"scenario.experiment.configuration.{k}", v)
            for k, v in experiment.configuration.items()
            if isinstance(v, str) and re.match(r"^https?://", v)]
    return out


def chaos_host_problem(urls: list[tuple[str, str]], target: Target) -> str | None:
    """Why chaos may not act on one of ``urls`` (a host neither loopback nor allowed), or None."""
    for where, url in urls:
        host = url_host(url)
        if not target.chaos_allows(host):
            return (f"chaos refused: {where} is on host {host or '?'}, which is not loopback "
                    f"and not in target.chaos_allowed_hosts (set target.chaos_allowed_hosts: "
                    f"[{host or '...'}] to allow faults there)")
    return None
