"""The run's timeline on the user's Grafana dashboards, as annotations (opt-in).

:class:`TimelineAnnotations` listens to the run's events (core.events) and keeps what a
dashboard reader wants to see beside their graphs: the fault window (a region), alerts
firing and resolved, notifications received. After the run, :meth:`annotations` adds the
verdict and :func:`publish` writes them all through a grafana-client API the roof hands
in (``POST /api/annotations``), on each dashboard named, or as organization annotations
when none is (a dashboard shows them with an annotation query filtered on the tags).

Every annotation carries ``readygate``, ``gate:<name>``, ``run:<id>`` and the user's tags.
Writing never changes the verdict: what could not be written comes back as warning lines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from core import redact
from core.events import (
    AlertObserved,
    Event,
    FaultInjected,
    FaultRemoved,
    NotificationObserved,
    RunStarted,
)
from reports.model import Report, summarize

MAX_MARKS = 50  # alert and notification annotations per run: a flapping alert is one story
_VERDICT = {"ready": "READY", "not_ready": "NOT READY", "inconclusive": "INCONCLUSIVE"}


@dataclass(frozen=True)
class Annotation:
    """One annotation to write: a point, or a region when ``time_end`` is set."""

    time: float                        # unix seconds
    text: str
    tags: tuple[str, ...]
    time_end: float | None = None


def run_id(gate: str, started_at: float) -> str:
    """The run's id in tags: the gate and its start (UTC), e.g. ``release-20250101T120000Z``."""
    stamp = dt.datetime.fromtimestamp(started_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{gate}-{stamp}"


def _labels(labels: dict[str, str]) -> str:
    shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return f"{{{shown}}}" if shown else ""


class TimelineAnnotations:
    """A run listener keeping the events that become annotations."""

    def __init__(self, tags: list[str] | None = None) -> None:
        self.tags = list(tags or [])
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted | FaultInjected | FaultRemoved | AlertObserved
                      | NotificationObserved):
            self.events.append(event)

    def annotations(self, report: Report) -> list[Annotation]:
        """Every annotation of the run, the verdict (of the final report) last."""
        started = next((e.at for e in self.events if isinstance(e, RunStarted)),
                       report.started_at)
        base = ("readygate", f"gate:{report.gate}", f"run:{run_id(report.gate, started)}",
                *self.tags)
        out: list[Annotation] = []
        removed = {e.fault_id: e for e in self.events if isinstance(e, FaultRemoved)}
        marks = 0
        for event in self.events:
            if isinstance(event, FaultInjected):
                end = removed.get(event.fault_id)
                until = end.at if end is not None else min(event.expires_at, report.finished_at)
                how = f"removed: {end.reason}" if end is not None else "never removed by readygate"
                out.append(Annotation(event.at, f"readygate fault: {event.kind} on "
                                      f"{event.service} ({how})", (*base, "fault"),
                                      time_end=max(until, event.at)))
            elif isinstance(event, AlertObserved) and event.state in ("firing", "resolved") \
                    and marks < MAX_MARKS:
                marks += 1
                tag = "alert" if event.state == "firing" else "recovered"
                out.append(Annotation(event.at, f"alert {event.alertname}"
                                      f"{_labels(event.labels)} {event.state}", (*base, tag)))
            elif isinstance(event, NotificationObserved) and marks < MAX_MARKS:
                marks += 1
                via = f" via {event.receiver}" if event.receiver else ""
                out.append(Annotation(event.at, f"notified: {event.alertname} {event.status}"
                                      f"{via}", (*base, "notification")))
        counts = summarize(report.checks)
        out.append(Annotation(
            report.finished_at,
            f"readygate {report.gate} on {report.target}: {_VERDICT[report.verdict]}"
            f"{' (partial)' if report.partial else ''} · {counts['pass']} passed, "
            f"{counts['fail']} failed, {counts['error']} errors"
            + (f" · {report.reason}" if report.reason else ""),
            (*base, "verdict", f"verdict:{report.verdict}")))
        return out


def _why(exc: Exception) -> str:
    """A failure in one line: Grafana's message where it gave one, else the error's type."""
    status = getattr(exc, "status_code", None)
    if status is None:
        return type(exc).__name__
    body = getattr(exc, "response", None)
    message = body.get("message") if isinstance(body, dict) else None
    return f"grafana answered {status}" + (f": {str(message)[:200]}" if message else "")


def publish(api: Any, annotations: list[Annotation], dashboard_uids: list[str]) -> list[str]:
    """Write ``annotations`` on each dashboard with a grafana-client API (blocking: the
    caller runs it in a thread); the warnings, one per dashboard that failed (stopping
    there, so a Grafana that is down costs one timeout per dashboard)."""
    warnings: list[str] = []
    targets: list[str | None] = list(dashboard_uids) or [None]
    for uid in targets:
        where = f"dashboard {uid}" if uid else "the organization"
        for n, ann in enumerate(annotations):
            try:
                api.annotations.add_annotation(
                    dashboard_uid=uid, time_from=int(ann.time * 1000),
                    time_to=None if ann.time_end is None else int(ann.time_end * 1000),
                    tags=list(ann.tags), text=redact.scrub(ann.text))
            except Exception as exc:  # any failure to write is a warning, never the verdict
                warnings.append(redact.scrub(
                    f"grafana annotations: {len(annotations) - n} of {len(annotations)} not "
                    f"written on {where}: {_why(exc)}"))
                break
    return warnings
