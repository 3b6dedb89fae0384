"""A fast loopback HTTP/1.1 target for the benchmarks: ``200 ok`` to every request.

    python -m bench.target            # prints READY http://127.0.0.1:PORT, stops on SIGTERM

A raw asyncio protocol, not http.server (its listen backlog of 5 drops bursts of
connections, FIELD-NOTES "Small servers") and not a framework (the target must cost far
less than the exporters it is used to measure). Keep-alive, pipelining-safe, bodies with
Content-Length are read and ignored.

``GET /-/stats`` answers ``connections requests`` (accepted so far, this request's own
connection and request not counted), so a benchmark can state the work each client made
the target do: a fresh connection per probe or reused ones.
"""

from __future__ import annotations

import asyncio
import signal

from core.serve import announce, bind_socket, socket_url

BODY = b"ok\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
CLOSE_RESPONSE = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
STATS = {"connections": 0, "requests": 0}


def _stats_response() -> bytes:
    body = f"{STATS['connections'] - 1} {STATS['requests'] - 1}\n".encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        STATS["connections"] += 1

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buf) < end + 4 + length:
                return  # the body has not all arrived yet
            self.buf = self.buf[end + 4 + length:]
            STATS["requests"] += 1
            if head.startswith(b"get /-/stats "):
                self.transport.write(_stats_response())
                STATS["connections"] -= 1
                STATS["requests"] -= 1
                self.transport.close()
                return
            if b"\r\nconnection: close" in head:
                self.transport.write(CLOSE_RESPONSE)
                self.transport.close()
                return
            self.transport.write(RESPONSE)


async def main() -> None:
    sock = bind_socket("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announce(socket_url(sock))
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
