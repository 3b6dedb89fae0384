"""`probe serve --blackbox-config` answers what blackbox_exporter answers, probe for probe.

The real blackbox_exporter (Debian package) and `readygate probe serve` read the same
blackbox.yml and probe the same local targets: http ok, 404, a followed and an unfollowed
redirect, a POST with its own valid status, a refused port, https with a private CA (and
basic auth), body and header regexes, chunked and Last-Modified answers, tcp (connect,
query/expect with a group expanded into the reply, TLS), dns against a dnspython server
this test starts, and icmp where this process may open raw or ping sockets. For every case
the two expositions must have the same series names, types and label sets (label values
included: phases, TLS version, certificate fingerprint, subject, issuer), the same
``probe_success`` and the same value for every series that is not a duration.
"""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.procs import ManagedProcess
from demo.stack import free_port
from probes.blackbox.icmp import icmp_problem
from tests.fixtures.tls import Pki, https_server, make_pki

ROOT = Path(__file__).resolve().parents[2]
BLACKBOX = shutil.which("prometheus-blackbox-exporter")
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
# miekg/dns's text form of a record, tabs between fields: the same regex works in both
A_RECORD = r"^example\.test\.\t300\tIN\tA\t192\.0\.2\.1$"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BLACKBOX is None, reason="prometheus-blackbox-exporter is not installed "
                                                "(bash scripts/install-os-deps.sh)"),
]


# --- the targets ---

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._send(200, b"hello from the target\n", {"Last-Modified": LAST_MODIFIED})
        elif self.path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one ", b"two ", b"three\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, b"not here\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._send(201 if body == b"payload" else 400, b"created\n")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Http(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # http.server's 5 drops bursts (FIELD-NOTES "Small servers")


class _Banner(socketserver.StreamRequestHandler):
    """A line protocol: '220 ready', then 'EHLO <word>' is answered '250 <word>-ack'."""

    def handle(self) -> None:
        self.wfile.write(b"220 ready\r\n")
        line = self.rfile.readline().decode().strip()
        if line.startswith("EHLO "):
            self.wfile.write(f"250 {line[5:]}-ack\r\n".encode())


class _Tcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _dns_server(stop: threading.Event) -> tuple[int, threading.Thread]:
    """A tiny authoritative server: example.test A 192.0.2.1 and SOA; NXDOMAIN otherwise."""
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            question = query.question[0]
            name = question.name.to_text()
            if name == "example.test." and question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.1"))
            elif name == "example.test." and question.rdtype == dns.rdatatype.SOA:
                reply.answer.append(dns.rrset.from_text(
                    name, 300, "IN", "SOA", "ns.example.test. admin.example.test. 2024010101 "
                                            "3600 600 86400 300"))
            elif name != "example.test.":
                reply.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(reply.to_wire(), peer)
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock.getsockname()[1], thread


@dataclass
class Targets:
    http: str
    https: str
    https_auth: str
    banner: str
    dns: str
    refused: int
    pki: Pki


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    web = _Http(("127.0.0.1", 0), _Handler)
    banner = _Tcp(("127.0.0.1", 0), _Banner)
    stop = threading.Event()
    dns_port, dns_thread = _dns_server(stop)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                daemon=True) for s in (web, banner)]
    for t in threads:
        t.start()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    try:
        with https_server(pki) as (https, _), \
                https_server(pki, basic_auth=("prober", "parity-secret-1")) as (https_auth, _):
            yield Targets(f"http://127.0.0.1:{web.server_address[1]}", https, https_auth,
                          f"127.0.0.1:{banner.server_address[1]}", f"127.0.0.1:{dns_port}",
                          refused, pki)
    finally:
        stop.set()
        for server in (web, banner):
            server.shutdown()
            server.server_close()
        dns_thread.join(5)


def blackbox_yml(pki: Pki, icmp: bool) -> str:
    text = f"""
modules:
  http_2xx:
    prober: http
    timeout: 5s
  http_post_201:
    prober: http
    timeout: 5s
    http:
      method: POST
      body: payload
      valid_status_codes: [201]
      preferred_ip_protocol: ip4
  http_no_follow:
    prober: http
    timeout: 5s
    http:
      follow_redirects: false
  http_body_regex:
    prober: http
    timeout: 5s
    http:
      fail_if_body_not_matches_regexp: ["no such text"]
  http_body_regex_ok:
    prober: http
    timeout: 5s
    http:
      fail_if_body_matches_regexp: ["error"]
      fail_if_body_not_matches_regexp: ["^hello"]
  http_header_regex:
    prober: http
    timeout: 5s
    http:
      fail_if_header_matches:
        - {{header: Content-Type, regexp: "text/plain"}}
  https_ca:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      tls_config: {{ca_file: "{pki.ca}"}}
  https_other_ca:
    prober: http
    timeout: 5s
    http:
      tls_config: {{ca_file: "{pki.other_ca}"}}
  https_basic_auth:
    prober: http
    timeout: 5s
    http:
      basic_auth: {{username: prober, password: parity-secret-1}}
      tls_config: {{ca_file: "{pki.ca}"}}
  tcp_connect:
    prober: tcp
    timeout: 5s
  tcp_dialogue:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^220 (\\\\w+)"
          send: "EHLO ${{1}}"
        - expect: "^250 ready-ack$"
  tcp_dialogue_fails:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^220 (\\\\w+)"
          send: "EHLO nobody"
        - expect: "^250 ready-ack$"
  tcp_tls:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
      tls_config: {{ca_file: "{pki.ca}"}}
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      query_type: A
      validate_answer_rrs:
        fail_if_not_matches_regexp: ['{A_RECORD}']
  dns_soa:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      query_type: SOA
      recursion_desired: false
  dns_nxdomain:
    prober: dns
    timeout: 5s
    dns:
      query_name: missing.test
      query_type: A
  dns_nxdomain_valid:
    prober: dns
    timeout: 5s
    dns:
      query_name: missing.test
      query_type: A
      valid_rcodes: [NXDOMAIN]
"""
    if icmp:
        text += """
  icmp:
    prober: icmp
    timeout: 5s
"""
    return text


def cases(t: Targets, icmp: bool) -> list[tuple[str, str, bool]]:
    """(module, target, expected probe_success)."""
    out = [
        ("http_2xx", f"{t.http}/ok", True),
        ("http_2xx", f"{t.http}/missing", False),
        ("http_2xx", f"{t.http}/redirect", True),
        ("http_2xx", f"{t.http}/chunked", True),
        ("http_2xx", f"http://127.0.0.1:{t.refused}/", False),
        ("http_post_201", f"{t.http}/ok", True),
        ("http_no_follow", f"{t.http}/redirect", False),
        ("http_body_regex", f"{t.http}/ok", False),
        ("http_body_regex_ok", f"{t.http}/ok", True),
        ("http_header_regex", f"{t.http}/ok", False),
        ("https_ca", f"{t.https}/", True),
        ("https_other_ca", f"{t.https}/", False),
        ("https_basic_auth", f"{t.https_auth}/", True),
        ("http_2xx", f"{t.https_auth}/", False),  # 401 without credentials
        ("tcp_connect", t.banner, True),
        ("tcp_connect", f"127.0.0.1:{t.refused}", False),
        ("tcp_dialogue", t.banner, True),
        ("tcp_dialogue_fails", t.banner, False),
        ("tcp_tls", t.https.removeprefix("https://"), True),
        ("dns_a", t.dns, True),
        ("dns_soa", t.dns, True),
        ("dns_nxdomain", t.dns, False),
        ("dns_nxdomain_valid", t.dns, True),
    ]
    if icmp:
        out.append(("icmp", "127.0.0.1", True))
    return out


# --- the exporters ---

def _start_blackbox(config: Path, tmp: Path) -> tuple[ManagedProcess, str]:
    assert BLACKBOX is not None
    last = ""
    for attempt in range(2):  # it cannot report a port: pick one, retry once on a clash
        port = free_port()
        proc = ManagedProcess(f"blackbox-{attempt}", [
            BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn"], log_path=tmp / f"blackbox-{attempt}.log")
        proc.start()
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(proc.wait_http(url + "/-/healthy", timeout=15))
        except Exception as exc:
            proc.stop()
            last = str(exc)
            continue
        return proc, url
    raise AssertionError(f"blackbox_exporter did not start: {last}")


@pytest.fixture(scope="module")
def exporters(targets: Targets, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[str, str, bool]]:
    tmp = tmp_path_factory.mktemp("exporters")
    icmp = icmp_problem() is None
    config = tmp / "blackbox.yml"
    config.write_text(blackbox_yml(targets.pki, icmp), encoding="utf-8")
    blackbox, bb_url = _start_blackbox(config, tmp)
    readygate = ManagedProcess("readygate", [
        sys.executable, "-m", "readygate.cli", "probe", "serve", "--blackbox-config",
        str(config), "--listen", "127.0.0.1:0"], log_path=tmp / "readygate.log", cwd=ROOT)
    try:
        readygate.start()
        asyncio.run(readygate.wait_ready_line(60))
        assert readygate.url is not None
        yield bb_url, readygate.url, icmp
    finally:
        readygate.stop()
        blackbox.stop()


# --- comparing expositions ---

Sample = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> tuple[dict[Sample, float], dict[str, str]]:
    """Samples by (name, label set), and each family's TYPE."""
    samples: dict[Sample, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: set[tuple[str, str]] = set()
        rest = rest.rstrip("}")
        while rest:
            key, _, rest = rest.partition('="')
            val = ""
            while rest and not rest.startswith('"'):
                if rest.startswith("\\"):
                    val += {"n": "\n", '"': '"', "\\": "\\"}[rest[1]]
                    rest = rest[2:]
                else:
                    val += rest[0]
                    rest = rest[1:]
            labels.add((key.strip(","), val))
            rest = rest[1:].lstrip(",")
        samples[(name, frozenset(labels))] = float(value)
    return samples, types


def volatile(name: str) -> bool:
    """Timings: measured, so never equal between two processes."""
    return "duration" in name or "lookup_time" in name


def test_probe_serve_answers_what_blackbox_exporter_answers(
        targets: Targets, exporters: tuple[str, str, bool]) -> None:
    bb_url, rg_url, icmp = exporters
    problems: list[str] = []
    with httpx.Client(trust_env=False, timeout=15) as client:
        for module, target, expected in cases(targets, icmp):
            params = {"module": module, "target": target}
            answers = [client.get(f"{url}/probe", params=params) for url in (bb_url, rg_url)]
            assert [a.status_code for a in answers] == [200, 200], (module, target)
            (bb, bb_types), (rg, rg_types) = (parse(a.text) for a in answers)
            case = f"{module} {target}"
            if bb[("probe_success", frozenset())] != float(expected):
                problems.append(f"{case}: blackbox_exporter itself says success="
                                f"{bb[('probe_success', frozenset())]} (test setup?)")
            if set(rg) != set(bb):
                problems.append(f"{case}: series differ: only blackbox {sorted(set(bb) - set(rg))}"
                                f"; only readygate {sorted(set(rg) - set(bb))}")
            if rg_types != bb_types:
                problems.append(f"{case}: types differ: {bb_types} vs {rg_types}")
            for key in set(rg) & set(bb):
                if not volatile(key[0]) and rg[key] != bb[key]:
                    problems.append(f"{case}: {key[0]}{dict(key[1]) or ''} is {rg[key]}, "
                                    f"blackbox_exporter says {bb[key]}")
    assert not problems, "\n".join(problems)


def test_a_secret_from_blackbox_yml_never_shows(exporters: tuple[str, str, bool],
                                                targets: Targets) -> None:
    _, rg_url, _ = exporters
    text = httpx.get(f"{rg_url}/probe", params={"module": "https_basic_auth", "target":
                                                f"{targets.https_auth}/", "debug": "true"},
                     timeout=15).text
    assert "parity-secret-1" not in text and "probe_success 1" in text
