"""Serve an ASGI app from a thread on a free loopback port (bound first: no port race)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from core.serve import bind_socket, socket_url


@contextmanager
def serve(app: Any, *, timeout: float = 10.0, date_header: bool = True) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL. ``date_header=False``: the
    app's own ``Date`` (or none) instead of uvicorn's."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off", date_header=date_header))
    # The thread is not the main one: uvicorn must not install signal handlers there.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    try:
        yield socket_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
