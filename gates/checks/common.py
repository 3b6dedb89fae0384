"""What every check shares: the result builder, anchors, following a probe, settling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from core import redact
from core.waiting import Outcome, Seen, eventually
from gates.config import Check, NoAlertCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult, Status

T = TypeVar("T")

# After the deadline, look once more for this long so a signal that arrived just in time is
# not missed by polling granularity; the signal's own timestamp then decides pass or late.
GRACE_S = 0.3


class Judge:
    """Builds the result of one check."""

    def __init__(self, check: Check, ctx: CheckContext, phase: str) -> None:
        self.check = check
        self.ctx = ctx
        self.phase = phase

    def anchor_time(self) -> float | None:
        anchors = self.ctx.anchors
        anchor = self.check.anchor
        if anchor == "fault_start":
            return anchors.fault_start
        if anchor == "fault_end":
            return anchors.fault_end
        return anchors.phase_start.get(self.phase)

    def result(self, status: Status, message: str, *, latency: float | None = None,
               evidence: dict[str, Any] | None = None) -> CheckResult:
        # a no-alert check has no deadline: its window is what bounds it
        deadline = self.check.window_s if isinstance(self.check, NoAlertCheck) \
            else self.check.deadline_s
        return CheckResult(
            name=self.check.display_name(), signal=self.check.signal, status=status,
            message=message, severity=self.check.severity, phase=self.phase,
            latency_s=latency, deadline_s=deadline, anchor=self.check.anchor,
            evidence=evidence or {}, settled_at=time.time())

    def remaining(self, anchor: float) -> float:
        return anchor + self.check.deadline_s - time.time()

    def settle(self, out: Outcome[T], *, anchor: float, evidence: dict[str, Any], what: str,
               passed: Callable[[T, float], str],
               latency_of: Callable[[T], float] | None = None) -> CheckResult:
        """pass / fail as late / error (could not look) / fail with the nearest miss."""
        deadline = self.check.deadline_s
        anchor_name = "the probe" if self.check.anchor == "probe_sent" else self.check.anchor
        if out.found is not None:
            latency = latency_of(out.found) if latency_of is not None \
                else (out.observed_at or time.time()) - anchor
            if latency > deadline:
                return self.result("fail", f"{what} showed up late: {latency:.1f}s after "
                                   f"{anchor_name} (deadline {deadline:g}s)",
                                   latency=latency, evidence=evidence)
            return self.result("pass", passed(out.found, latency), latency=latency,
                               evidence=evidence)
        if out.error is not None:
            return self.result("error", f"could not look for {what}: {out.error}",
                               evidence=evidence)
        evidence["nearest_miss"] = out.last_miss
        return self.result("fail", f"no {what} within {deadline:g}s of {anchor_name}: "
                           f"{out.last_miss or 'nothing seen'}", evidence=evidence)


def labels_match(have: dict[str, str], want: dict[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def carries(trace_id: str | None, request_id: str | None, text: Callable[[], str], *,
            want_trace: str | None = None, want_request: str | None = None) -> bool:
    """Whether a record (log line, error event) with these id fields carries the id wanted:
    its own field when it has one, else its ``text()``. What a backend answered to an id
    query is checked again with this: a backend that ignored the filter lends nothing."""
    if want_trace:
        if trace_id:
            return trace_id.lower() == want_trace.lower()
        return want_trace.lower() in text().lower()
    if want_request:
        if request_id:
            return request_id == want_request
        return want_request in text()
    return True


def fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with the given and every registered secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact.MASK)
    return redact.scrub(text)


async def probe_for(journey: str | None, deadline_s: float, ctx: CheckContext, j: Judge, *,
                    failed: bool = False) -> tuple[ProbeResult | None, str | None]:
    """The probe whose ids a check follows: the phase's first successful (or failed) run."""
    start = ctx.anchors.phase_start.get(j.phase, 0.0)
    wanted = "failed" if failed else "successful"
    name = journey or "journey"

    async def observe() -> Seen[ProbeResult]:
        runs = ctx.probes_since(journey, start)
        hits = [p for p in runs if p.success != failed]
        if hits:
            return Seen(hits[0])
        if runs:
            last = runs[-1]
            return Seen(miss=f"{name} probes failing: {last.error}" if not failed
                        else f"{len(runs)} {name} probe(s) in {j.phase}, none failed")
        return Seen(miss=f"no {name} probe has run in {j.phase}")

    # The deadline counts from the probe, so waiting for the probe is not part of it: a
    # journey's first run in the phase may take a while (a browser journey launches
    # Chromium). The phase's max duration still bounds the wait.
    out = await eventually(observe, timeout=deadline_s + ctx.first_probe_wait_s,
                           interval=0.05)
    if out.found is None:
        return None, f"no {wanted} {name} probe to follow: {out.last_miss}"
    return out.found, None


def failed_request_ids(probe: ProbeResult) -> list[str]:
    """The request ids of the probe's failed steps (all of them when none is marked)."""
    ids = [s.request_id for s in probe.steps if not s.ok and s.request_id]
    return ids or probe.request_ids

