"""Scratch directories of a run, marked with their owner, so a dead run's are swept.

A SIGKILLed readygate cannot clean up: its demo stack's directory keeps the services'
unscrubbed logs and the sink's database, secrets and all. Every scratch directory holds a
marker naming its owner (PID, the process's start time from ``/proc`` and the boot id);
the next run removes each marked directory whose owner is gone. A live run's directory is
never touched (its PID *and* start time still match), nor is a directory without a marker
(not ours to judge) or one of another user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MARKER = ".readygate-owner"
PREFIX = "readygate-"


def _start_time(pid: int) -> int | None:
    """The kernel start time (clock ticks since boot) of ``pid``, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    try:
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner() -> dict[str, object]:
    """This process as a scratch directory's owner."""
    pid = os.getpid()
    return {"pid": pid, "start": _start_time(pid), "boot": _boot_id()}


def mark_owner(path: Path) -> None:
    """Mark ``path`` as this process's scratch directory (atomically; idempotent)."""
    tmp = path / f"{MARKER}.{os.getpid()}"
    tmp.write_text(json.dumps(owner()), encoding="utf-8")
    os.replace(tmp, path / MARKER)


def scratch_dir(prefix: str = PREFIX) -> Path:
    """A new private temporary directory (mode 0700), marked as this process's."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    mark_owner(path)
    return path


def owner_alive(marker: dict[str, object]) -> bool:
    """Whether the process a marker names is still the one that wrote it."""
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    boot = marker.get("boot")
    if boot and _boot_id() and boot != _boot_id():
        return False  # written before a reboot: that process is gone
    start = _start_time(pid)
    if start is None:
        if Path("/proc/self/stat").exists():
            return False  # /proc works and has no such PID
        try:  # no /proc: all we can ask is whether some process has the PID
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # the same PID with another start time is a new process that reused the number
    return marker.get("start") in (None, start)


def sweep_stale(root: Path | None = None, prefix: str = PREFIX) -> list[Path]:
    """Remove the marked scratch directories under ``root`` (default: the temp directory)
    whose owner is dead; return what was removed."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            info = entry.lstat()
            if not entry.is_dir() or entry.is_symlink() or info.st_uid != uid:
                continue
            marker = json.loads((entry / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no marker (or not readable): not ours to judge
        if not isinstance(marker, dict) or owner_alive(marker):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(entry)
        if not entry.exists():
            removed.append(entry)
    return removed
