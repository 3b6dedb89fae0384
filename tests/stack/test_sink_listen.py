"""``stack.sink.listen``: the stack's sink on an address fixed in advance.

A service started before the stack (as in CI) must be told where to send its OTLP before
the stack exists; the fixed address is what it is told. The end-to-end use is
tests/e2e/test_third_party.py (Jupyter Server exporting to it).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from core.procs import free_port
from stack.config import StackSettings
from stack.stack import ObservabilityStack
from tests.stack.conftest import readygate, write_config

GATE = {"healthy": {"scenario": {"probes": False},
                    "checks": [{"signal": "metric", "phase": "baseline", "query": "up == 1"}]}}


def test_the_sink_listens_on_a_free_port_unless_told_otherwise(tmp_path: Path) -> None:
    default = ObservabilityStack(StackSettings(), tmp_path)
    token = ["--webhook-token-file", str(default.webhook_token_path)]
    assert default._sink_args() == ["--host", "127.0.0.1", "--port", "0", *token]
    fixed = ObservabilityStack(StackSettings.model_validate(
        {"sink": {"listen": "[::1]:4318"}}), tmp_path)
    assert fixed._sink_args() == ["--host", "::1", "--port", "4318", *token]


@pytest.mark.parametrize("listen", ["4318", "127.0.0.1", "127.0.0.1:70000", "http://h:1"])
def test_a_bad_listen_address_is_one_line_naming_the_key(tmp_path: Path, listen: str) -> None:
    write_config(tmp_path, "http://127.0.0.1:9", gates=GATE,
                 stack={"sink": {"listen": listen}})
    result = readygate("stack", "healthy", cwd=tmp_path, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stack.sink.listen" in lines[0], result.stderr
    assert f"'{listen}' is not HOST:PORT" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(any(shutil.which(b) is None for b in (
    "prometheus", "promtool", "prometheus-alertmanager", "amtool")),
    reason="needs the prometheus and prometheus-alertmanager Debian packages")
def test_a_taken_sink_port_fails_the_stack_and_leaves_nothing_running(tmp_path: Path) -> None:
    """Exit 2 naming the sink: the service would send its telemetry to someone else."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(tmp_path, "http://127.0.0.1:9", gates=GATE,
                     stack={"sink": {"listen": f"127.0.0.1:{port}"}})
        result = readygate("stack", "healthy", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "readygate: the stack failed: sink exited" in result.stderr, result.stderr
    # the sink's own line says why, without a traceback
    assert f"sink: cannot listen on 127.0.0.1:{port} (--port): Address already in use" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_the_sink_takes_otlp_grpc_on_request_from_the_real_exporter(tmp_path: Path) -> None:
    """``sink.grpc_listen``: an SDK whose default protocol is gRPC reaches the stack's sink."""
    import asyncio
    import secrets
    import time

    import httpx
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from core.procs import ManagedProcess

    grpc_port = free_port()
    stack = ObservabilityStack(StackSettings.model_validate(
        {"sink": {"grpc_listen": f"127.0.0.1:{grpc_port}"}}), tmp_path)
    stack.alertmanager_dir.mkdir(parents=True)
    stack._webhook_token_file()  # written with the configs, before the sink starts
    args = stack._sink_args()
    assert args[-4:] == ["--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port)]
    import sys
    sink = ManagedProcess("sink", [sys.executable, "-m", "sink.server", "--db",
                                   str(tmp_path / "sink.db"), *args], cwd=Path.cwd())

    async def go() -> str:
        sink.start()
        return await sink.wait_ready_line()

    try:
        url = asyncio.run(go())
        provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        name = "span-" + secrets.token_hex(4)
        with provider.get_tracer("t").start_as_current_span(name) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        deadline = time.monotonic() + 10
        spans: list[object] = []
        while time.monotonic() < deadline and not spans:
            spans = httpx.get(f"{url}/api/traces/{trace_id}", timeout=5).json().get("spans", [])
            time.sleep(0.1)
        assert spans, "the span sent over gRPC never reached the sink"
    finally:
        sink.stop()
