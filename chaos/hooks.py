"""Command hooks: the user's own shell commands inject and roll back a fault.

For anything readygate cannot do itself (``kubectl``, ``toxiproxy-cli``, a cloud CLI). Each
command runs with a timeout in its own process group (killed whole on timeout); its output is
kept, scrubbed of secrets, in the fault's ``detail``. A non-zero exit is a :class:`FaultError`
naming the command's last output line. A detached watchdog runs the rollback command at the
TTL if readygate dies first. Secrets: write ``$TOKEN`` (no braces) so the shell expands it
and the value never enters readygate's config or reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chaos.base import FaultError, InjectedFault
from chaos.config import CommandFault, Fault
from chaos.watchdog import start_watchdog, stop_watchdog
from core import redact
from core.errors import ConfigError

_OUTPUT_LIMIT = 4000


@dataclass
class CommandResult:
    """What a hook command did: exit code (None on timeout), scrubbed output, duration."""

    returncode: int | None
    output: str
    duration_s: float


async def run_hook(command: str, timeout_s: float) -> CommandResult:
    """Run ``command`` in a shell with a timeout; the whole process group dies on timeout."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_shell(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        code: int | None = proc.returncode
    except (TimeoutError, asyncio.CancelledError) as exc:
        # The shell's children (kubectl ...) are in its group: kill them all, not just sh.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = await proc.communicate()
        if isinstance(exc, asyncio.CancelledError):
            raise
        code = None
    text = redact.scrub(out.decode(errors="replace"))[-_OUTPUT_LIMIT:]
    return CommandResult(code, text, time.monotonic() - started)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _check(result: CommandResult, what: str, service: str, timeout_s: float) -> None:
    if result.returncode is None:
        raise FaultError(f"{what} hook for {service!r} timed out after {timeout_s:g}s: "
                         f"{_last_line(result.output)}")
    if result.returncode != 0:
        raise FaultError(f"{what} hook for {service!r} exited {result.returncode}: "
                         f"{_last_line(result.output)}")


class CommandFaultInjector:
    """Runs ``inject`` to start a fault and ``rollback`` to end it."""

    def __init__(self, *, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self._held: dict[str, tuple[CommandFault, subprocess.Popen[bytes]]] = {}

    async def inject(self, fault: Fault) -> InjectedFault:
        """Run the inject command; on failure run the rollback (it may have half-applied)."""
        if not isinstance(fault, CommandFault):
            raise ConfigError(f"the command injector cannot inject {fault.kind!r}")
        started = time.time()
        result = await run_hook(fault.inject, fault.timeout_s)
        if result.returncode != 0:
            with contextlib.suppress(Exception):
                await run_hook(fault.rollback, fault.timeout_s)
            _check(result, "inject", fault.service, fault.timeout_s)
        expires = started + fault.ttl_s
        fault_id = f"c-{uuid.uuid4().hex[:12]}"
        log = self.log_dir / f"watchdog-{fault_id}.log" if self.log_dir else None
        watchdog = start_watchdog(["--timeout", str(fault.timeout_s)], expires_at=expires,
                                  command=fault.rollback, log_path=log)
        self._held[fault_id] = (fault, watchdog)
        return InjectedFault(fault_id=fault_id, service=fault.service, kind=fault.kind,
                             summary=f"command hook on {fault.service}", started_at=started,
                             expires_at=expires,
                             detail={"inject_output": result.output,
                                     "inject_s": round(result.duration_s, 3),
                                     "watchdog_pid": watchdog.pid})

    async def remove(self, injected: InjectedFault) -> float:
        """Run the rollback command, then stop the watchdog; ``FaultError`` if it fails.

        A failed rollback leaves the watchdog running: it tries the rollback again at the TTL.
        """
        held = self._held.pop(injected.fault_id, None)
        if held is None:
            return time.time()
        fault, watchdog = held
        result = await run_hook(fault.rollback, fault.timeout_s)
        injected.detail["rollback_output"] = result.output
        injected.detail["rollback_s"] = round(result.duration_s, 3)
        _check(result, "rollback", fault.service, fault.timeout_s)
        stop_watchdog(watchdog)
        return time.time()
