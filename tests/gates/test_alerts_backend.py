"""Alert checks read any alerting engine through the AlertsBackend Protocol, with the same
honesty as on Prometheus: a transition after the anchor passes; already active before it,
never firing, firing late, never having fired (for resolves) and could-not-look do not."""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import BackendError
from gates.backends.types import ActiveAlert
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.gates.conftest import CHECK


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Engine:
    """An alerting engine whose state is a script of (from_time, alerts) steps."""

    script: list[tuple[float, list[ActiveAlert]]] = field(default_factory=list)
    fired_at: list[float] = field(default_factory=list)
    down: bool = False
    kind: str = "engine"

    async def alerts(self) -> list[ActiveAlert]:
        if self.down:
            raise BackendError("engine answered 502")
        now = time.time()
        current: list[ActiveAlert] = []
        for start, alerts in self.script:
            if now >= start:
                current = alerts
        return current

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        if self.down:
            raise BackendError("engine answered 502")
        return any(t >= since for t in self.fired_at if t <= time.time())


def firing(active_at: float, state: str = "firing") -> ActiveAlert:
    return ActiveAlert(name="HighErrorRate", state=state,
                       labels={"alertname": "HighErrorRate", "service": "web"},
                       active_at=iso(active_at))


def run(check: dict[str, Any], engine: Engine, anchor: float,
        phase: str = "fault") -> CheckResult:
    async def go() -> CheckResult:
        ctx = CheckContext(prometheus=None, sink=None, alerts=engine,
                           anchors=Anchors(phase_start={phase: anchor}, fault_start=anchor,
                                           fault_end=anchor),
                           probe_results=[], poll_interval_s=0.05)
        return await judge(CHECK.validate_python(check), ctx, phase)
    return asyncio.run(go())


ALERT = {"signal": "alert", "alertname": "HighErrorRate", "labels": {"service": "web"}}


def test_an_alert_that_begins_after_the_anchor_passes() -> None:
    anchor = time.time()
    engine = Engine([(anchor + 0.2, [firing(anchor + 0.1)])])
    r = run({**ALERT, "deadline_s": 2}, engine, anchor)
    assert r.status == "pass", r.message
    assert "engine alert state" in str(r.evidence.get("query"))


def test_an_alert_active_before_the_anchor_fails() -> None:
    anchor = time.time()
    engine = Engine([(0, [firing(anchor - 30)])])
    r = run({**ALERT, "deadline_s": 0.3}, engine, anchor)
    assert r.status == "fail"
    assert "already active before fault_start" in r.message


def test_an_alert_that_never_fires_fails_and_a_pending_one_is_the_near_miss() -> None:
    anchor = time.time()
    assert run({**ALERT, "deadline_s": 0.3}, Engine(), anchor).status == "fail"
    r = run({**ALERT, "deadline_s": 0.3},
            Engine([(0, [firing(anchor + 0.01, "pending")])]), anchor)
    assert r.status == "fail" and "seen instead" in r.message


def test_an_alert_firing_after_the_deadline_fails_as_late() -> None:
    anchor = time.time() - 1.0
    engine = Engine([(0, [firing(anchor + 0.9)])])
    r = run({**ALERT, "deadline_s": 0.5}, engine, anchor)
    assert r.status == "fail" and "late" in r.message


def test_an_engine_that_cannot_be_read_is_an_error_never_a_pass() -> None:
    anchor = time.time()
    for check in (ALERT, {"signal": "no_alert", "phase": "baseline", "window_s": 0.3},
                  {"signal": "alert_resolves", "alertname": "HighErrorRate",
                   "phase": "recovery", "anchor": "fault_end"}):
        r = run({**check, "deadline_s": 0.3}, Engine(down=True), anchor,
                phase=str(check.get("phase", "fault")))
        assert r.status == "error", (check, r.message)


def test_no_alert_fails_on_a_pending_alert_and_says_rules_were_not_evaluated() -> None:
    anchor = time.time()
    check = {"signal": "no_alert", "phase": "baseline", "window_s": 0.3,
             "evaluate_rules": True}
    r = run(check, Engine([(0, [firing(anchor, "pending")])]), anchor, phase="baseline")
    assert r.status == "fail" and "was pending" in r.message
    r = run(check, Engine(), anchor, phase="baseline")
    assert r.status == "pass", r.message
    assert "cannot be evaluated" in str(r.evidence.get("rules_evaluated"))


def test_resolves_needs_the_alert_to_have_fired_during_the_run() -> None:
    anchor = time.time()
    check = {"signal": "alert_resolves", "alertname": "HighErrorRate", "phase": "recovery",
             "anchor": "fault_end", "deadline_s": 0.3}
    never = run(check, Engine(), anchor, phase="recovery")
    assert never.status == "fail" and "never fired" in never.message
    still = run(check, Engine([(0, [firing(anchor)])], fired_at=[anchor]), anchor,
                phase="recovery")
    assert still.status == "fail" and "did not resolve" in still.message
    anchor = time.time()
    resolved = run(check, Engine(fired_at=[anchor + 0.01]), anchor, phase="recovery")
    assert resolved.status == "pass", resolved.message
