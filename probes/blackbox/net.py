"""Choosing the address to probe, as blackbox_exporter does, and its series.

``preferred_ip_protocol`` (default ``ip6``) with ``ip_protocol_fallback`` (default on):
the first address of the preferred family, else the last one of the other family. Without
fallback only the preferred family is looked up. Every prober reports
``probe_dns_lookup_time_seconds``, ``probe_ip_protocol`` (4 or 6) and
``probe_ip_addr_hash`` (FNV-1a of the address bytes: a change of address shows as a change
of value) from here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass

from probes.blackbox.exposition import Series

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def ip_hash(packed: bytes) -> float:
    """32-bit FNV-1a of the address bytes (4 for IPv4, 16 for IPv6)."""
    h = _FNV_OFFSET
    for byte in packed:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return float(h)


@dataclass(frozen=True, slots=True)
class Address:
    """A resolved address to dial."""

    ip: str
    family: int  # socket.AF_INET or AF_INET6
    hash: float

    @property
    def protocol(self) -> int:
        """4 or 6."""
        return 6 if self.family == socket.AF_INET6 else 4


_LITERALS: dict[str, Address | None] = {}


def _literal(host: str) -> Address | None:
    """The address of an IP literal (cached: parsing costs more than the rest of a lookup)."""
    if host in _LITERALS:
        return _LITERALS[host]
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        found = None
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        found = Address(ip.compressed, family, ip_hash(ip.packed))
    if len(_LITERALS) < 4096:
        _LITERALS[host] = found
    return found


def _address(ip: str, family: int) -> Address:
    parsed = ipaddress.ip_address(ip.split("%", 1)[0])
    return Address(ip, family, ip_hash(parsed.packed))


class ResolveError(Exception):
    """The target's name did not resolve to a usable address."""


async def lookup(host: str, family: int = socket.AF_UNSPEC) -> list[Address]:
    """Every address of ``host`` (an IP literal is its own single address)."""
    literal = _literal(host)
    if literal is not None:
        if family not in (socket.AF_UNSPEC, literal.family):
            raise ResolveError(f"no suitable address for {host}")
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(f"lookup {host}: {exc.strerror or exc}") from None
    out: list[Address] = []
    seen: set[str] = set()
    for fam, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in seen and fam in (socket.AF_INET, socket.AF_INET6):
            seen.add(ip)
            out.append(_address(ip, fam))
    if not out:
        raise ResolveError(f"no addresses for {host}")
    return out


async def choose(host: str, preferred: str, fallback: bool, series: Series
                 ) -> tuple[Address | None, float, str | None]:
    """The address to probe, the lookup time, and why there is none.

    Sets ``probe_ip_protocol``, ``probe_ip_addr_hash`` and ``probe_dns_lookup_time_seconds``
    (all three exist on every probe, 0 when there is no address).
    """
    series.set("probe_ip_protocol", 0.0)
    series.set("probe_ip_addr_hash", 0.0)
    want = socket.AF_INET6 if preferred == "ip6" else socket.AF_INET
    start = time.perf_counter()
    chosen: Address | None = None
    error: str | None = None
    try:
        if not fallback:
            chosen = (await lookup(host, want))[0]
            protocol = chosen.protocol
        else:
            other: Address | None = None
            for address in await lookup(host):
                if address.family == want:
                    chosen = address
                    break
                other = address
            if chosen is None:
                chosen = other
            protocol = 4 if want == socket.AF_INET6 else 6  # the fallback family
            if chosen is not None and chosen.family == want:
                protocol = chosen.protocol
            if chosen is None:
                error = f"no address for {host}"
    except ResolveError as exc:
        error = str(exc)
    elapsed = time.perf_counter() - start
    series.set("probe_dns_lookup_time_seconds", elapsed)
    if chosen is not None:
        series.set("probe_ip_protocol", float(protocol))
        series.set("probe_ip_addr_hash", chosen.hash)
    return chosen, elapsed, error
