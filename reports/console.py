"""Progress for humans: what the run is doing (phase, fault, checks settled / pending).

Two modes. On a terminal, event lines scroll and one status line at the bottom is redrawn
in place. In CI (the ``CI`` variable is set) or when the output is not a terminal, it stays
line-oriented and quiet: no redraws, no escape codes, one line per event worth reading,
and probe failures only once per streak.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from core import redact
from core.events import (
    CheckSettled,
    Event,
    FaultInjected,
    FaultRemoved,
    Note,
    PhaseFinished,
    PhaseStarted,
    ProbeFinished,
    RunFinished,
    RunStarted,
)
from reports.render import console_status

_CLEAR = "\r\x1b[2K"
_REDRAW_EVERY_S = 0.2  # probes finish many times a second; the status line need not


def is_interactive(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """A terminal that is not CI: there the status line may redraw in place."""
    env = os.environ if environ is None else environ
    if env.get("CI", "").lower() not in ("", "0", "false"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ConsoleProgress:
    """Listens to run events and prints progress (see the module docstring for the modes)."""

    def __init__(self, stream: TextIO | None = None, *, total_checks: int = 0,
                 interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = is_interactive(self.stream) if interactive is None else interactive
        self.t0 = time.time()
        self.total = total_checks
        self.settled = 0
        self.failed = 0
        self.phase = "starting"
        self.fault: tuple[str, float] | None = None  # (what, since)
        self.probes = 0
        self._failing: set[str] = set()
        self._status_shown = False
        self._last_draw = 0.0

    # -- output ------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        self.stream.write(redact.scrub(text))
        self.stream.flush()

    def _say(self, at: float, text: str) -> None:
        prefix = _CLEAR if self._status_shown else ""
        self._status_shown = False
        self._write(f"{prefix}[{at - self.t0:6.1f}s] {text}\n")

    def checks_text(self) -> str:
        """'3/8 checks settled, 5 pending' (or just the settled count when the total is unknown)."""
        if self.total:
            pending = max(self.total - self.settled, 0)
            text = f"{self.settled}/{self.total} checks settled, {pending} pending"
        else:
            text = f"{self.settled} checks settled"
        return text + (f", {self.failed} not passed" if self.failed else "")

    def status_line(self, now: float | None = None) -> str:
        """The one-line state of the run: phase, fault, checks, probes."""
        now = time.time() if now is None else now
        parts = [f"phase {self.phase}"]
        if self.fault:
            what, since = self.fault
            parts.append(f"FAULT ACTIVE {what} for {now - since:.1f}s")
        else:
            parts.append("no fault")
        parts.append(self.checks_text())
        probes = f"{self.probes} probes"
        if self._failing:
            probes += f" ({', '.join(sorted(self._failing))} failing)"
        parts.append(probes)
        return " · ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if not self.interactive:
            return
        now = time.time()
        if not force and now - self._last_draw < _REDRAW_EVERY_S:
            return
        self._last_draw = now
        self._write(f"{_CLEAR}[{now - self.t0:6.1f}s] {self.status_line(now)}")
        self._status_shown = True

    # -- events ------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        self._handle(event)
        if isinstance(event, RunFinished):
            if self._status_shown:
                self._write(_CLEAR)
                self._status_shown = False
        else:
            self._draw(force=not isinstance(event, ProbeFinished))

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.t0 = min(self.t0, event.at)
            pending = f" ({self.total} checks)" if self.total else ""
            self._say(event.at, f"gate {event.gate} on {event.target}{pending}")
        elif isinstance(event, PhaseStarted):
            self.phase = event.phase
            self._say(event.at, f"phase {event.phase} started · {self.checks_text()}")
        elif isinstance(event, PhaseFinished):
            self._say(event.at, f"phase {event.phase} finished ({event.reason}) · "
                      f"{self.checks_text()}")
        elif isinstance(event, FaultInjected):
            self.fault = (f"{event.kind} on {event.service}", event.at)
            self._say(event.at, f"fault injected: {event.kind} on {event.service} "
                      f"(id {event.fault_id}, expires in {event.expires_at - event.at:.0f}s)")
        elif isinstance(event, FaultRemoved):
            held = f", held {event.at - self.fault[1]:.1f}s" if self.fault else ""
            self.fault = None
            self._say(event.at, f"fault removed: {event.fault_id} on {event.service} "
                      f"({event.reason}{held})")
        elif isinstance(event, CheckSettled):
            r = event.result
            self.settled += 1
            if r.status != "pass":
                self.failed += 1
            count = f"[{self.settled}/{self.total}] " if self.total else ""
            self._say(event.at, f"check {console_status(r):<5} {count}{r.name}: {r.message}")
        elif isinstance(event, ProbeFinished):
            self._probe(event)
        elif isinstance(event, Note):
            self._say(event.at, event.message)
        elif isinstance(event, RunFinished):
            self._say(event.at, f"run finished: {event.verdict}"
                      + (" (partial)" if event.partial else "") + f" · {self.checks_text()}")
        else:
            self._observed(event)

    def _probe(self, event: ProbeFinished) -> None:
        p = event.result
        self.probes += 1
        if not p.success and p.journey not in self._failing:
            self._failing.add(p.journey)
            self._say(event.at, f"probe {p.journey} failing: {p.error}")
        elif p.success and p.journey in self._failing:
            self._failing.discard(p.journey)
            self._say(event.at, f"probe {p.journey} passing again")

    def _observed(self, event: Any) -> None:
        # alert / notification observations from the watchers; matched by shape so this
        # listener keeps working whichever event types a run emits
        kind = type(event).__name__
        if kind == "AlertObserved":
            self._say(event.at, f"alert {event.alertname} {event.state}")
        elif kind == "NotificationObserved":
            self._say(event.at, f"notification {event.alertname} {event.status} received"
                      + (f" by {event.receiver}" if event.receiver else ""))
