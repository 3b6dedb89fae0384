"""Child side of the process contract: bind a free loopback port, announce it, serve.

Every server readygate starts (demo services, the sink, the fault proxy, the probe
exporter) binds its own socket, so there is no race for a "free" port, and prints one
line ``READY <url>`` on stdout once it accepts connections. The parent
(:mod:`core.procs`) waits for that line.

A server with several worker processes (:func:`serve_workers`, ``probe serve --workers``)
keeps the contract: one READY line, once every worker serves; SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

READY_PREFIX = "READY "


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = any free port), with a deep backlog."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says so; without it every keep-alive reply waits ~40 ms for delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def reuseport_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one host:port with ``SO_REUSEPORT`` (port 0: one free
    port for all); the kernel spreads new connections over them by a hash of the peer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # the others join the first one's port
            sock.listen(1024)
            sock.set_inheritable(True)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def announce(url: str) -> None:
    """Print the READY line the parent waits for."""
    sys.stdout.write(f"{READY_PREFIX}{url}\n")
    sys.stdout.flush()


class _Server(uvicorn.Server):
    """uvicorn, minus its re-raise of SIGTERM after a graceful stop.

    uvicorn re-raises the captured signal once it has shut down, so a clean stop ended
    with exit status -15; readygate's own loop handlers drive the shutdown instead and
    the process exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_asgi(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning",
             on_ready: Any = None, sock: socket.socket | None = None,
             announce_ready: bool = True) -> None:
    """Serve an ASGI app on a self-bound socket; print READY once listening; stop on SIGTERM.

    ``sock``: serve on this listening socket instead (a worker of :func:`serve_workers`,
    which announces for all its workers: ``announce_ready=False``).
    """
    sock = sock or bind_socket(host, port)
    url = socket_url(sock)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="auto",
                            timeout_graceful_shutdown=2)
    server = _Server(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # handlers first: a parent may send SIGTERM the moment it reads the READY line
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.handle_exit, sig, None)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                await serving
                return
            await asyncio.sleep(0.01)
        if on_ready is not None:
            on_ready(url)
        if announce_ready:
            announce(url)
        await serving

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    asyncio.run(main())


_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}
Worker = Callable[[int, socket.socket, Callable[[], None]], None]


def _die_with(parent: int) -> None:
    # A SIGKILLed supervisor must not leave workers serving its port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _child(index: int, socks: list[socket.socket], ready_w: int, worker: Worker,
           parent: int) -> None:  # pragma: no cover - runs in a forked child, which _exits
    code = 1
    try:
        _die_with(parent)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        # Blocked by the supervisor around fork(), so its handlers never ran here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        for j, other in enumerate(socks):
            if j != index:
                other.close()

        def ready() -> None:
            os.write(ready_w, f"{index}\n".encode())

        worker(index, socks[index], ready)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve_workers(count: int, host: str, port: int, worker: Worker, *, name: str,
                  start_timeout_s: float = 120.0, stop_timeout_s: float = 10.0) -> int:
    """Pre-fork ``count`` workers on one ``SO_REUSEPORT`` port; 0 after a clean stop.

    ``worker(index, sock, ready)`` serves on ``sock`` and calls ``ready()`` once it
    accepts connections. READY is printed when every worker is ready. SIGTERM/SIGINT are
    passed to every worker (SIGKILL after ``stop_timeout_s``). A worker that exits on its
    own stops the others and the result is 1: its journeys would silently not run.
    Fork before any event loop or thread exists (the caller's job).
    """
    socks = reuseport_sockets(host, port, count)
    url = socket_url(socks[0])
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    workers: dict[int, int] = {}  # pid -> index
    state = {"stopping": False}

    def signal_all(sig: int) -> None:
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(reason: str | None = None) -> None:
        if state["stopping"]:
            return
        state["stopping"] = True
        if reason:
            sys.stderr.write(f"{name}: {reason}; stopping the other workers\n")
            sys.stderr.flush()
        signal_all(signal.SIGTERM)
        signal.alarm(max(1, int(stop_timeout_s)))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        signal_all(signal.SIGKILL)

    previous = {sig: signal.signal(sig, handler) for sig, handler in (
        (signal.SIGTERM, on_signal), (signal.SIGINT, on_signal), (signal.SIGALRM, on_alarm))}
    status = 0
    try:
        for index in range(count):
            # Signals wait until the child has its own handlers (and the parent knows the
            # child's PID): a SIGTERM in between would run the supervisor's handler there.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child never returns from _child
                    os.close(ready_r)
                    _child(index, socks, ready_w, worker, parent)
                workers[pid] = index
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        for sock in socks:
            # Only the workers hold the listening sockets: a dead worker's socket closes and
            # the kernel stops handing it connections.
            sock.close()
        os.close(ready_w)
        status = _wait_ready(count, ready_r, workers, state, stop, start_timeout_s)
        if status == 0 and not state["stopping"]:
            announce(url)
        while workers:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            index = workers.pop(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if not state["stopping"]:
                status = 1
                stop(f"worker {index} exited unexpectedly (exit status {code})")
            elif code not in (0, -signal.SIGTERM):
                status = 1
    finally:
        signal.alarm(0)
        signal_all(signal.SIGKILL)  # only workers still alive after the wait loop
        os.close(ready_r)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _wait_ready(count: int, ready_r: int, workers: dict[int, int], state: dict[str, bool],
                stop: Callable[[str | None], None], timeout_s: float) -> int:
    """0 once ``count`` workers said ready; 1 if one exits or the time is up first."""
    ready: set[str] = set()
    buffer = b""
    deadline = time.monotonic() + timeout_s
    while len(ready) < count and not state["stopping"]:
        for pid in list(workers):
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                index = workers.pop(pid)
                code = os.waitstatus_to_exitcode(wait_status)
                stop(f"worker {index} exited before it was ready (exit status {code})")
                return 1
        if time.monotonic() > deadline:
            stop(f"workers not ready within {timeout_s:g}s")
            return 1
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([ready_r], [], [], 0.05)
            if readable:
                chunk = os.read(ready_r, 4096)
                buffer += chunk
                *lines, rest = buffer.split(b"\n")
                buffer = rest
                ready.update(line.decode() for line in lines if line)
    return 0
