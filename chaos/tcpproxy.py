"""The TCP fault proxy: forwards a TCP port and injects latency, resets, blackholes and
bandwidth limits on command.

``python -m chaos.tcpproxy --upstream HOST:PORT`` listens for data on ``--listen-port``
(0 = any free port) and serves the control API on ``--port``, a separate HTTP port with the
same ``/_readygate/faults`` API as the HTTP fault proxy. It prints ``LISTEN host:port`` (the
data address) and then ``READY <control url>``. It is its own process so that every fault
ends at its TTL even if readygate is SIGKILLed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.faults import DEFAULT_MAX_TTL_S
from chaos.tcpfaults import TcpFaultRecord, TcpFaultTable
from core.serve import bind_socket, run_asgi

log = logging.getLogger("chaos.tcpproxy")

CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0
# Bandwidth pacing writes slices of about this share of a second, so a limit is smooth.
PACE_SLICE_S = 0.05


@dataclass(eq=False)
class _Conn:
    """One proxied connection: both writers (to reset them) and the faults that touched it."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    touched: set[str] = field(default_factory=set)


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer sees 'connection reset by peer'."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class TcpFaultProxy:
    """The data plane (an asyncio TCP server) plus the control plane (an ASGI app)."""

    def __init__(self, upstream: str, listen: socket.socket, *,
                 max_ttl_s: float = DEFAULT_MAX_TTL_S, seed: int | None = None) -> None:
        self.upstream_host, self.upstream_port = _split_hostport(upstream)
        self.listen_sock = listen
        host, port = listen.getsockname()[:2]
        self.listen = f"{host}:{port}"
        rng = random.Random(seed)
        self.table = TcpFaultTable(max_ttl_s=max_ttl_s, jitter=lambda top: rng.uniform(0, top))
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.app = Starlette(routes=[
            Route("/_readygate/health", self._health, methods=["GET"]),
            Route("/_readygate/faults", self._list, methods=["GET"]),
            Route("/_readygate/faults", self._inject, methods=["POST"]),
            Route("/_readygate/faults", self._clear, methods=["DELETE"]),
            Route("/_readygate/faults/{fault_id}", self._get, methods=["GET"]),
            Route("/_readygate/faults/{fault_id}", self._remove, methods=["DELETE"]),
        ], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._accept, sock=self.listen_sock)
        self._wake = asyncio.Event()
        reaper = asyncio.create_task(self._reap(), name="tcp-fault-reaper")
        try:
            yield
        finally:
            reaper.cancel()
            server.close()
            for conn in list(self._conns):
                _reset(conn.client)
                _reset(conn.upstream)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(reaper, *self._tasks, return_exceptions=True)

    async def _reap(self) -> None:
        """End faults at their expiry even when no byte flows."""
        while True:
            for record in self.table.expire_due():
                self._log_end(record)
            nxt = self.table.next_expiry()
            self._wake.clear()
            timeout = None if nxt is None else max(0.0, nxt - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    @staticmethod
    def _log_end(record: TcpFaultRecord) -> None:
        log.info("fault %s %s (%s, %d connections)", record.id, record.end_reason, record.kind,
                 record.connections)

    # -- control plane -----------------------------------------------------------------

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "listen": self.listen,
                             "upstream": f"{self.upstream_host}:{self.upstream_port}",
                             "connections": len(self._conns),
                             "active": len(self.table.active())})

    async def _inject(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": f"invalid fault spec: body is not JSON ({exc})"},
                                status_code=422)
        try:
            record = self.table.add(data)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        self._wake.set()
        if record.kind == "tcp_reset":
            # A reset acts on the connections open now, too: that is what a peer crash does.
            for conn in list(self._conns):
                self._touch(conn, (record.id,))
                _reset(conn.client)
                _reset(conn.upstream)
        log.info("fault %s injected: %s", record.id,
                 json.dumps(record.model_dump(mode="json", exclude_none=True)))
        return JSONResponse(record.model_dump(mode="json"), status_code=201)

    async def _list(self, _request: Request) -> Response:
        return JSONResponse({"active": [r.model_dump(mode="json") for r in self.table.active()],
                             "history": [r.model_dump(mode="json")
                                         for r in self.table.history()]})

    async def _get(self, request: Request) -> Response:
        self.table.expire_due()
        record = self.table.get(request.path_params["fault_id"])
        if record is None:
            return JSONResponse({"error": f"no fault {request.path_params['fault_id']!r}"},
                                status_code=404)
        return JSONResponse(record.model_dump(mode="json"))

    async def _remove(self, request: Request) -> Response:
        record = self.table.remove(request.path_params["fault_id"])
        if record is None:
            return JSONResponse({"error": f"no fault {request.path_params['fault_id']!r}"},
                                status_code=404)
        self._log_end(record)
        return JSONResponse(record.model_dump(mode="json"))

    async def _clear(self, _request: Request) -> Response:
        ended = self.table.clear()
        for record in ended:
            self._log_end(record)
        return JSONResponse([r.model_dump(mode="json") for r in ended])

    # -- data plane --------------------------------------------------------------------

    def _touch(self, conn: _Conn, fault_ids: tuple[str, ...]) -> None:
        for fid in fault_ids:
            if fid not in conn.touched:
                conn.touched.add(fid)
                record = self.table.get(fid)
                if record is not None:
                    record.connections += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(writer)
        try:
            resetting = self.table.resetting()
            if resetting is not None:
                self._touch(conn, (resetting.id,))
                _reset(writer)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.upstream_host, self.upstream_port),
                    CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.warning("upstream %s:%d unreachable: %s", self.upstream_host,
                            self.upstream_port, exc)
                _reset(writer)
                return
            conn.upstream = up_writer
            self._conns.add(conn)
            await asyncio.gather(self._pump(reader, up_writer, "upstream", conn),
                                 self._pump(up_reader, writer, "downstream", conn))
        finally:
            self._conns.discard(conn)
            for w in (conn.client, conn.upstream):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    direction: str, conn: _Conn) -> None:
        """Copy one direction chunk by chunk, applying the faults active at each chunk."""
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    if dst.can_write_eof():
                        with contextlib.suppress(OSError):
                            dst.write_eof()
                    return
                effects = self.table.effects(direction)
                self._touch(conn, effects.fault_ids)
                if effects.blackhole:
                    continue  # swallowed: the sender sees its bytes accepted, nothing arrives
                if effects.delay_s > 0:
                    await asyncio.sleep(effects.delay_s)
                if effects.bytes_per_s is None:
                    dst.write(data)
                    await dst.drain()
                    continue
                step = max(1, int(effects.bytes_per_s * PACE_SLICE_S))
                for i in range(0, len(data), step):
                    part = data[i:i + step]
                    dst.write(part)
                    await dst.drain()
                    await asyncio.sleep(len(part) / effects.bytes_per_s)
        except (ConnectionError, OSError):
            # One side went away (or was reset by a fault): end the other side as well.
            _reset(conn.client)
            _reset(conn.upstream)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m chaos.tcpproxy``."""
    parser = argparse.ArgumentParser(prog="python -m chaos.tcpproxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="HOST:PORT bytes are forwarded to")
    parser.add_argument("--host", default="127.0.0.1", help="address of both ports")
    parser.add_argument("--port", type=int, default=0,
                        help="control API port (0 = any free port, printed as READY <url>)")
    parser.add_argument("--listen-port", type=int, default=0,
                        help="data port (0 = any free port, printed as LISTEN host:port)")
    parser.add_argument("--max-ttl", type=float, default=DEFAULT_MAX_TTL_S,
                        help="longest TTL a fault may ask for, in seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for latency jitter")
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the TCP fault proxy until SIGTERM."""
    args = build_parser().parse_args(argv)
    try:
        _split_hostport(args.upstream)
    except ValueError as exc:
        print(f"chaos.tcpproxy: --upstream: {exc}", file=sys.stderr)
        return 3
    if not args.max_ttl > 0:
        print("chaos.tcpproxy: --max-ttl must be > 0", file=sys.stderr)
        return 3
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listen = bind_socket(args.host, args.listen_port)
    listen.setblocking(False)
    proxy = TcpFaultProxy(args.upstream, listen, max_ttl_s=args.max_ttl, seed=args.seed)

    def on_ready(_url: str) -> None:
        sys.stdout.write(f"LISTEN {proxy.listen}\n")
        sys.stdout.flush()

    run_asgi(proxy.app, args.host, args.port, on_ready=on_ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
