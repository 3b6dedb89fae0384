"""Client-side HTTP phase timings from httpcore's trace events, and TLS certificate expiry.

httpx passes the ``trace`` request extension down to httpcore, which calls it with
``connection.connect_tcp.started``, ``connection.start_tls.complete``,
``http11.receive_response_headers.complete`` and so on. Phases use blackbox_exporter's
names where they mean the same thing: ``connect`` (TCP, including DNS: httpcore resolves
inside connect), ``tls`` (handshake), ``processing`` (request sent until the response
headers arrived) and ``transfer`` (response body). A reused keep-alive connection has no
connect or tls phase.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from typing import Any

import httpx


class PhaseTrace:
    """The ``trace`` extension callback: remembers when each httpcore event happened."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.start = time.perf_counter()

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        # Drop the "connection."/"http11."/"http2." prefix: phases mean the same in each.
        self.marks[name.split(".", 1)[-1]] = time.perf_counter()

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
        return out

    def ttfb(self) -> float | None:
        """Time from the start of the request to the first response byte (the headers)."""
        mark = self.marks.get("receive_response_headers.complete")
        return None if mark is None else max(0.0, mark - self.start)


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
