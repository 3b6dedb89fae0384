"""Parent side of the process contract: start children, wait until they are ready, stop them.

readygate stops only what it started, by PID. Children get ``PR_SET_PDEATHSIG`` so that
even a SIGKILLed readygate leaves no demo service, Prometheus or Alertmanager behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO

import httpx

from core.errors import StackError
from core.serve import READY_PREFIX

_PR_SET_PDEATHSIG = 1
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PICK_SPAN = 16384


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (32768 unless configured)."""
    try:
        return int(_EPHEMERAL.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that was free a moment ago, for a program that cannot bind port 0
    and say which port it got (Prometheus, Alertmanager, the Go peers, a fixed sink port).

    Picked at random *below* the kernel's ephemeral range: ``bind(0)`` and every outgoing
    connection of every process draw from that range, so a port taken from it can be taken
    again by anyone's next connection before the program binds it ("address already in use"
    in CI). Below it, only another such pick can collide. Falls back to ``bind(0)``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = _ephemeral_low()
    bottom = max(1024, top - _PICK_SPAN)
    for _ in range(64 if top > bottom else 0):
        port = random.randrange(bottom, top)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ManagedProcess:
    """One child process readygate started; knows its PID, its log file and how to stop it."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None,
                 die_with_parent: bool = True) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._log: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start the child; stderr goes to ``log_path`` (or is discarded), stdout is a pipe."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("w", encoding="utf-8")
        full_env = dict(os.environ)
        if self.env:
            full_env.update(self.env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=self._log or subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, env=full_env, cwd=self.cwd, text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{self.name}: cannot start {self.argv[0]!r}: not found") from exc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def wait_ready_line(self, timeout: float = 20.0) -> str:
        """Wait for the child's ``READY <url>`` line; return the URL."""
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout

        def read_ready() -> str | None:
            for line in stdout:
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
            return None

        try:
            url = await asyncio.wait_for(loop.run_in_executor(None, read_ready),
                                         timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            raise StackError(f"{self.name} did not become ready within {timeout:.0f}s"
                             f"{self._tail_suffix()}") from None
        if url is None:
            raise StackError(f"{self.name} exited before it was ready"
                             f" (exit code {self.proc.poll()}){self._tail_suffix()}")
        self.url = url
        return url

    async def wait_http(self, url: str, timeout: float = 30.0,
                        ok: Callable[[httpx.Response], bool] | None = None) -> None:
        """Poll ``url`` until it answers (and ``ok(response)`` holds), or fail with the log tail."""
        deadline = time.monotonic() + timeout
        # trust_env=False: a user's HTTP_PROXY must not swallow polls of our own loopback children
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while True:
                if not self.alive():
                    raise StackError(f"{self.name} exited (code {self.proc and self.proc.poll()})"
                                     f"{self._tail_suffix()}")
                with contextlib.suppress(httpx.HTTPError):
                    resp = await client.get(url)
                    if resp.status_code < 500 and (ok is None or ok(resp)):
                        return
                if time.monotonic() > deadline:
                    raise StackError(f"{self.name} did not answer {url} within {timeout:.0f}s"
                                     f"{self._tail_suffix()}")
                await asyncio.sleep(0.05)

    def _tail_suffix(self) -> str:
        tail = self.log_tail(8)
        return f"; last log lines:\n{tail}" if tail else ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait, then SIGKILL: only this PID (and its own session)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class ProcessSet:
    """Processes started together and stopped together, in reverse order."""

    def __init__(self) -> None:
        self.procs: list[ManagedProcess] = []

    def add(self, proc: ManagedProcess) -> ManagedProcess:
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


async def start_python_service(procs: ProcessSet, name: str, module: str, args: Sequence[str],
                               *, env: dict[str, str] | None = None, log_dir: Path,
                               timeout: float = 20.0) -> ManagedProcess:
    """Start ``python -m module`` and wait for its READY line."""
    proc = procs.add(ManagedProcess(name, python_module(module, *args), env=env,
                                    log_path=log_dir / f"{name}.log"))
    proc.start()
    await proc.wait_ready_line(timeout)
    return proc


AsyncCheck = Callable[[], Awaitable[bool]]
