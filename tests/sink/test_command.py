"""``readygate sink`` as a child process: the READY contract, clean stops, bad options."""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.procs import ManagedProcess, python_module
from readygate.cli import main as readygate_main
from tests.sink.conftest import GRPC_PREFIX, ROOT, next_line

JSON = {"Content-Type": "application/json"}


def _span_doc(trace_id: str) -> bytes:
    return (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + trace_id.encode()
            + b'", "spanId": "0102030405060708", "name": "x"}]}]}]}')


def _terminate(proc: ManagedProcess, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
    """Signal the child, wait for it; its exit code and whatever else it printed."""
    assert proc.proc is not None and proc.proc.stdout is not None
    proc.proc.send_signal(sig)
    try:
        code = proc.proc.wait(10)
        rest = proc.proc.stdout.read()
    finally:
        proc.stop()
    return code, rest


@pytest.fixture()
def child(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    """Children started by a test; any still running at the end is stopped by PID."""
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop()


def _start(child: list[ManagedProcess], tmp_path: Path, argv: list[str],
           env: dict[str, str] | None = None) -> tuple[ManagedProcess, str]:
    proc = ManagedProcess(f"sink-{len(child)}", argv, env=env, cwd=ROOT,
                          log_path=tmp_path / f"sink-{len(child)}.log")
    child.append(proc)
    proc.start()
    return proc, asyncio.run(proc.wait_ready_line(30))


def test_readygate_sink_prints_ready_then_grpc_and_stops_cleanly_on_sigterm(
        tmp_path: Path, child: list[ManagedProcess]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc, url = _start(child, tmp_path, python_module("readygate", "sink"),
                       env={"TMPDIR": str(tmp)})
    assert url.startswith("http://127.0.0.1:")
    line = next_line(proc)
    assert line.startswith(GRPC_PREFIX)
    grpc_host, _, grpc_port = line[len(GRPC_PREFIX):].strip().rpartition(":")
    assert grpc_host == "127.0.0.1" and int(grpc_port) > 0
    with socket.create_connection((grpc_host, int(grpc_port)), timeout=5):
        pass  # the gRPC port accepts connections once READY is printed
    trace_id = secrets.token_hex(16)
    assert httpx.post(url + "/v1/traces", content=_span_doc(trace_id), headers=JSON,
                      timeout=5).status_code == 200
    assert len(httpx.get(f"{url}/api/traces/{trace_id}", timeout=5).json()["spans"]) == 1
    # The default database is a temporary file, removed at exit.
    assert next(p.name for p in tmp.iterdir()).startswith("readygate-sink-")
    code, rest = _terminate(proc)
    assert code == 0 and rest == ""
    assert list(tmp.iterdir()) == []
    assert "Traceback" not in proc.log_tail(50)


def test_sigint_also_exits_0_and_a_given_db_is_kept(tmp_path: Path,
                                                   child: list[ManagedProcess]) -> None:
    db = tmp_path / "keep" / "sink.db"
    proc, url = _start(child, tmp_path, python_module(
        "sink", "--db", str(db), "--grpc-listen", "off", "--listen", "127.0.0.1:0"))
    trace_id = secrets.token_hex(16)
    assert httpx.post(url + "/v1/traces", content=_span_doc(trace_id), headers=JSON,
                      timeout=5).status_code == 200
    code, rest = _terminate(proc, signal.SIGINT)
    assert code == 0
    assert rest == ""  # gRPC off: no OTLP_GRPC line
    assert db.exists() and db.stat().st_size > 0
    # The data survives a restart on the same file.
    proc, url = _start(child, tmp_path, python_module("sink", "--db", str(db),
                                                      "--grpc-listen=off"))
    assert len(httpx.get(f"{url}/api/traces/{trace_id}", timeout=5).json()["spans"]) == 1
    assert _terminate(proc)[0] == 0


def test_python_m_sink_server_keeps_the_demo_contract(tmp_path: Path,
                                                      child: list[ManagedProcess]) -> None:
    """``python -m sink.server --db PATH --port 0``: READY only, HTTP only (demo/stack.py)."""
    proc, url = _start(child, tmp_path, python_module(
        "sink.server", "--db", str(tmp_path / "demo.db"), "--host", "127.0.0.1", "--port", "0"))
    assert httpx.get(url + "/-/healthy", timeout=5).status_code == 200
    code, rest = _terminate(proc)
    assert code == 0 and rest == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "localhost"], "--listen: expected HOST:PORT, got 'localhost'"),
    (["--grpc-listen", "127.0.0.1:99999"], "--grpc-listen: expected HOST:PORT"),
    (["--max-bytes", "10"], "--max-bytes: 10 is below the minimum of 1MiB"),
    (["--max-bytes", "lots"], "--max-bytes: expected a size"),
    (["--retention-s", "-5"], "--retention-s: expected seconds >= 0, got '-5'"),
    (["--retention-s", "an hour"], "--retention-s: expected seconds, got 'an hour'"),
])
def test_bad_options_are_one_line_and_exit_3(args: list[str], message: str) -> None:
    out = subprocess.run(python_module("readygate", "sink", *args), cwd=ROOT, timeout=60,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 3, out.stderr
    assert out.stderr.splitlines() == [f"readygate sink: {out.stderr.split(': ', 1)[1].strip()}"]
    assert message in out.stderr and out.stdout == ""


@pytest.mark.parametrize("which", ["--listen", "--grpc-listen"])
def test_a_port_in_use_is_exit_3_naming_it(which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        out = subprocess.run(python_module("sink", which, address), cwd=ROOT, timeout=60,
                             capture_output=True, text=True, check=False)
    assert out.returncode == 3, out.stderr
    assert len(out.stderr.splitlines()) == 1 and address in out.stderr
    assert "READY" not in out.stdout


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        readygate_main(["sink", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in ("--listen", "--grpc-listen", "--db", "--retention-s", "--max-bytes"):
        assert option in text


def test_building_the_cli_parser_loads_no_server_code() -> None:
    """Every ``readygate`` command builds the parser: the sink's options must stay light."""
    code = ("import sys; from readygate.cli import _parser; _parser(); "
            "print(sorted(m for m in ('sink.server', 'grpc', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60,
                         capture_output=True, text=True, check=True)
    assert "sink.server" not in out.stdout and "grpc" not in out.stdout
