"""blackbox_exporter's ``tcp`` prober: connect (optionally over TLS), then query/expect.

``query_response`` steps run in order: ``expect`` reads lines until one matches (the
connection closing first fails the probe with ``probe_failed_due_to_regex 1``), ``send``
writes a line (``${1}`` / ``$name`` take groups of the last match, Go's template syntax),
``starttls`` upgrades the connection. With ``tls: true`` the handshake is part of the
connect, as in blackbox.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from probes.blackbox import tls as bbtls
from probes.blackbox.config import Module, compile_regexp
from probes.blackbox.exposition import Series, set_tls_series
from probes.blackbox.net import choose
from probes.timing import tls_facts


def split_host_port(target: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``host:port`` or ``[v6]:port``; ValueError otherwise."""
    if target.startswith("["):
        end = target.find("]")
        if end < 0 or not target[end + 1:].startswith(":"):
            raise ValueError(f"address {target}: missing port")
        return target[1:end], target[end + 2:]
    host, sep, port = target.rpartition(":")
    if not sep:
        raise ValueError(f"address {target}: missing port in address")
    if ":" in host:
        raise ValueError(f"address {target}: too many colons in address")
    return host, port


def _name(template: str, i: int) -> tuple[str, int] | None:
    """The group name at ``template[i:]`` (``name`` or ``{name}``) and where it ends."""
    brace = i < len(template) and template[i] == "{"
    j = i + 1 if brace else i
    k = j
    while k < len(template) and (template[k].isalnum() or template[k] == "_"):
        k += 1
    if k == j:
        return None
    if brace:
        if k >= len(template) or template[k] != "}":
            return None
        return template[j:k], k + 1
    return template[j:k], k


def expand(template: str, match: Any) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if template[i + 1:i + 2] == "$":
            out.append("$")
            i += 2
            continue
        found = _name(template, i + 1)
        if found is None:
            out.append("$")  # malformed: the $ is text
            i += 1
            continue
        name, i = found
        value: Any = None
        if name.isdigit():
            index = int(name)
            if index <= match.re.groups:
                value = match.group(index)
        elif name in match.re.groupindex:
            value = match.group(name)
        out.append(value or "")
    return "".join(out)


class TcpProber:
    """The tcp prober for one module."""

    def __init__(self, module: Module) -> None:
        self.cfg = module.tcp
        self.steps = [(q, compile_regexp(q.expect) if q.expect is not None else None)
                      for q in self.cfg.query_response]

    async def probe(self, target: str, series: Series, deadline: float,
                    hostname: str | None = None) -> bool:
        """Probe ``host:port`` until ``deadline`` (loop time); True on success."""
        series.set("probe_failed_due_to_regex", 0.0)
        try:
            host, port_text = split_host_port(target)
            port = int(port_text)
        except ValueError:
            return False
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout_at(deadline):
                address, _, _ = await choose(host, self.cfg.preferred_ip_protocol,
                                             self.cfg.ip_protocol_fallback, series)
                if address is None:
                    return False
                ctx: ssl.SSLContext | None = None
                sni = self.cfg.tls_config.server_name or host
                if self.cfg.tls:
                    ctx = bbtls.context(self.cfg.tls_config)
                local = ((self.cfg.source_ip_address, 0) if self.cfg.source_ip_address
                         else None)
                reader, writer = await asyncio.open_connection(
                    address.ip, port, ssl=ctx, server_hostname=sni if ctx else None,
                    local_addr=local)
                if ctx is not None:
                    facts = tls_facts(writer.get_extra_info("ssl_object"))
                    if facts is not None:
                        set_tls_series(series, facts)
                return await self._dialogue(reader, writer, series, sni)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            return False
        finally:
            if writer is not None:
                writer.close()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        series: Series, sni: str) -> bool:
        for query, regexp in self.steps:
            send = query.send
            if regexp is not None:
                match = None
                while match is None:
                    line = await reader.readline()
                    if not line:
                        series.set("probe_failed_due_to_regex", 1.0)
                        return False
                    # bufio.ScanLines: the line without its \n and a \r before it
                    text = line.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    match = regexp.search(text)
                series.set("probe_failed_due_to_regex", 0.0)
                send = expand(send, match)
            if send:
                writer.write(send.encode() + b"\n")
                await writer.drain()
            if query.starttls:
                ctx = bbtls.context(self.cfg.tls_config)
                await writer.start_tls(ctx, server_hostname=sni)
                facts = tls_facts(writer.get_extra_info("ssl_object"))
                if facts is not None:
                    set_tls_series(series, facts)
        return True
