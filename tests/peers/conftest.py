"""Real peers built from Go modules (scripts/install-peers.sh puts them in peers/bin/).

Outside CI a peer that is not built skips its tests with the command that builds it; with
``CI`` set (``.ci/run`` sets it) a missing peer fails the test, so nothing is silently
skipped there. Every peer process is started here and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

PEERS_BIN = Path(__file__).resolve().parents[2] / "peers" / "bin"

# peer name (as scripts/install-peers.sh knows it) -> binary in peers/bin
BINARIES = {"jaeger": "jaeger", "victoriametrics": "victoria-metrics",
            "victorialogs": "victoria-logs", "alertmanager": "alertmanager",
            "toxiproxy": "toxiproxy-server", "otelcol": "otelcol"}


def in_ci() -> bool:
    """True under CI (``CI`` set to anything but empty/false/0)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def peer_binary(peer: str) -> Path:
    """peers/bin/<binary>; skips (fails under CI) with the build command when it is missing."""
    path = PEERS_BIN / BINARIES[peer]
    if path.is_file() and os.access(path, os.X_OK):
        return path
    why = f"real {peer} not built: run `scripts/install-peers.sh {peer}` (needs Go 1.26)"
    if in_ci():
        pytest.fail(f"{why}; CI requires every peer", pytrace=False)
    pytest.skip(why)


def debian_binary(name: str) -> Path:
    """A Debian-packaged binary (e.g. prometheus-alertmanager); same skip/fail rule."""
    found = shutil.which(name)
    if found:
        return Path(found)
    why = f"{name} not installed: run `bash scripts/install-os-deps.sh`"
    if in_ci():
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


class Peer:
    """One peer process: output to a log file, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        # stdout and stderr both to the file: an unread pipe would block a chatty server
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 10) -> str:
        """The last lines of the peer's log, for failure messages."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_http(self, url: str, *, timeout: float = 20.0,
                  ok: Callable[[httpx.Response], bool] | None = None) -> None:
        """Poll ``url`` until it answers below 500 (and ``ok`` holds) or fail with the log."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n"
                                     f"{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                resp = httpx.get(url, timeout=2.0, trust_env=False)
                if resp.status_code < 500 and (ok is None or ok(resp)):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not answer {url} within {timeout:.0f}s:"
                                     f"\n{self.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM this PID, then SIGKILL after 5 s (Jaeger takes that long to drain)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@contextlib.contextmanager
def running(name: str, argv: list[str], log_dir: Path) -> Iterator[Peer]:
    """Start a peer and stop it (by PID) when the block ends, whatever happens."""
    peer = Peer(name, argv, log_dir)
    try:
        yield peer
    finally:
        peer.stop()
