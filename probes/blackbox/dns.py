"""blackbox_exporter's ``dns`` prober: one query to the target server, answers judged.

The target is the server (``host`` or ``host:port``, port 53, 853 for DNS over TLS).
The query is ``query_name`` / ``query_type`` (default ANY) / ``query_class`` with the RD
flag as ``recursion_desired`` says, no EDNS (as miekg/dns sends it), over UDP (a
truncated answer is judged as it is, not retried), TCP or TLS. Phases: ``resolve`` (the
server's name), ``connect`` (the socket; for TCP the handshake) and ``request`` (query
sent until the answer arrived). The answer passes when its rcode is in ``valid_rcodes``
(default NOERROR) and every section passes its ``validate_*_rrs`` regexes, matched
against each record in miekg/dns's text form (``name<TAB>ttl<TAB>class<TAB>type<TAB>rdata``)
so the same patterns work in both exporters.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probes.blackbox import tls as bbtls
from probes.blackbox.config import DNSProbe, Module, RRValidator, compile_regexp
from probes.blackbox.exposition import Series
from probes.blackbox.net import choose
from probes.blackbox.tcp import split_host_port

_PHASE = "probe_dns_duration_seconds"


def _labels(phase: str) -> tuple[tuple[str, str], ...]:
    return (("phase", phase),)


def record_texts(rrsets: list[dns.rrset.RRset]) -> list[str]:
    """Every record of the sections' RRsets in miekg/dns's ``RR.String()`` layout."""
    out: list[str] = []
    for rrset in rrsets:
        head = (f"{rrset.name.to_text()}\t{rrset.ttl}\t"
                f"{dns.rdataclass.to_text(rrset.rdclass)}\t{dns.rdatatype.to_text(rrset.rdtype)}")
        out.extend(f"{head}\t{rdata.to_text()}" for rdata in rrset)
    return out


class _Validator:
    def __init__(self, v: RRValidator) -> None:
        self.matches = [compile_regexp(p) for p in v.fail_if_matches_regexp]
        self.all_match = [compile_regexp(p) for p in v.fail_if_all_match_regexp]
        self.not_matches = [compile_regexp(p) for p in v.fail_if_not_matches_regexp]
        self.none_matches = [compile_regexp(p) for p in v.fail_if_none_matches_regexp]

    def ok(self, records: list[str]) -> bool:
        if not records and (self.not_matches or self.none_matches):
            return False
        any_match, all_match = False, True
        for rr in records:
            if any(r.search(rr) for r in self.matches):
                return False
            if any(not r.search(rr) for r in self.all_match):
                all_match = False
            if any(not r.search(rr) for r in self.not_matches):
                return False
            if any(r.search(rr) for r in self.none_matches):
                any_match = True
        if self.all_match and not all_match:
            return False
        return not (self.none_matches and not any_match)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, query: dns.message.Message, answer: asyncio.Future[bytes]) -> None:
        self.query = query
        self.answer = answer

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.answer.done():
            return
        try:
            reply = dns.message.from_wire(data, ignore_trailing=True)
        except dns.exception.DNSException:
            return  # not a DNS answer: keep waiting, as miekg/dns does
        if self.query.is_response(reply):
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class DnsProber:
    """The dns prober for one module."""

    def __init__(self, module: Module) -> None:
        assert module.dns is not None
        self.cfg: DNSProbe = module.dns
        self.qname = dns.name.from_text(self.cfg.query_name)
        self.qtype = dns.rdatatype.from_text(self.cfg.query_type)
        self.qclass = dns.rdataclass.from_text(self.cfg.query_class)
        self.rcodes = {dns.rcode.from_text(r) for r in self.cfg.valid_rcodes}
        self.answer = _Validator(self.cfg.validate_answer_rrs)
        self.authority = _Validator(self.cfg.validate_authority_rrs)
        self.additional = _Validator(self.cfg.validate_additional_rrs)

    def _query(self) -> dns.message.Message:
        query = dns.message.make_query(self.qname, self.qtype, self.qclass, use_edns=False)
        if not self.cfg.recursion_desired:
            query.flags &= ~dns.flags.RD
        return query

    async def probe(self, target: str, series: Series, deadline: float,
                    hostname: str | None = None) -> bool:
        """Query the server ``target`` until ``deadline`` (loop time); True on success."""
        cfg = self.cfg
        for phase in ("resolve", "connect", "request"):
            series.set(_PHASE, 0.0, _labels(phase))
        for name in ("probe_dns_answer_rrs", "probe_dns_authority_rrs",
                     "probe_dns_additional_rrs", "probe_dns_query_succeeded"):
            series.set(name, 0.0)
        try:
            host, port_text = split_host_port(target)
        except ValueError:
            host, port_text = target, "853" if cfg.dns_over_tls else "53"
        try:
            port = int(port_text)
        except ValueError:
            return False
        reply: dns.message.Message | None = None
        try:
            async with asyncio.timeout_at(deadline):
                address, lookup_s, _ = await choose(host, cfg.preferred_ip_protocol,
                                                    cfg.ip_protocol_fallback, series)
                if address is None:
                    return False
                series.set(_PHASE, lookup_s, _labels("resolve"))
                query = self._query()
                start = time.perf_counter()
                rtt = 0.0  # as miekg/dns: no answer, no round trip; connect is all the time
                try:
                    if cfg.transport_protocol == "udp":
                        data, rtt = await self._udp(query, address.ip, address.family, port)
                    else:
                        data, rtt = await self._tcp(query, address.ip, port, host)
                finally:
                    total = time.perf_counter() - start
                    series.set(_PHASE, max(0.0, total - rtt), _labels("connect"))
                    series.set(_PHASE, rtt, _labels("request"))
                reply = dns.message.from_wire(data, ignore_trailing=True)
        except (OSError, TimeoutError, EOFError, dns.exception.DNSException, ValueError):
            return False
        return self._judge(reply, series)

    async def _udp(self, query: dns.message.Message, ip: str, family: int,
                   port: int) -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        local = (self.cfg.source_ip_address, 0) if self.cfg.source_ip_address else None
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(query, answer), remote_addr=(ip, port), family=family,
            local_addr=local)
        try:
            sent = time.perf_counter()
            transport.sendto(query.to_wire())
            data = await answer
            return data, time.perf_counter() - sent
        finally:
            transport.close()

    async def _tcp(self, query: dns.message.Message, ip: str, port: int,
                   host: str) -> tuple[bytes, float]:
        ctx = None
        if self.cfg.dns_over_tls:
            ctx = bbtls.context(self.cfg.tls_config)
        local = (self.cfg.source_ip_address, 0) if self.cfg.source_ip_address else None
        reader, writer = await asyncio.open_connection(
            ip, port, ssl=ctx, server_hostname=(self.cfg.tls_config.server_name or host)
            if ctx else None, local_addr=local)
        try:
            sent = time.perf_counter()
            wire = query.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                reply = dns.message.from_wire(data, ignore_trailing=True)
                if query.is_response(reply):
                    return data, time.perf_counter() - sent
        finally:
            writer.close()

    def _judge(self, reply: dns.message.Message | None, series: Series) -> bool:
        if reply is None:
            return False
        series.set("probe_dns_answer_rrs", float(sum(len(r) for r in reply.answer)))
        series.set("probe_dns_authority_rrs", float(sum(len(r) for r in reply.authority)))
        series.set("probe_dns_additional_rrs", float(sum(len(r) for r in reply.additional)
                                                     + (1 if reply.opt is not None else 0)))
        series.set("probe_dns_query_succeeded", 1.0)
        if self.qtype == dns.rdatatype.SOA:
            series.set("probe_dns_serial", 0.0)
            for rrset in reply.answer:
                if rrset.rdtype == dns.rdatatype.SOA:
                    for rdata in rrset:
                        series.set("probe_dns_serial", float(rdata.serial))
        if reply.rcode() not in self.rcodes:
            return False
        return (self.answer.ok(record_texts(reply.answer))
                and self.authority.ok(record_texts(reply.authority))
                and self.additional.ok(record_texts(reply.additional)))

