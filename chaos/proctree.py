"""Processes as /proc shows them: state, parent, process group and start time; trees and groups.

Process faults act on a service's whole process tree or group, and must never touch
readygate itself or its ancestors. A PID alone can be reused, so every process is known by
its PID *and* its kernel start time (field 22 of ``/proc/PID/stat``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` a process fault needs."""

    pid: int
    state: str  # R, S, D, T (stopped), t (traced), Z (zombie), X (dead)...
    ppid: int
    pgrp: int
    starttime: int


def _parse(pid: int, text: str) -> ProcStat | None:
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    try:
        rest = text.rsplit(")", 1)[1].split()
        return ProcStat(pid, rest[0], int(rest[1]), int(rest[2]), int(rest[19]))
    except (IndexError, ValueError):
        return None


def stat(pid: int) -> ProcStat | None:
    """The stat of ``pid``, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return _parse(pid, text)


def table() -> dict[int, ProcStat]:
    """Every process on the machine, read once from /proc (processes may vanish meanwhile)."""
    out: dict[int, ProcStat] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        parsed = _parse(int(entry.name), text)
        if parsed is not None:
            out[parsed.pid] = parsed
    return out


def descendants(roots: list[int], procs: dict[int, ProcStat]) -> list[int]:
    """Every descendant of ``roots`` in ``procs``, parents before children (roots excluded)."""
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: list[int] = []
    seen = set(roots)
    queue = list(roots)
    while queue:
        for child in sorted(children.get(queue.pop(0), [])):
            if child not in seen:
                seen.add(child)
                out.append(child)
                queue.append(child)
    return out


def group_members(pgid: int, procs: dict[int, ProcStat]) -> list[int]:
    """The processes of process group ``pgid``, leader first."""
    members = sorted(p.pid for p in procs.values() if p.pgrp == pgid)
    return sorted(members, key=lambda pid: pid != pgid)


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, grandparent ... up to PID 1 (what a fault must never signal)."""
    out: list[int] = []
    current = stat(pid)
    while current is not None and current.ppid > 0 and current.ppid not in out:
        out.append(current.ppid)
        current = stat(current.ppid)
    return out


def protected() -> frozenset[int]:
    """readygate's own process and every ancestor of it."""
    me = os.getpid()
    return frozenset([me, *ancestors(me)])


def command_line(pid: int) -> str | None:
    """The command line of ``pid`` with spaces between arguments, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
