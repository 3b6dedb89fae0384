"""What the scenario runner emits; the timeline, the console and the report listen.

Times are wall-clock unix seconds (``time.time()``) because they are compared with
timestamps other systems record (the sink's arrival times, Alertmanager's startsAt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every event: when it happened."""

    at: float


@dataclass(frozen=True)
class RunStarted(Event):
    gate: str
    target: str


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str


@dataclass(frozen=True)
class PhaseFinished(Event):
    phase: str
    reason: str  # "settled", "max_duration", "interrupted"


@dataclass(frozen=True)
class ProbeFinished(Event):
    result: Any  # probes.model.ProbeResult (kept untyped here: events sit below probes)


@dataclass(frozen=True)
class FaultInjected(Event):
    fault_id: str
    service: str
    kind: str
    spec: dict[str, Any]
    expires_at: float


@dataclass(frozen=True)
class FaultRemoved(Event):
    fault_id: str
    service: str
    reason: str  # "rollback", "interrupted", "expired"


@dataclass(frozen=True)
class CheckSettled(Event):
    result: Any  # reports.model.CheckResult


@dataclass(frozen=True)
class AlertObserved(Event):
    """An alert changed state in Prometheus (``at`` is the source time where known)."""

    alertname: str
    state: str  # "pending", "firing", "resolved"
    labels: dict[str, str]
    observed_at: float  # when readygate's poll saw it


@dataclass(frozen=True)
class NotificationObserved(Event):
    """A notification reached the receiver (``at`` is its arrival time there)."""

    alertname: str
    status: str  # "firing", "resolved"
    receiver: str | None


@dataclass(frozen=True)
class LoadStats(Event):
    """A Locust snapshot: totals so far, current RPS and p95 (``final`` for the summary)."""

    stats: dict[str, Any]
    final: bool = False


@dataclass(frozen=True)
class Note(Event):
    """A line of progress for humans (stack starting, waiting for a backend...)."""

    message: str
    level: str = "info"


@dataclass(frozen=True)
class RunFinished(Event):
    verdict: str
    partial: bool = False


Listener = Callable[[Event], None]


@dataclass
class EventBus:
    """Fans events out to listeners, in order; a failing listener never stops the run."""

    listeners: list[Listener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken progress printer must not lose the run
                continue


@dataclass
class Timeline:
    """Every event of a run, in order: the record the report is made from."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
