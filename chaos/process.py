"""Process faults on local targets: pause (SIGSTOP), kill (SIGKILL) or terminate (SIGTERM).

A process is found through its pidfile and touched only if its command line contains what
``target.processes.<name>.command_contains`` says, so a stale pidfile whose PID now belongs
to another program is refused. A paused process is always resumed: by :meth:`remove`, or by
a detached watchdog at the TTL if readygate dies first. Kill and term cannot be undone; their
rollback only records the end (restarting is the supervisor's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chaos.base import FaultError, InjectedFault
from chaos.config import Fault, ProcessFault
from chaos.watchdog import process_starttime, start_watchdog, stop_watchdog
from core.errors import ConfigError
from core.target import ProcessTarget

_SIGNALS = {"stop": signal.SIGSTOP, "kill": signal.SIGKILL, "term": signal.SIGTERM}


@dataclass
class _Held:
    pid: int
    starttime: int | None
    action: str
    watchdog: subprocess.Popen[bytes] | None


def read_pidfile(path: str) -> int:
    """The PID in a pidfile; ``ConfigError`` if it is missing or not a PID."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read pidfile {path}: {exc.strerror or exc}") from None
    if not text.isdigit() or int(text) <= 1:
        raise ConfigError(f"pidfile {path} does not hold a PID (got {text[:20]!r})")
    return int(text)


def command_line(pid: int) -> str | None:
    """The command line of ``pid`` with spaces between arguments, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T for stopped, Z...), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


class ProcessFaultInjector:
    """Signals the processes named in ``target.processes``, and nothing else."""

    def __init__(self, processes: Mapping[str, ProcessTarget], *,
                 log_dir: Path | None = None) -> None:
        self.processes = dict(processes)
        self.log_dir = log_dir
        self._held: dict[str, _Held] = {}

    def resolve(self, name: str) -> int:
        """The PID of the named process, after the safety checks; ``ConfigError`` if refused."""
        target = self.processes.get(name)
        if target is None:
            raise ConfigError(f"chaos refused: {name!r} is not in target.processes",
                              key="scenario.fault.service")
        pid = read_pidfile(target.pidfile)
        if pid == os.getpid():
            raise ConfigError(f"chaos refused: pidfile {target.pidfile} names readygate itself")
        cmd = command_line(pid)
        if cmd is None:
            raise ConfigError(f"chaos refused: pidfile {target.pidfile} names PID {pid}, which"
                              " is not running")
        if target.command_contains not in cmd:
            raise ConfigError(f"chaos refused: PID {pid} from {target.pidfile} runs "
                              f"{cmd[:80]!r}, not a process whose command contains "
                              f"{target.command_contains!r}")
        return pid

    async def inject(self, fault: Fault) -> InjectedFault:
        """Send the fault's signal; a pause gets a watchdog that resumes it at the TTL."""
        if not isinstance(fault, ProcessFault):
            raise ConfigError(f"the process injector cannot inject {fault.kind!r}")
        pid = self.resolve(fault.service)
        starttime = process_starttime(pid)
        now = time.time()
        expires = now + fault.ttl_s
        watchdog = None
        if fault.action == "stop":
            # The watchdog first: if it cannot start, the process is never paused.
            log = self.log_dir / f"watchdog-{pid}.log" if self.log_dir else None
            watchdog = start_watchdog(["--sigcont", str(pid), "--starttime", str(starttime)],
                                      expires_at=expires, log_path=log)
        try:
            os.kill(pid, _SIGNALS[fault.action])
        except OSError as exc:
            if watchdog is not None:
                stop_watchdog(watchdog)
            raise FaultError(f"cannot signal {fault.service} (PID {pid}): {exc}") from None
        if fault.action == "stop":
            # Signals are delivered asynchronously: report the fault once it is in effect.
            deadline = time.monotonic() + 2.0
            while process_state(pid) not in ("T", "t", None) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        fault_id = f"p-{uuid.uuid4().hex[:12]}"
        self._held[fault_id] = _Held(pid, starttime, fault.action, watchdog)
        verb = {"stop": "paused (SIGSTOP)", "kill": "killed (SIGKILL)",
                "term": "terminated (SIGTERM)"}[fault.action]
        detail: dict[str, object] = {"pid": pid, "action": fault.action}
        if watchdog is not None:
            detail["watchdog_pid"] = watchdog.pid
        return InjectedFault(fault_id=fault_id, service=fault.service, kind=fault.kind,
                             summary=f"{fault.service} (PID {pid}) {verb}", started_at=now,
                             expires_at=expires, detail=detail)

    async def remove(self, injected: InjectedFault) -> float:
        """Resume a paused process (if it is still the same one); kill/term only end."""
        held = self._held.pop(injected.fault_id, None)
        if held is None:
            return time.time()
        # Resume first, then stop the watchdog: the process is never left paused between.
        if held.action == "stop" and process_starttime(held.pid) == held.starttime:
            with contextlib.suppress(ProcessLookupError):  # died while paused: nothing to do
                os.kill(held.pid, signal.SIGCONT)
        if held.watchdog is not None:
            stop_watchdog(held.watchdog)
        return time.time()
