"""``readygate sink`` (also ``python -m sink``): run the telemetry receiver until SIGTERM.

Prints ``READY <http-url>`` once both listeners accept connections, then
``OTLP_GRPC <host:port>`` unless gRPC is off. Exit codes: 0 after SIGTERM/SIGINT, 3 for a
bad option, a port that cannot be bound or a database that cannot be opened. This
module stays light (argparse only): ``readygate`` builds its parser on every command.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from core.errors import EXIT_BAD_INPUT

DEFAULT_LISTEN = "127.0.0.1:0"
DEFAULT_RETENTION = "3600"
DEFAULT_MAX_BYTES = "256MiB"
MIN_MAX_BYTES = 1024 * 1024  # see sink.store.MIN_MAX_BYTES (not imported: keep this light)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


class UsageError(ValueError):
    """A bad option value: one line naming the option."""


class _Stopped(BaseException):
    """SIGTERM arrived before the server's own handlers were in place."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``readygate sink``."""
    parser.description = ("Receive OTLP traces, logs and metrics (HTTP and gRPC), Sentry "
                          "events and Alertmanager webhooks, and answer queries about them "
                          "over HTTP (docs/sink.md).")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help="HTTP address: OTLP/HTTP, Sentry, webhooks and the query API "
                             f"(default {DEFAULT_LISTEN}: any free port, printed as "
                             "READY <url>)")
    parser.add_argument("--grpc-listen", default=DEFAULT_LISTEN, metavar="HOST:PORT|off",
                        help=f"OTLP/gRPC address (default {DEFAULT_LISTEN}, printed as "
                             "OTLP_GRPC <host:port>; 'off' disables gRPC)")
    parser.add_argument("--db", metavar="PATH",
                        help="SQLite file to keep (default: a temporary file removed at exit)")
    parser.add_argument("--retention-s", default=DEFAULT_RETENTION, metavar="SECONDS",
                        help=f"drop rows older than this (default {DEFAULT_RETENTION}; "
                             "0: keep forever)")
    parser.add_argument("--webhook-token-file", metavar="PATH",
                        help="alert webhooks (/alertmanager/webhook, /webhooks/*) must carry "
                             "the token in this file: Authorization: Bearer <token>, Basic "
                             "auth with it as password, or ?token=<token>; 401 otherwise")
    parser.add_argument("--max-bytes", default=DEFAULT_MAX_BYTES, metavar="SIZE",
                        help=f"drop the oldest rows when the database exceeds this, e.g. "
                             f"64MiB, 1GB (default {DEFAULT_MAX_BYTES}; 0: no limit)")


def parse_hostport(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) as (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{option}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_size(text: str, option: str = "--max-bytes") -> int:
    """A byte size: an integer with an optional unit (k, KiB, MB, MiB, GB, GiB...)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(f"{option}: expected a size such as 268435456 or 256MiB, got {text!r}")
    size = int(float(match.group(1)) * _UNITS[unit])
    if 0 < size < MIN_MAX_BYTES:
        raise UsageError(f"{option}: {text} is below the minimum of 1MiB (0: no limit)")
    return size


def parse_seconds(text: str, option: str = "--retention-s") -> float:
    """A non-negative number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"{option}: expected seconds, got {text!r}") from None
    if not 0 <= seconds < float("inf"):
        raise UsageError(f"{option}: expected seconds >= 0, got {text!r}")
    return seconds


def main(args: argparse.Namespace) -> int:
    """Run the sink until SIGTERM/SIGINT; 0 then, 3 for bad options or an unusable port/db."""
    try:
        host, port = parse_hostport(args.listen, "--listen")
        grpc_listen = (None if args.grpc_listen.strip().lower() == "off"
                       else parse_hostport(args.grpc_listen, "--grpc-listen"))
        retention_s = parse_seconds(str(args.retention_s))
        max_bytes = parse_size(str(args.max_bytes))
    except UsageError as exc:
        print(f"readygate sink: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from sink.server import read_token_file, serve  # Starlette, protobuf: when it runs

    try:
        token = read_token_file(Path(args.webhook_token_file)) \
            if args.webhook_token_file else None
    except (OSError, ValueError) as exc:
        print(f"readygate sink: --webhook-token-file: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if threading.current_thread() is threading.main_thread():
        # The server stops on SIGTERM once it runs (core.serve); this covers start-up, so
        # a stop at any moment still exits 0 and removes the temporary database.
        signal.signal(signal.SIGTERM, _stop)
    tmpdir = None if args.db else Path(tempfile.mkdtemp(prefix="readygate-sink-"))
    db_path = Path(args.db) if args.db else Path(str(tmpdir)) / "sink.db"
    try:
        serve(db_path, host=host, port=port, grpc_listen=grpc_listen,
              retention_s=retention_s, max_bytes=max_bytes, webhook_token=token)
    except (_Stopped, KeyboardInterrupt):
        pass
    except (OSError, sqlite3.Error) as exc:
        print(f"readygate sink: {_describe(exc, args.listen)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def _describe(exc: Exception, listen: str) -> str:
    """One line for a start-up failure; a socket error names the address it was for."""
    if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:
        return f"cannot listen on {listen}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
