"""Runs a blackbox module for one ``/probe`` request and answers its exposition.

The probe's bound is blackbox_exporter's: the scrape's
``X-Prometheus-Scrape-Timeout-Seconds`` (120 s without it) minus the 0.5 s offset, or the
module's ``timeout`` when that is shorter. ``probe_success`` and
``probe_duration_seconds`` are added to what the prober set; a prober that raised instead
of answering (a bug) is a failed probe, said once on stderr, never a success.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Protocol

from core import redact
from probes.blackbox.config import Module
from probes.blackbox.exposition import Series

TIMEOUT_OFFSET_S = 0.5
NO_HEADER_TIMEOUT_S = 120.0


class Prober(Protocol):
    """One module's prober."""

    async def probe(self, target: str, series: Series, deadline: float,
                    hostname: str | None = None) -> bool: ...


def build(module: Module) -> Prober:
    """The prober for a module (regexes compiled, settings checked, once)."""
    if module.prober == "http":
        from probes.blackbox.http import HttpProber

        return HttpProber(module)
    if module.prober == "tcp":
        from probes.blackbox.tcp import TcpProber

        return TcpProber(module)
    if module.prober == "dns":
        from probes.blackbox.dns import DnsProber

        return DnsProber(module)
    from probes.blackbox.icmp import IcmpProber

    return IcmpProber(module)


def probe_timeout(module: Module, header: str | None,
                  offset: float = TIMEOUT_OFFSET_S) -> float:
    """Seconds the probe may take (blackbox's rule); ValueError for a bad header."""
    scrape = float(header) if header else 0.0
    if scrape == 0:
        scrape = NO_HEADER_TIMEOUT_S
    bound = scrape - offset
    if 0 < module.timeout < bound or bound < 0:
        return module.timeout
    return bound


_reported: set[str] = set()


class BlackboxModules:
    """The modules of a blackbox.yml with their probers."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = dict(modules)
        self.probers = {name: build(m) for name, m in modules.items()}

    def __contains__(self, name: object) -> bool:
        return name in self.probers

    async def run(self, name: str, target: str, timeout_s: float,
                  hostname: str | None = None) -> str:
        """Probe ``target`` with module ``name``; the text exposition."""
        series = Series()
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            ok = await self.probers[name].probe(target, series, deadline, hostname)
        except Exception as exc:  # a bug in a prober: a failed probe, said once
            ok = False
            kind = f"{name}:{type(exc).__name__}"
            if kind not in _reported:
                _reported.add(kind)
                sys.stderr.write(redact.scrub(f"readygate probe serve: module {name!r} failed "
                                              f"unexpectedly: {type(exc).__name__}: {exc}\n"))
        series.set("probe_duration_seconds", time.perf_counter() - start)
        series.set("probe_success", 1.0 if ok else 0.0)
        return series.render()
