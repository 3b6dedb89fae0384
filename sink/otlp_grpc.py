"""OTLP/gRPC: the trace, logs and metrics services, on their own port, into the same store.

The service definitions are the ones opentelemetry-proto ships (``*_pb2_grpc``); each
Export flattens its request exactly as OTLP/HTTP protobuf does (:mod:`sink.otlp`).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import (
    add_LogsServiceServicer_to_server,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    add_MetricsServiceServicer_to_server,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    add_TraceServiceServicer_to_server,
)

from sink.formats import BadPayload
from sink.otlp import LOGS, METRICS, TRACES, Signal, message_rows
from sink.store import SinkDB

# The OpenTelemetry Collector's default is 4 MiB; a sink for tests may get bigger batches.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
WORKERS = 4


class _Export:
    """The Export method of one OTLP service."""

    def __init__(self, db: SinkDB, signal: Signal) -> None:
        self.db = db
        self.signal = signal

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Store the request's rows; a request that cannot be stored is INVALID_ARGUMENT."""
        received_at = time.time()
        try:
            self.db.insert(self.signal.table, message_rows(self.signal, request, received_at))
        except BadPayload as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OverflowError as exc:  # an integer SQLite cannot hold (over 2**63 - 1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"a number is out of range: {exc}")
        return self.signal.response()


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_free(host: str, port: int, address: str) -> None:
    """Fail with one line when host:port cannot be bound (gRPC's own error is a log dump)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            # as gRPC does: a port in TIME_WAIT is free to listen on
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot listen on {address} for OTLP/gRPC: {reason}") from None


def start_grpc(db: SinkDB, host: str, port: int) -> tuple[grpc.Server, str]:
    """Start the OTLP/gRPC server on host:port (0: any free port); the server and its address."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sink-grpc"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 # gRPC sets SO_REUSEPORT by default: a port already taken would then be
                 # shared silently instead of refused.
                 ("grpc.so_reuseport", 0)])
    # The generated *_pb2_grpc modules carry no annotations.
    add_TraceServiceServicer_to_server(_Export(db, TRACES), server)  # type: ignore[no-untyped-call]
    add_LogsServiceServicer_to_server(_Export(db, LOGS), server)  # type: ignore[no-untyped-call]
    add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Export(db, METRICS), server)
    address = hostport(host, port)
    _check_free(host, port, address)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio >= 1.60 raises; older versions answered port 0
        raise OSError(f"cannot listen on {address} for OTLP/gRPC: {exc}") from None
    if not bound:
        raise OSError(f"cannot listen on {address} for OTLP/gRPC")
    server.start()
    return server, hostport(host, bound)
