"""Per-phase timings, TLS certificate expiry, and schedules a hung target cannot delay."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.journeys import Journey
from probes.metrics import render_single
from probes.model import ProbeResult
from probes.scheduler import ProbeScheduler
from probes.spec import HttpJourney, Retry, Step
from tests.fixtures.demo_system import Demo


def self_signed(tmp: Path, days: int) -> tuple[Path, Path, datetime.datetime]:
    """A cert for 127.0.0.1 valid for ``days`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "readygate test")])
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, not_after


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the second request reuses the connection

    def do_GET(self) -> None:
        body = b"ok" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path, datetime.datetime]]:
    """An https server on a free loopback port with a fresh self-signed cert (42 days)."""
    cert, key, not_after = self_signed(tmp_path, 42)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, not_after
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_one(spec: HttpJourney, base_url: str, verify: ssl.SSLContext | bool = True
            ) -> ProbeResult:
    async def go() -> ProbeResult:
        async with httpx.AsyncClient(verify=verify, trust_env=False) as client:
            return await Journey("tls", spec, base_url).run(client)
    return asyncio.run(go())


GET_TWICE = HttpJourney(steps=[Step(name="first", url="/"), Step(name="second", url="/")])


def test_https_timings_by_phase_and_the_certificate_expiry(https_server: tuple[str, Path,
                                                                             datetime.datetime]
                                                           ) -> None:
    url, cert, not_after = https_server
    result = run_one(GET_TWICE, url, ssl.create_default_context(cafile=str(cert)))
    assert result.success, result.error
    first, second = result.steps
    # an IP literal: the resolve phase is there, and 0 (no lookup happened)
    assert set(first.phases) == {"resolve", "connect", "tls", "processing", "transfer"}
    assert first.phases["resolve"] == 0.0
    assert first.phases["tls"] > 0 and first.ttfb_s is not None
    assert first.ttfb_s >= first.phases["tls"]
    # keep-alive: the second request reuses the connection, so no connect or TLS phase
    assert set(second.phases) == {"processing", "transfer"}
    assert result.tls_cert_expiry == not_after.timestamp()
    text = render_single(result).decode()
    expiry = next(line for line in text.splitlines()
                  if line.startswith('probe_ssl_earliest_cert_expiry{journey="tls"}'))
    assert float(expiry.rsplit(" ", 1)[1]) == not_after.timestamp()
    assert 'probe_http_ssl{journey="tls"} 1.0' in text
    assert 'probe_http_duration_seconds{journey="tls",phase="tls"}' in text
    # blackbox's TLS series, from the meaningful (last) step's connection
    assert 'probe_tls_version_info{journey="tls",version="TLS 1.3"} 1.0' in text
    assert 'probe_ssl_last_chain_info{fingerprint_sha256="' in text
    assert 'probe_http_version{journey="tls"} 1.1' in text
    assert 'probe_ip_protocol{journey="tls"} 4.0' in text


def test_certificate_expiry_is_read_even_without_verification(
        https_server: tuple[str, Path, datetime.datetime]) -> None:
    url, _, not_after = https_server
    result = run_one(GET_TWICE, url, verify=False)
    assert result.tls_cert_expiry == not_after.timestamp()


def test_an_untrusted_certificate_is_a_precise_failure(
        https_server: tuple[str, Path, datetime.datetime]) -> None:
    url, _, _ = https_server
    result = run_one(GET_TWICE, url)
    assert result.error is not None
    assert result.error.startswith("first: GET /: ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")


@pytest.fixture()
def hung_target() -> Iterator[str]:
    """A loopback port whose kernel accepts connections and where nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_a_hung_target_does_not_delay_the_other_journeys(demo: Demo, hung_target: str) -> None:
    web = demo.web().url
    assert web is not None
    interval = 0.25
    no_retry = Retry(attempts=1)
    hung = Journey("hung", HttpJourney(timeout_s=1.0, retry=no_retry,
                                       steps=[Step(name="get", url="/health")]),
                   hung_target, interval)
    healthy = [Journey(f"health-{i}", HttpJourney(steps=[Step(name="ready",
                                                             url="/health/ready")]),
                       web, interval) for i in range(2)]
    late: dict[str, list[float]] = {}
    results: list[ProbeResult] = []

    def started(name: str, scheduled: float, actual: float) -> None:
        late.setdefault(name, []).append(actual - scheduled)

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            scheduler = ProbeScheduler([hung, *healthy], client, results.append,
                                       on_start=started)
            scheduler.start()
            deadline = time.monotonic() + 10
            # run until the hung journey has timed out twice (bounded by the deadline)
            while time.monotonic() < deadline and sum(
                    1 for r in results if r.journey == "hung") < 2:
                await asyncio.sleep(0.05)
            await scheduler.stop()

    asyncio.run(go())
    hung_results = [r for r in results if r.journey == "hung"]
    assert len(hung_results) >= 2
    assert hung_results[0].error == "get: GET /health: no answer within 1s (ReadTimeout)"
    for journey in healthy:
        runs = [r for r in results if r.journey == journey.name]
        assert all(r.success for r in runs), [r.error for r in runs]
        # >= 2 s of schedule at 0.25 s: at least 7 runs each, none held up by the hung one.
        # A scheduler that waited on it would start them a whole timeout (1 s) late; 0.5 s
        # leaves room for a busy machine (`make test` runs three workers on two cores: a
        # start 125 ms late was seen there), and the median stays near zero.
        assert len(late[journey.name]) >= 7
        assert max(late[journey.name]) < 0.5, late[journey.name]
        assert sorted(late[journey.name])[len(late[journey.name]) // 2] < 0.05
