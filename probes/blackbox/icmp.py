"""blackbox_exporter's ``icmp`` prober: one echo request, the matching reply, its hop limit.

Sending ICMP needs a ping socket (Linux lets processes whose group is inside
``net.ipv4.ping_group_range`` open them) or a raw socket (the ``CAP_NET_RAW``
capability). :func:`icmp_problem` says which one this process lacks, so ``probe serve``
refuses an icmp module at start-up instead of failing every probe. Like blackbox, a ping
socket is tried first; ``dont_fragment`` needs a raw socket for IPv4.

Phases: ``resolve``, ``setup`` (the socket) and ``rtt`` (request sent until the reply).
``probe_icmp_reply_hop_limit`` is the reply's TTL (IPv4) or hop limit (IPv6).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import sys
import time
from pathlib import Path

from probes.blackbox.config import Module
from probes.blackbox.exposition import Series
from probes.blackbox.net import choose

_PHASE = "probe_icmp_duration_seconds"
# Linux socket options Python may not name
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IP_TTL = getattr(socket, "IP_TTL", 2)
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IPV6_UNICAST_HOPS = getattr(socket, "IPV6_UNICAST_HOPS", 16)
_PAYLOAD = b"readygate icmp probe"
_sequence = itertools.count(1)


def icmp_problem() -> str | None:
    """None when this process may send ICMP echo requests; else why not and how to fix it."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return None
        except OSError:
            continue
    try:
        groups = Path("/proc/sys/net/ipv4/ping_group_range").read_text().split()
    except OSError:
        groups = []
    shown = " ".join(groups) or "unknown"
    return (f"icmp probes need the CAP_NET_RAW capability (raw sockets) or ping sockets, and "
            f"this process has neither: its group {os.getgid()} is outside "
            f"net.ipv4.ping_group_range ({shown}); grant CAP_NET_RAW (setcap cap_net_raw+ep, "
            "or the container's capabilities) or widen that sysctl")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


class IcmpProber:
    """The icmp prober for one module."""

    def __init__(self, module: Module) -> None:
        self.cfg = module.icmp
        size = self.cfg.payload_size
        self.payload = (_PAYLOAD * (size // len(_PAYLOAD) + 1))[:size] if size else _PAYLOAD

    def _socket(self, family: int) -> tuple[socket.socket, bool]:
        """A ping socket if allowed, else a raw one; (socket, is_raw)."""
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        kinds = [socket.SOCK_DGRAM, socket.SOCK_RAW]
        if self.cfg.dont_fragment and family == socket.AF_INET:
            kinds = [socket.SOCK_RAW]
        error: OSError | None = None
        for kind in kinds:
            try:
                return socket.socket(family, kind, proto), kind == socket.SOCK_RAW
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    async def probe(self, target: str, series: Series, deadline: float,
                    hostname: str | None = None) -> bool:
        """Ping ``target`` until ``deadline`` (loop time); True when the reply came."""
        for phase in ("resolve", "setup", "rtt"):
            series.set(_PHASE, 0.0, (("phase", phase),))
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout_at(deadline):
                address, lookup_s, _ = await choose(target, self.cfg.preferred_ip_protocol,
                                                    self.cfg.ip_protocol_fallback, series)
                if address is None:
                    return False
                series.set(_PHASE, lookup_s, (("phase", "resolve"),))
                setup = time.perf_counter()
                v6 = address.family == socket.AF_INET6
                sock, raw = self._socket(address.family)
                sock.setblocking(False)
                if self.cfg.source_ip_address:
                    sock.bind((self.cfg.source_ip_address, 0))
                if v6:
                    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
                    if self.cfg.ttl:
                        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_UNICAST_HOPS, self.cfg.ttl)
                else:
                    if not raw:
                        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
                    if self.cfg.ttl:
                        sock.setsockopt(socket.IPPROTO_IP, _IP_TTL, self.cfg.ttl)
                    if self.cfg.dont_fragment:
                        sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
                series.set(_PHASE, time.perf_counter() - setup, (("phase", "setup"),))
                ident = os.getpid() & 0xFFFF
                seq = next(_sequence) & 0xFFFF
                kind = 128 if v6 else 8
                header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
                packet = header + self.payload
                if not v6:  # the kernel sums ICMPv6 itself
                    packet = struct.pack("!BBHHH", kind, 0, _checksum(packet), ident,
                                         seq) + self.payload
                sent = time.perf_counter()
                sock.sendto(packet, (address.ip, 0))  # one datagram: never blocks
                hop = await self._reply(sock, address.ip, v6, raw, ident, seq)
                series.set(_PHASE, time.perf_counter() - sent, (("phase", "rtt"),))
                if hop >= 0:
                    series.set("probe_icmp_reply_hop_limit", float(hop))
                return True
        except (OSError, TimeoutError):
            return False
        finally:
            if sock is not None:
                sock.close()

    async def _reply(self, sock: socket.socket, ip: str, v6: bool, raw: bool, ident: int,
                     seq: int) -> int:
        """Wait for the matching echo reply; its hop limit (-1 when unknown)."""
        loop = asyncio.get_running_loop()
        want = 129 if v6 else 0
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(sock.fileno(), _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(sock.fileno())
            try:
                data, ancdata, _, peer = sock.recvmsg(65535, 256)
            except BlockingIOError:
                continue
            hop = -1
            if raw and not v6:
                ihl = (data[0] & 0x0F) * 4
                hop = data[8]
                data = data[ihl:]
            for level, kind, value in ancdata:
                if (level, kind) in ((socket.IPPROTO_IP, _IP_TTL),
                                     (socket.IPPROTO_IPV6, _IPV6_HOPLIMIT)) and value:
                    hop = int.from_bytes(value[:4], sys.byteorder) if len(value) >= 4 else value[0]
            if peer[0].split("%", 1)[0] != ip or len(data) < 8:
                continue
            kind, _, _, got_id, got_seq = struct.unpack("!BBHHH", data[:8])
            # A ping socket's kernel picks the identifier: only raw sockets can check it.
            if kind != want or got_seq != seq or (raw and got_id != ident):
                continue
            if data[8:] != self.payload:
                continue
            return hop
