"""The drill report: milestones of one incident, read off the timeline, and the measured times.

Pure functions over events (no I/O): fault injected → first failed probe → alert pending →
alert firing → notification received → rollback → alert resolved → recovered. Each
milestone carries its wall-clock time and its offset from the fault's start (or from the
rollback, for the recovery milestones). A milestone that did not happen is ``None`` with
a reason, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.events import (
    AlertObserved,
    Event,
    FaultInjected,
    FaultRemoved,
    LoadStats,
    NotificationObserved,
    PhaseStarted,
    ProbeFinished,
)

MILESTONES = ("fault_injected", "first_failed_probe", "alert_pending", "alert_firing",
              "notification_received", "rollback", "alert_resolved",
              "resolved_notification_received", "probes_recovered", "recovered")


def _first(events: Sequence[Event], kind: type[Event], after: float | None,
           **match: Any) -> Any:
    if after is None:
        return None
    for event in events:
        if isinstance(event, kind) and event.at >= after and \
                all(getattr(event, k) == v for k, v in match.items()):
            return event
    return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def drill_summary(events: Sequence[Event], *, alertname: str | None,
                  journeys: Sequence[str], watcher: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The ``drill`` block of the report: milestones and times from the run's events."""
    injected = next((e for e in events if isinstance(e, FaultInjected)), None)
    removed = next((e for e in events if isinstance(e, FaultRemoved)), None)
    start = injected.at if injected else None
    end = removed.at if removed else None
    at: dict[str, float | None] = dict.fromkeys(MILESTONES)
    notes: dict[str, str] = {}
    at["fault_injected"] = start
    at["rollback"] = end

    failed = None
    if start is not None:
        # A probe that *finished* failing after the fault started is the first symptom.
        failed = next((e for e in events if isinstance(e, ProbeFinished)
                       and not e.result.success and e.result.started_at + e.result.duration_s
                       >= start), None)
    if failed is not None:
        at["first_failed_probe"] = failed.result.started_at + failed.result.duration_s
    named: dict[str, Any] = {"alertname": alertname} if alertname else {}
    pending = _first(events, AlertObserved, start, state="pending", **named)
    firing = _first(events, AlertObserved, start, state="firing", **named)
    at["alert_pending"] = pending.at if pending else None
    at["alert_firing"] = firing.at if firing else None
    if firing is not None and pending is None:
        notes["alert_pending"] = "not seen: the rule has no `for`, so it went straight to firing"
    note = _first(events, NotificationObserved, start, status="firing", **named)
    at["notification_received"] = note.at if note else None
    resolved = _first(events, AlertObserved, end, state="resolved", **named)
    at["alert_resolved"] = resolved.at if resolved else None
    resolved_note = _first(events, NotificationObserved, end, status="resolved", **named)
    at["resolved_notification_received"] = resolved_note.at if resolved_note else None

    if end is not None:
        # Recovered probes: every journey the fault broke (when none failed, as under a
        # latency fault: every journey that ran while it held) has succeeded again,
        # counting runs started after the rollback (a run started before it may have met
        # the fault). A journey the fault never touched has nothing to recover from, and a
        # slow one (a browser journey every few seconds) would otherwise delay "recovered"
        # by its interval, or leave it unmeasured when the drill ends first.
        # A journey already failing before the fault was not broken by it, and has nothing
        # to recover from (its last run before the fault failed).
        before: dict[str, bool] = {}
        for e in events:
            if isinstance(e, ProbeFinished) and start is not None \
                    and e.result.started_at + e.result.duration_s < start:
                before[e.result.journey] = e.result.success
        healthy = [j for j in journeys if before.get(j, True)]
        met = [e.result for e in events if isinstance(e, ProbeFinished) and start is not None
               and e.result.started_at + e.result.duration_s >= start
               and e.result.started_at < end]
        broken = {r.journey for r in met if not r.success}
        exposed = {r.journey for r in met}
        firsts: list[float] = []
        if not healthy:
            notes["probes_recovered"] = "every journey was failing before the fault"
        for journey in ([j for j in healthy if j in broken]
                        or [j for j in healthy if j in exposed] or healthy):
            ok = next((e for e in events if isinstance(e, ProbeFinished)
                       and e.result.journey == journey and e.result.success
                       and e.result.started_at >= end), None)
            if ok is None:
                firsts = []
                notes["probes_recovered"] = f"{journey} probes did not succeed again"
                break
            firsts.append(ok.result.started_at + ok.result.duration_s)
        if firsts:
            at["probes_recovered"] = max(firsts)
    parts = [at["probes_recovered"]]
    if firing is not None:
        parts.append(at["alert_resolved"])  # recovered means the alert has cleared too
    if end is not None and all(p is not None for p in parts):
        at["recovered"] = max(p for p in parts if p is not None)
    for name in MILESTONES:
        if at[name] is None and name not in notes:
            notes[name] = "not observed"

    def since(name: str, anchor: float | None) -> float | None:
        value = at[name]
        return None if value is None or anchor is None else value - anchor

    milestones = [{"name": name, "at": at[name],
                   "after_fault_s": _round(since(name, start)),
                   **({"note": notes[name]} if name in notes else {})} for name in MILESTONES]
    return {
        "alertname": alertname,
        "milestones": milestones,
        "time_to_first_failed_probe_s": _round(since("first_failed_probe", start)),
        "time_to_pending_s": _round(since("alert_pending", start)),
        "time_to_detect_s": _round(since("alert_firing", start)),
        "time_to_notify_s": _round(since("notification_received", start)),
        "fault_duration_s": _round(since("rollback", start)),
        "time_to_resolve_s": _round(since("alert_resolved", end)),
        "time_to_resolved_notification_s": _round(since("resolved_notification_received", end)),
        "time_to_recover_s": _round(since("recovered", end)),
        "load_by_phase": load_by_phase(events),
        "watcher": watcher or {},
    }


def load_by_phase(events: Sequence[Event]) -> dict[str, dict[str, Any]]:
    """Per phase: Locust's peak RPS, failures added and worst interval p95."""
    out: dict[str, dict[str, Any]] = {}
    phase = "setup"
    last_total: dict[str, int] = {}
    for event in events:
        if isinstance(event, PhaseStarted):
            phase = event.phase
        elif isinstance(event, LoadStats) and not event.final:
            s = event.stats
            entry = out.setdefault(phase, {"samples": 0, "max_rps": 0.0, "failures": 0,
                                           "max_p95_ms": None})
            entry["samples"] += 1
            entry["max_rps"] = max(entry["max_rps"], float(s.get("rps") or 0.0))
            failures = int(s.get("failures") or 0)
            entry["failures"] += max(0, failures - last_total.get("failures", 0))
            last_total["failures"] = failures
            p95 = s.get("p95_ms")
            if isinstance(p95, int | float):
                worst = entry["max_p95_ms"]
                entry["max_p95_ms"] = p95 if worst is None else max(worst, p95)
    return out


def render_drill(drill: dict[str, Any], *, scenario: str = "") -> str:
    """The drill timeline for a terminal: one milestone a line, then the measured times."""
    lines = [f"drill {scenario}: alert {drill.get('alertname') or '?'}".rstrip()]
    # in the order they happened (report.json keeps the fixed order); those that did not
    # happen last, with why
    happened = sorted((m for m in drill["milestones"] if m["at"] is not None),
                      key=lambda m: m["at"])
    for m in happened + [m for m in drill["milestones"] if m["at"] is None]:
        offset = m["after_fault_s"]
        shown = f"{offset:+8.2f}s" if offset is not None else "       —"
        lines.append(f"  {shown}  {m['name'].replace('_', ' ')}"
                     + (f"  ({m['note']})" if m.get("note") and m["at"] is None else ""))

    def fmt(key: str) -> str:
        value = drill.get(key)
        return f"{value:.2f}s" if isinstance(value, int | float) else "n/a"

    lines.append(f"  time to detect {fmt('time_to_detect_s')}, to notify "
                 f"{fmt('time_to_notify_s')}, first failed probe "
                 f"{fmt('time_to_first_failed_probe_s')}, recover after rollback "
                 f"{fmt('time_to_recover_s')}")
    load = drill.get("load")
    if load:
        p95 = load.get("p95_ms")
        lines.append(f"  load: {load.get('requests', 0)} requests, {load.get('failures', 0)} "
                     f"failed, {float(load.get('rps') or 0):.1f} rps, p95 "
                     + (f"{p95:.0f} ms" if isinstance(p95, int | float) else "n/a"))
    return "\n".join(lines) + "\n"
