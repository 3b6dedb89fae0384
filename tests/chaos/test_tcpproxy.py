"""The TCP fault proxy, as a real process between a real client and a real TCP upstream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.config import TcpFault
from chaos.injector import TcpProxyInjector
from core.procs import ManagedProcess, ProcessSet, start_python_service

ROOT = Path(__file__).resolve().parents[2]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on a free loopback port (the upstream)."""
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tcpproxy(echo: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[ManagedProcess, tuple[str, int]]]:
    """``python -m chaos.tcpproxy`` in front of the echo server: (process, data address)."""
    procs = ProcessSet()
    try:
        proc = asyncio.run(start_python_service(
            procs, "tcp-proxy", "chaos.tcpproxy",
            ["--upstream", f"{echo[0]}:{echo[1]}", "--max-ttl", "60", "--seed", "1"],
            log_dir=tmp_path_factory.mktemp("tcpproxy")))
        assert proc.url is not None
        host, _, port = httpx.get(proc.url + "/_readygate/health").json()["listen"].rpartition(":")
        yield proc, (host, int(port))
    finally:
        started = list(procs.procs)
        procs.stop_all()
        assert not [p.name for p in started if p.alive()]


@pytest.fixture
def control(tcpproxy: tuple[ManagedProcess, tuple[str, int]]) -> Iterator[httpx.Client]:
    """A control client; every test starts and ends with no faults."""
    assert tcpproxy[0].url is not None
    with httpx.Client(base_url=tcpproxy[0].url, timeout=5, trust_env=False) as client:
        client.delete("/_readygate/faults")
        yield client
        client.delete("/_readygate/faults")


def inject(control: httpx.Client, **spec: Any) -> dict[str, Any]:
    resp = control.post("/_readygate/faults", json=spec)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def connect(addr: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Send ``payload`` and read it all back; return the seconds it took."""
    start = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == payload
    return time.monotonic() - start


def test_forwards_bytes_both_ways(tcpproxy: tuple[ManagedProcess, tuple[str, int]],
                                  control: httpx.Client) -> None:
    with connect(tcpproxy[1]) as sock:
        round_trip(sock, b"x" * 200_000)


def test_latency_is_added_per_direction_and_gone_after_removal(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    with connect(tcpproxy[1]) as sock:
        baseline = min(round_trip(sock) for _ in range(3))
        fault = inject(control, kind="tcp_latency", latency_ms=150, ttl_s=30)
        slowed = round_trip(sock)
        control.delete(f"/_readygate/faults/{fault['id']}")
        after = min(round_trip(sock) for _ in range(3))
    # 150 ms on the way in and 150 ms on the way out
    assert slowed >= 0.29 and baseline < 0.1 and after < 0.1, (baseline, slowed, after)
    ended = control.get(f"/_readygate/faults/{fault['id']}").json()
    assert ended["end_reason"] == "removed" and ended["connections"] == 1


def test_reset_cuts_open_and_new_connections_until_removed(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    with connect(tcpproxy[1]) as before:
        round_trip(before)
        fault = inject(control, kind="tcp_reset", ttl_s=30)
        with pytest.raises(ConnectionResetError):
            before.sendall(b"ping")
            assert before.recv(10) == b""  # reset arrives as an error on recv or send
            pytest.fail("the open connection was not reset")
    # The reset may land during connect() already, or on the first send or recv.
    with pytest.raises(ConnectionResetError), connect(tcpproxy[1]) as during:
        during.sendall(b"ping")
        during.recv(10)
    control.delete(f"/_readygate/faults/{fault['id']}")
    with connect(tcpproxy[1]) as after:
        round_trip(after)
    assert control.get(f"/_readygate/faults/{fault['id']}").json()["connections"] >= 2


def test_blackhole_swallows_bytes_without_closing(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    fault = inject(control, kind="tcp_blackhole", ttl_s=30)
    with connect(tcpproxy[1], timeout=0.5) as sock:
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):
            sock.recv(10)
    control.delete(f"/_readygate/faults/{fault['id']}")
    with connect(tcpproxy[1]) as sock:
        round_trip(sock)


def test_bandwidth_limit_paces_the_stream(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    payload = b"y" * 100_000
    with connect(tcpproxy[1]) as sock:
        free = round_trip(sock, payload)
        fault = inject(control, kind="tcp_bandwidth", bytes_per_s=200_000,
                       direction="downstream", ttl_s=30)
        limited = round_trip(sock, payload)
        control.delete(f"/_readygate/faults/{fault['id']}")
        again = round_trip(sock, payload)
    # 100 kB at 200 kB/s: at least half a second, against a few ms without the limit
    assert limited >= 0.45 and free < 0.2 and again < 0.2, (free, limited, again)


def test_bad_spec_is_a_one_line_422(control: httpx.Client) -> None:
    resp = control.post("/_readygate/faults", json={"kind": "tcp_bandwidth", "ttl_s": 5})
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid fault spec: fault: tcp_bandwidth needs bytes_per_s"
    resp = control.post("/_readygate/faults", json={"kind": "latency", "ttl_s": 5})
    assert "is not a TCP fault" in resp.json()["error"]


@pytest.mark.anyio
async def test_injector_from_config_injects_and_removes(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    assert tcpproxy[0].url is not None
    async with httpx.AsyncClient(trust_env=False) as client:
        injector = TcpProxyInjector({"db": tcpproxy[0].url}, client)
        fault = TcpFault(kind="tcp_blackhole", service="db", ttl_s=20)
        injected = await injector.inject(fault)
        assert [f["id"] for f in control.get("/_readygate/faults").json()["active"]] == \
            [injected.fault_id]
        assert injected.expires_at - injected.started_at == pytest.approx(20)
        ended = await injector.remove(injected)
    record = control.get(f"/_readygate/faults/{injected.fault_id}").json()
    assert record["end_reason"] == "removed" and record["ended_at"] == ended


INJECT_AND_HANG = """
import sys, time, httpx
body = httpx.post(sys.argv[1] + "/_readygate/faults",
                  json={"kind": "tcp_blackhole", "ttl_s": float(sys.argv[2])}).json()
print("INJECTED", body["id"], flush=True)
time.sleep(600)
"""


def test_fault_expires_by_ttl_after_the_injector_is_sigkilled(
        tcpproxy: tuple[ManagedProcess, tuple[str, int]], control: httpx.Client) -> None:
    assert tcpproxy[0].url is not None
    injector = subprocess.Popen([sys.executable, "-c", INJECT_AND_HANG, tcpproxy[0].url, "1.5"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert injector.stdout is not None
        line = injector.stdout.readline()
        assert line.startswith("INJECTED"), line
        fault_id = line.split()[1]
        os.kill(injector.pid, signal.SIGKILL)
        injector.wait(5)
        with connect(tcpproxy[1], timeout=0.3) as sock:
            sock.sendall(b"ping")
            with pytest.raises(TimeoutError):
                sock.recv(10)  # the blackhole outlives its injector
        deadline = time.monotonic() + 6
        while True:
            record = control.get(f"/_readygate/faults/{fault_id}").json()
            if record["end_reason"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert record["end_reason"] == "expired"
        assert record["ended_at"] == record["expires_at"]
        with connect(tcpproxy[1]) as sock:
            round_trip(sock)
    finally:
        if injector.poll() is None:
            injector.kill()
            injector.wait(5)
