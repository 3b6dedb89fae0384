"""Child side of the process contract: bind a free loopback port, announce it, serve.

Every server readygate starts (demo services, the sink, the fault proxy, the probe
exporter) binds its own socket, so there is no race for a "free" port, and prints one
line ``READY <url>`` on stdout once it accepts connections. The parent
(:mod:`core.procs`) waits for that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
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
             on_ready: Any = None) -> None:
    """Serve an ASGI app on a self-bound socket; print READY once listening; stop on SIGTERM."""
    sock = bind_socket(host, port)
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
        announce(url)
        await serving

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    asyncio.run(main())
