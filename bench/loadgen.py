"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, GET one URL.

Written on raw asyncio streams rather than httpx because it shares a core with the target
and must stay far cheaper than the exporters it measures (httpx costs ~0.3 ms of CPU per
request; this costs a few tens of microseconds). Bounded by a request count and a time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """What one load run did."""

    requests: int = 0
    errors: int = 0
    bad_bodies: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        return status, b"".join(p[:-2] for p in parts)
    return status, await reader.readexactly(length or 0)


async def run_load(url: str, *, concurrency: int, max_requests: int, max_seconds: float,
                   expect: bytes | None = None) -> LoadResult:
    """GET ``url`` from ``concurrency`` connections until ``max_requests`` or ``max_seconds``.

    ``expect``: bytes every answer's body must contain (else it counts as a bad body), so
    an exporter answering fast with a failed probe cannot win.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + ("?" + parts.query if parts.query else "")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "User-Agent: readygate-bench\r\n\r\n").encode()
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + max_seconds
    issued = 0

    async def worker() -> None:
        nonlocal issued
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                t0 = time.perf_counter()
                try:
                    writer.write(request)
                    status, body = await asyncio.wait_for(_read_response(reader),
                                                          max(0.1, deadline + 5 - t0))
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    result.errors += 1
                    writer.close()
                    reader = writer = None
                    continue
                result.latencies.append(time.perf_counter() - t0)
                if status != 200:
                    result.errors += 1
                elif expect is not None and expect not in body:
                    result.bad_bodies += 1
                else:
                    result.requests += 1
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result
