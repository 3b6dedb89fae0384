"""The TTL watchdog: a detached process that undoes a fault at its expiry unless stopped first.

Faults whose target has no TTL of its own (a SIGSTOPped process, a user's command hook, a
Toxiproxy toxic) get one of these. It runs in its own session without a parent-death signal,
so it outlives a SIGKILLed readygate; readygate stops it (SIGTERM, by PID) when it rolls the
fault back itself. At the deadline it does each undo step it was given:

- ``--sigcont PID --starttime T`` (repeatable, in pairs): resume each process, if that PID
  is still the same process; with ``--tree`` also every descendant it has by then;
- ``--http-delete URL`` / ``--http-post URL --json BODY``: call an API (Toxiproxy);
- the shell command in ``READYGATE_WATCHDOG_COMMAND`` (kept out of argv: ``ps`` shows argv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chaos import proctree

COMMAND_ENV = "READYGATE_WATCHDOG_COMMAND"
_MAX_WAIT_S = 86400.0


def process_starttime(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None if it is gone."""
    stat = proctree.stat(pid)
    return None if stat is None else stat.starttime


def start_watchdog(args: list[str], *, expires_at: float, command: str | None = None,
                   log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a detached watchdog that acts at ``expires_at`` (wall clock)."""
    env = dict(os.environ)
    if command is not None:
        env[COMMAND_ENV] = command
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab") if log_path is not None else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "chaos.watchdog", "--at", repr(expires_at), *args],
            stdin=subprocess.DEVNULL, stdout=log or subprocess.DEVNULL,
            stderr=log or subprocess.DEVNULL, env=env,
            # Its own session and no PR_SET_PDEATHSIG: it must survive readygate's death.
            start_new_session=True)
    finally:
        if log is not None:
            log.close()


def stop_watchdog(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a watchdog before its deadline (the fault was rolled back); reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _resume(pids: list[int], starttimes: list[int], *, tree: bool) -> list[int]:
    """SIGCONT each process that is still the same one (and, with ``tree``, its descendants)."""
    # Only the same process: its PID may have been reused since the fault began.
    same = [pid for i, pid in enumerate(pids)
            if i >= len(starttimes) or process_starttime(pid) == starttimes[i]]
    targets = same + (proctree.descendants(same, proctree.table()) if tree and same else [])
    resumed: list[int] = []
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)
            resumed.append(pid)
    return resumed


def main(argv: list[str] | None = None) -> int:
    """Sleep until ``--at``, then undo the fault; SIGTERM before then does nothing."""
    parser = argparse.ArgumentParser(prog="python -m chaos.watchdog")
    parser.add_argument("--at", type=float, required=True, help="deadline, epoch seconds")
    parser.add_argument("--sigcont", type=int, action="append", default=[], metavar="PID")
    parser.add_argument("--starttime", type=int, action="append", default=[])
    parser.add_argument("--tree", action="store_true",
                        help="also resume the descendants of each --sigcont process")
    parser.add_argument("--http-delete", action="append", default=[], metavar="URL")
    parser.add_argument("--http-post", action="append", default=[], metavar="URL")
    parser.add_argument("--json", action="append", default=[], metavar="BODY")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait = min(max(0.0, args.at - time.time()), _MAX_WAIT_S)
    time.sleep(wait)  # a bounded wait on a deadline: nothing else to do until then
    failures = 0
    resumed = _resume(args.sigcont, args.starttime, tree=args.tree)
    if resumed:
        print(f"watchdog: SIGCONT {' '.join(map(str, resumed))} at TTL", flush=True)
    with httpx.Client(timeout=args.timeout, trust_env=False) as client:
        for url in args.http_delete:
            try:
                client.delete(url)
            except httpx.HTTPError as exc:
                failures += 1
                print(f"watchdog: DELETE {url}: {type(exc).__name__}", flush=True)
        for url, body in zip(args.http_post, args.json, strict=False):
            try:
                client.post(url, json=json.loads(body))
            except httpx.HTTPError as exc:
                failures += 1
                print(f"watchdog: POST {url}: {type(exc).__name__}", flush=True)
    command = os.environ.get(COMMAND_ENV)
    if command:
        try:
            rc = subprocess.run(command, shell=True, timeout=args.timeout,
                                stdin=subprocess.DEVNULL, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = -1
        print(f"watchdog: rollback command exited {rc}", flush=True)
        failures += rc != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
