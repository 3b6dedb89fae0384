"""Client-side HTTP phase timings from httpcore's trace events, and TLS certificate expiry.

httpx passes the ``trace`` request extension down to httpcore, which calls it with
``connection.connect_tcp.started``, ``connection.start_tls.complete``,
``http11.receive_response_headers.complete`` and so on. Phases use blackbox_exporter's
names where they mean the same thing: ``resolve`` (the name lookup: 0 for an IP literal;
measured on the lean transport; on httpcore, which resolves inside its connect, a host
name's lookup stays in ``connect``), ``connect`` (TCP), ``tls`` (handshake),
``processing`` (request sent until the response headers arrived) and ``transfer``
(response body). A reused keep-alive connection has no resolve, connect or tls phase.

:func:`tls_facts` reads what blackbox reports of a TLS connection (version, the chain's
expiries, the leaf's fingerprint, subject, issuer and names).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import ssl
import time
from typing import Any

import httpx

from probes.model import TlsFacts


class PhaseTrace:
    """The ``trace`` extension callback: remembers when each httpcore event happened.

    On a fresh connection it also keeps the server's address and the name lookup's time:
    0 for an IP literal; measured by the lean transport (``probes.transport``) for names;
    unknown (None) for names on httpcore, which resolves inside its connect.
    """

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.start = time.perf_counter()
        self.server_addr: Any = None
        self.resolve_s: float | None = None
        self.tls: TlsFacts | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        # Drop the "connection."/"http11."/"http2." prefix: phases mean the same in each.
        event = name.split(".", 1)[-1]
        self.marks[event] = time.perf_counter()
        if event == "connect_tcp.started":
            self.resolve_s = 0.0 if _is_ip(str(info.get("host", ""))) else None
        elif event == "connect_tcp.complete":
            stream = info.get("return_value")
            if stream is not None:
                with contextlib.suppress(Exception):
                    self.server_addr = stream.get_extra_info("server_addr")
                measured = getattr(stream, "resolve_s", None)
                if measured is not None:
                    self.resolve_s = measured
        elif event == "start_tls.complete":
            stream = info.get("return_value")
            if stream is not None:
                # now, while the connection is open (a closed one may no longer say)
                with contextlib.suppress(Exception):
                    self.tls = tls_facts(stream.get_extra_info("ssl_object"))

    def _span(self, begin: str, end: str) -> float | None:
        if begin in self.marks and end in self.marks:
            return max(0.0, self.marks[end] - self.marks[begin])
        return None

    def phases(self) -> dict[str, float]:
        """Seconds per phase for the phases this request went through."""
        out: dict[str, float] = {}
        for phase, begin, end in (
                ("connect", "connect_tcp.started", "connect_tcp.complete"),
                ("tls", "start_tls.started", "start_tls.complete"),
                ("processing", "send_request_headers.started",
                 "receive_response_headers.complete"),
                ("transfer", "receive_response_headers.complete",
                 "receive_response_body.complete")):
            span = self._span(begin, end)
            if span is not None:
                out[phase] = span
        if "connect" in out and self.resolve_s is not None:
            # blackbox's phases: the lookup is "resolve", "connect" is TCP alone
            out["resolve"] = self.resolve_s
            out["connect"] = max(0.0, out["connect"] - self.resolve_s)
        return out

    def ttfb(self) -> float | None:
        """Time from the start of the request to the first response byte (the headers)."""
        mark = self.marks.get("receive_response_headers.complete")
        return None if mark is None else max(0.0, mark - self.start)


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def cert_expiry(response: httpx.Response) -> float | None:
    """The server certificate's notAfter as Unix time, for an https response; else None."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if cert and "notAfter" in cert:
        return float(ssl.cert_time_to_seconds(cert["notAfter"]))
    # With verification off the parsed form is empty; parse the DER if cryptography is there.
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    with contextlib.suppress(ImportError, ValueError):
        from cryptography import x509

        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    return None


# Go's zero time.Time as Unix seconds: what blackbox_exporter reports as the verified
# chain's expiry when nothing was verified (insecure_skip_verify).
GO_ZERO_TIME = -62135596800.0
_TLS_VERSIONS = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2",
                 "TLSv1.3": "TLS 1.3"}


_facts_cache: dict[tuple[bytes, ...], tuple[float, float, str, str, str, str]] = {}


def _certs(sslobj: Any, verified: bool) -> list[bytes]:
    # The chains are private API on Python < 3.13 (public from 3.13); the leaf always works.
    inner = getattr(sslobj, "_sslobj", sslobj)
    getter = getattr(inner, "get_verified_chain" if verified else "get_unverified_chain", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            chain = getter() or []
            return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    if verified:
        return []
    leaf = sslobj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def tls_facts(sslobj: Any) -> TlsFacts | None:
    """The facts of an established TLS connection (an ``ssl.SSLObject`` or socket)."""
    if sslobj is None:
        return None
    sent = _certs(sslobj, verified=False)
    if not sent:
        return None
    verified_mode = getattr(getattr(sslobj, "context", None), "verify_mode", ssl.CERT_REQUIRED)
    chain = _certs(sslobj, verified=True) if verified_mode != ssl.CERT_NONE else []
    key = (*sent, b"|", *chain)
    known = _facts_cache.get(key)
    if known is None:
        from cryptography import x509

        parsed = [x509.load_der_x509_certificate(der) for der in sent]
        leaf = parsed[0]
        earliest = min(c.not_valid_after_utc.timestamp() for c in parsed)
        chain_expiry = GO_ZERO_TIME
        if chain:
            chain_expiry = min(x509.load_der_x509_certificate(der).not_valid_after_utc
                               .timestamp() for der in chain)
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = ",".join(san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = ""
        known = (earliest, chain_expiry, hashlib.sha256(sent[0]).hexdigest(),
                 leaf.subject.rfc4514_string(), leaf.issuer.rfc4514_string(), names)
        if len(_facts_cache) > 256:  # certificates rotate; keep the cache small
            _facts_cache.clear()
        _facts_cache[key] = known
    version = _TLS_VERSIONS.get(sslobj.version() or "", "unknown")
    return TlsFacts(version, *known)
