"""Progress for humans: one line per event, quiet and line-oriented (fits CI logs too)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from readygate import redact
from readygate.events import (
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


class ConsoleProgress:
    """Prints what the run is doing; probe failures are printed once per streak."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.t0 = time.time()
        self._failing: set[str] = set()

    def _say(self, at: float, text: str) -> None:
        self.stream.write(redact.scrub(f"[{at - self.t0:6.1f}s] {text}\n"))
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._say(event.at, f"gate {event.gate} on {event.target}")
        elif isinstance(event, PhaseStarted):
            self._say(event.at, f"phase {event.phase} started")
        elif isinstance(event, PhaseFinished):
            self._say(event.at, f"phase {event.phase} finished ({event.reason})")
        elif isinstance(event, FaultInjected):
            self._say(event.at, f"fault injected: {event.kind} on {event.service} "
                      f"(id {event.fault_id}, expires in {event.expires_at - event.at:.0f}s)")
        elif isinstance(event, FaultRemoved):
            self._say(event.at, f"fault removed: {event.fault_id} on {event.service} "
                      f"({event.reason})")
        elif isinstance(event, CheckSettled):
            r = event.result
            self._say(event.at, f"check {r.status.upper():<5} {r.name}: {r.message}")
        elif isinstance(event, ProbeFinished):
            p = event.result
            if not p.success and p.journey not in self._failing:
                self._failing.add(p.journey)
                self._say(event.at, f"probe {p.journey} failing: {p.error}")
            elif p.success and p.journey in self._failing:
                self._failing.discard(p.journey)
                self._say(event.at, f"probe {p.journey} passing again")
        elif isinstance(event, Note):
            self._say(event.at, event.message)
        elif isinstance(event, RunFinished):
            self._say(event.at, f"run finished: {event.verdict}"
                      + (" (partial)" if event.partial else ""))
