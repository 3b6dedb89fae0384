"""Process faults on local targets: pause (SIGSTOP), kill (SIGKILL) or terminate (SIGTERM).

A process is found through its pidfile and touched only if its command line contains what
``target.processes.<name>.command_contains`` says, so a stale pidfile whose PID now belongs
to another program is refused. A server started by a launcher often leaves the launcher's
PID in the pidfile and serves from a child, so the fault's ``scope`` says what is signalled:
``tree`` (default) the process and every descendant (snapshotted from /proc, signalled
parents first so nothing respawns, then re-walked for children forked meanwhile), ``group``
its process group (``killpg``; refused if that is readygate's own), ``pid`` that process
only. readygate itself and its ancestors are never signalled.

The effect is verified: within ``verify_s`` every signalled process, and every descendant
the pidfile's process had, must be stopped (``stop``) or gone (``kill``/``term``; a zombie
counts as gone). Otherwise injection fails with ``FaultError`` naming a process still
running (a pause is undone first). A paused set is always resumed: by :meth:`remove`, or by
a detached watchdog at the TTL if readygate dies first. Kill and term cannot be undone;
their rollback only records the end (restarting is the supervisor's job).
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

from chaos import proctree
from chaos.base import FaultError, InjectedFault
from chaos.config import Fault, ProcessFault
from chaos.proctree import command_line
from chaos.watchdog import process_starttime, start_watchdog, stop_watchdog
from core.errors import ConfigError
from core.target import ProcessTarget

__all__ = ["ProcessFaultInjector", "command_line", "process_state", "read_pidfile"]

_SIGNALS = {"stop": signal.SIGSTOP, "kill": signal.SIGKILL, "term": signal.SIGTERM}
_SIGNAME = {"stop": "SIGSTOP", "kill": "SIGKILL", "term": "SIGTERM"}
_VERB = {"stop": "paused (SIGSTOP)", "kill": "killed (SIGKILL)", "term": "terminated (SIGTERM)"}
_REWALKS = 10  # re-walks after signalling; a tree still forking after that is left to verify


@dataclass
class _Held:
    pid: int
    procs: dict[int, int]  # every process signalled: PID -> start time
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


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T for stopped, Z...), None if it is gone."""
    stat = proctree.stat(pid)
    return None if stat is None else stat.state


def _same(pid: int, starttime: int) -> bool:
    return process_starttime(pid) == starttime


def _affected(pid: int, starttime: int, action: str) -> bool:
    """Whether the fault shows on this process: stopped, or gone (a zombie is gone)."""
    stat = proctree.stat(pid)
    if stat is None or stat.starttime != starttime or stat.state in ("Z", "X"):
        return True
    return action == "stop" and stat.state in ("T", "t")


def _short(cmd: str, width: int = 100) -> str:
    """A command line on one line; a long one keeps its start (the program) and end (args)."""
    cmd = " ".join(cmd.split())
    return cmd if len(cmd) <= width else f"{cmd[:width // 2 - 1]}…{cmd[-(width // 2):]}"


def _resume(procs: Mapping[int, int]) -> None:
    for pid, starttime in procs.items():
        if _same(pid, starttime):
            with contextlib.suppress(ProcessLookupError):  # died while paused: nothing to do
                os.kill(pid, signal.SIGCONT)


class ProcessFaultInjector:
    """Signals the processes named in ``target.processes`` (and their trees), nothing else."""

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
        if pid in proctree.protected():
            raise ConfigError(f"chaos refused: pidfile {target.pidfile} names PID {pid}, an "
                              "ancestor of readygate")
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
        """Signal the fault's scope and verify the effect; a pause gets a TTL watchdog."""
        if not isinstance(fault, ProcessFault):
            raise ConfigError(f"the process injector cannot inject {fault.kind!r}")
        pid = self.resolve(fault.service)
        guard = proctree.protected()
        procs = proctree.table()
        pgid = self._group(pid, procs, guard) if fault.scope == "group" else None
        if fault.scope == "tree":
            chosen = [pid, *(p for p in proctree.descendants([pid], procs) if p not in guard)]
        elif pgid is not None:
            chosen = proctree.group_members(pgid, procs)
        else:
            chosen = [pid]
        # The service's own tree must show the effect whatever the scope: a launcher's child
        # left serving is exactly the fault that changed nothing.
        watched = {p: procs[p].starttime for p in [*chosen, *proctree.descendants([pid], procs)]
                   if p in procs and p not in guard}
        now = time.time()
        expires = now + fault.ttl_s
        watchdog = None
        if fault.action == "stop":
            # The watchdog first: if it cannot start, nothing is ever paused.
            args = [a for p in chosen if p in watched
                    for a in ("--sigcont", str(p), "--starttime", str(watched[p]))]
            log = self.log_dir / f"watchdog-{pid}.log" if self.log_dir else None
            watchdog = start_watchdog(args + (["--tree"] if fault.scope != "pid" else []),
                                      expires_at=expires, log_path=log)
        signalled: dict[int, int] = {}
        try:
            try:
                self._signal(fault, pid, pgid, chosen, watched, signalled, guard)
            except OSError as exc:  # EPERM: a process of another user in the tree or group
                raise FaultError(f"cannot signal {fault.service} (PID {pid}, scope "
                                 f"{fault.scope}): {exc}") from None
            watched.update(signalled)
            problem = await self._verify(fault, pid, pgid, watched, signalled)
        except BaseException:
            self._undo(fault.action, signalled, watchdog)
            raise
        if problem is not None:
            self._undo(fault.action, signalled, watchdog)
            raise FaultError(problem)
        fault_id = f"p-{uuid.uuid4().hex[:12]}"
        self._held[fault_id] = _Held(pid, signalled, fault.action, watchdog)
        detail: dict[str, object] = {"pid": pid, "action": fault.action, "scope": fault.scope,
                                     "pids": sorted(signalled)}
        if pgid is not None:
            detail["pgid"] = pgid
        if watchdog is not None:
            detail["watchdog_pid"] = watchdog.pid
        return InjectedFault(fault_id=fault_id, service=fault.service, kind=fault.kind,
                             summary=f"{fault.service} ({self._what(fault, pid, pgid, signalled)})"
                                     f" {_VERB[fault.action]}",
                             started_at=now, expires_at=expires, detail=detail)

    async def remove(self, injected: InjectedFault) -> float:
        """Resume every paused process (if each is still the same one); kill/term only end."""
        held = self._held.pop(injected.fault_id, None)
        if held is None:
            return time.time()
        # Resume first, then stop the watchdog: nothing is left paused between the two.
        if held.action == "stop":
            _resume(held.procs)
        if held.watchdog is not None:
            stop_watchdog(held.watchdog)
        return time.time()

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _group(pid: int, procs: dict[int, proctree.ProcStat], guard: frozenset[int]) -> int:
        """The process group of ``pid``; ``ConfigError`` if it holds readygate or an ancestor."""
        stat = procs.get(pid)
        if stat is None:
            raise ConfigError(f"chaos refused: PID {pid} ended before it could be signalled")
        if stat.pgrp == os.getpgrp():
            raise ConfigError(f"chaos refused: process group {stat.pgrp} of PID {pid} is "
                              "readygate's own (use scope: tree)")
        inside = sorted(set(proctree.group_members(stat.pgrp, procs)) & guard)
        if inside:
            raise ConfigError(f"chaos refused: process group {stat.pgrp} of PID {pid} holds "
                              f"PID {inside[0]}, an ancestor of readygate (use scope: tree)")
        return stat.pgrp

    @staticmethod
    def _signal(fault: ProcessFault, pid: int, pgid: int | None, chosen: list[int],
                known: dict[int, int], signalled: dict[int, int], guard: frozenset[int]) -> None:
        """Send the signal to the scope, then re-walk until no new process turns up."""
        sig = _SIGNALS[fault.action]
        pending = [p for p in chosen if p in known]
        for _ in range(_REWALKS):
            if pgid is not None:
                with contextlib.suppress(ProcessLookupError):  # the whole group is gone
                    os.killpg(pgid, sig)
                signalled.update((p, known[p]) for p in pending)
            else:
                # Parents first: a stopped or dead parent cannot respawn the children after it.
                for p in pending:
                    if _same(p, known[p]):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p, sig)
                    signalled[p] = known[p]
            if fault.scope == "pid":
                return
            procs = proctree.table()
            if pgid is not None:
                found = proctree.group_members(pgid, procs)
            else:
                alive = [p for p, t in signalled.items() if p in procs and
                         procs[p].starttime == t]
                found = proctree.descendants(alive, procs)
            pending = [p for p in found if p not in signalled and p not in guard]
            known.update((p, procs[p].starttime) for p in pending)
            if not pending:
                return

    @staticmethod
    async def _verify(fault: ProcessFault, pid: int, pgid: int | None,
                      watched: dict[int, int], signalled: dict[int, int]) -> str | None:
        """None once every watched process shows the effect; else why it had none."""
        deadline = time.monotonic() + fault.verify_s
        while True:
            left = [p for p, t in watched.items() if not _affected(p, t, fault.action)]
            if not left or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)  # a bounded wait: signals are delivered asynchronously
        if not left:
            return None
        first = left[0]
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        message = (f"process fault on {fault.service!r} had no effect: pid {first} "
                   f"({_short(command_line(first) or '?')}) still running{more} "
                   f"{fault.verify_s:g}s after {_SIGNAME[fault.action]}")
        if first not in signalled:
            if fault.scope == "pid":
                message += f"; scope pid signals only PID {pid} (use scope: tree)"
            elif pgid is not None:
                message += f"; it is outside process group {pgid} (use scope: tree)"
        return message

    @staticmethod
    def _undo(action: str, signalled: dict[int, int],
              watchdog: subprocess.Popen[bytes] | None) -> None:
        """A failed injection leaves nothing paused behind (kill and term cannot be undone)."""
        if action == "stop":
            _resume(signalled)
        if watchdog is not None:
            stop_watchdog(watchdog)

    @staticmethod
    def _what(fault: ProcessFault, pid: int, pgid: int | None, signalled: dict[int, int]) -> str:
        others = len(signalled) - 1
        if pgid is not None:
            return f"PID {pid}, process group {pgid}: {len(signalled)} process(es)"
        if fault.scope == "tree" and others:
            return f"PID {pid} and {others} descendant(s)"
        return f"PID {pid}"
