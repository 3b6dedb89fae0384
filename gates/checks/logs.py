"""Log checks: lines carry the probe's ids, required fields, levels, budget, no secrets."""

from __future__ import annotations

import bisect
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from core import redact
from core.errors import BackendError
from core.waiting import Seen, eventually
from gates.backends.types import IncompleteWindow, LogLine, LogsBackend, level_rank, read_window
from gates.checks.common import GRACE_S, Judge, carries, failed_request_ids, probe_for
from gates.config import LogBudgetCheck, LogFieldsCheck, LogLevelsCheck, LogsCheck, SecretLeakCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult


async def _lines(logs: LogsBackend, *, trace_id: str | None = None,
                 request_id: str | None = None) -> list[LogLine]:
    """The backend's lines for one id, each shown to carry it. A backend that ignored the
    filter (a proxy dropping the query, a field that is not indexed, a line filter matching
    another id's prefix) must not lend a probe lines that are not its own."""
    lines = await logs.lines(trace_id=trace_id, request_id=request_id)
    return [line for line in lines if carries(line.trace_id, line.request_id, line.text,
                                              want_trace=trace_id, want_request=request_id)]


async def _lines_of(logs: LogsBackend, probe: ProbeResult, by: str = "trace_id",
                    request_ids: list[str] | None = None) -> list[LogLine]:
    if by == "trace_id":
        return await _lines(logs, trace_id=probe.trace_id)
    out: list[LogLine] = []
    for rid in request_ids if request_ids is not None else probe.request_ids:
        out += await _lines(logs, request_id=rid)
    return out


def _sample(line: LogLine) -> str:
    return (line.body or str(line.fields))[:160]


async def logs_check(check: LogsCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Lines carrying the probe's trace (or request) id arrive from the listed services."""
    logs = ctx.logs
    if logs is None:
        return j.result("skipped", "no log backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if probe is None:
        return j.result("error", str(why))
    anchor = probe.started_at
    want = set(check.services)
    ident = probe.trace_id if check.by == "trace_id" else ", ".join(probe.request_ids)

    async def observe() -> Seen[list[LogLine]]:
        lines = await _lines_of(logs, probe, check.by)
        services = {str(line.service) for line in lines}
        if len(lines) >= check.min_lines and want <= services:
            return Seen(lines)
        if lines:
            return Seen(miss=f"{len(lines)} line(s) with {check.by} {ident} from "
                        f"{', '.join(sorted(services))}; wanted {', '.join(sorted(want))}")
        if check.by == "trace_id" and probe.request_ids:
            by_request = await _lines(logs, request_id=probe.request_ids[0])
            if by_request:
                return Seen(miss=f"{len(by_request)} line(s) carry the probe's request id "
                            f"but not its trace id {probe.trace_id}")
        return Seen(miss=f"no log line carries {check.by} {ident}")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {
        "trace_id": probe.trace_id, "journey": check.journey, "backend": logs.kind,
        "query": logs.describe_query(**{check.by: probe.trace_id if check.by == "trace_id"
                                        else probe.request_ids[0] if probe.request_ids
                                        else ""})}

    def passed(lines: list[LogLine], latency: float) -> str:
        evidence.update(lines=len(lines), sample=_sample(lines[0]))
        return (f"{len(lines)} log line(s) carry the {check.jname} probe's "
                f"{check.by.replace('_', ' ')}, {latency:.1f}s after the probe")

    result = j.settle(out, anchor=anchor, evidence=evidence, what="log lines",
                      passed=passed)
    if result.status == "fail" and out.found is None and out.error is None:
        return j.result("fail", f"{out.last_miss} ({check.deadline_s:.0f}s after the probe)",
                        evidence=evidence)
    return result


async def log_fields_check(check: LogFieldsCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Every line of the probe carries every required structured field."""
    logs = ctx.logs
    if logs is None:
        return j.result("skipped", "no log backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if probe is None:
        return j.result("error", str(why))

    async def observe() -> Seen[list[LogLine]]:
        lines = await _lines(logs, trace_id=probe.trace_id)
        if not lines:
            return Seen(miss=f"no log line carries trace id {probe.trace_id}")
        problems = []
        for name in check.fields:
            lacking = [line for line in lines if line.get(name) in (None, "")]
            if lacking:
                problems.append(f"{len(lacking)} of {len(lines)} line(s) lack '{name}' "
                                f"(e.g. {_sample(lacking[0])!r})")
        if problems:
            return Seen(miss="; ".join(problems))
        return Seen(lines)

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "fields": check.fields,
                                "backend": logs.kind}
    result = j.settle(out, anchor=probe.started_at, evidence=evidence, what="complete log lines",
                      passed=lambda lines, lat: f"all {len(lines)} line(s) of the "
                      f"{check.jname} probe carry {', '.join(check.fields)}")
    if result.status == "fail" and out.last_miss and "lack" in out.last_miss:
        return j.result("fail", f"log lines miss required fields: {out.last_miss}",
                        evidence=evidence)
    return result


async def log_levels_check(check: LogLevelsCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """A failed request is logged at ``min_level`` or above (not at INFO)."""
    logs = ctx.logs
    if logs is None:
        return j.result("skipped", "no log backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j, failed=True)
    if probe is None:
        return j.result("error", str(why))
    wanted = level_rank(check.min_level)
    rids = failed_request_ids(probe)

    async def observe() -> Seen[LogLine]:
        lines = await _lines(logs, trace_id=probe.trace_id)
        if not lines:
            lines = await _lines_of(logs, probe, "request_id", rids)
        for line in lines:
            if level_rank(line.level) >= wanted:
                return Seen(line)
        if lines:
            top = max(lines, key=lambda line: level_rank(line.level))
            return Seen(miss=f"{len(lines)} line(s) for the failed {check.jname}, highest "
                        f"level {top.level or 'none'}: {_sample(top)!r}")
        return Seen(miss=f"no log line for the failed {check.jname} (trace id "
                    f"{probe.trace_id})")

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "probe_error": probe.error,
                                "min_level": check.min_level, "backend": logs.kind}

    def passed(line: LogLine, latency: float) -> str:
        evidence["line"] = _sample(line)
        return (f"failed {check.jname} logged at {line.level} by {line.service}, "
                f"{latency:.1f}s after the probe")

    result = j.settle(out, anchor=probe.started_at, evidence=evidence,
                      what=f"{check.min_level} log line", passed=passed)
    if result.status == "fail" and out.last_miss and "highest level" in out.last_miss:
        return j.result("fail", f"failed {check.jname} not logged at {check.min_level}: "
                        f"{out.last_miss}", evidence=evidence)
    return result


async def log_budget_check(check: LogBudgetCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """No sampled request writes more lines than the budget (counts stable over two polls)."""
    logs = ctx.logs
    if logs is None:
        return j.result("skipped", "no log backend configured")
    first, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if first is None:
        return j.result("error", str(why))
    start = ctx.anchors.phase_start.get(j.phase, 0.0)
    last: dict[str, int] = {}

    async def observe() -> Seen[tuple[str, dict[str, int]]]:
        nonlocal last
        probes = [p for p in ctx.probes_since(check.journey, start)][:check.sample]
        counts = {p.trace_id: len(await _lines(logs, trace_id=p.trace_id)) for p in probes}
        over = {t: n for t, n in counts.items() if n > check.max_lines_per_request}
        if over:  # counts only grow: one request over budget settles it
            return Seen(("over", over))
        stable = counts == last
        last = counts
        if not any(counts.values()):
            return Seen(miss=f"no log lines for any of {len(counts)} {check.jname} probe(s)")
        if not stable:
            return Seen(miss=f"line counts still growing: {sorted(counts.values())}")
        return Seen(("ok", counts))

    out = await eventually(observe, timeout=j.remaining(first.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"budget": check.max_lines_per_request, "backend": logs.kind}
    if out.found is not None:
        verdict, counts = out.found
        evidence["lines_per_trace"] = counts
        if verdict == "over":
            worst = max(counts, key=lambda t: counts[t])
            return j.result("fail", f"a {check.jname} request wrote {counts[worst]} log lines "
                            f"(budget {check.max_lines_per_request}; trace {worst})",
                            evidence=evidence)
        return j.result("pass", f"{len(counts)} {check.jname} request(s) wrote at most "
                        f"{max(counts.values())} line(s) each (budget "
                        f"{check.max_lines_per_request})", evidence=evidence)
    return j.settle(out, anchor=first.started_at, evidence=evidence, what="stable line counts",
                    passed=lambda _, lat: "")


@dataclass
class _Leak:
    """What the scan found of one secret."""

    lines: int = 0
    services: set[str] = field(default_factory=set)
    encodings: set[str] = field(default_factory=set)
    sample: LogLine | None = None


def _scan_page(page: list[LogLine], canary: redact.Canary, leaks: dict[int, _Leak]) -> None:
    """Record every secret found in ``page``: each line is one text of all its values
    (body and fields) joined, so a secret split over two fields is found whole."""
    texts = [redact.joined([line.body, line.fields]) for line in page]
    starts, at = [], 0
    for text in texts:
        starts.append(at)
        at += len(text) + 1
    hits = canary.hits("\0".join(texts), stops=starts)
    counted: set[tuple[int, int]] = set()
    for hit in hits:
        n = bisect.bisect_right(starts, hit.start) - 1
        leak = leaks.setdefault(hit.secret, _Leak())
        leak.encodings.add(hit.encoding)
        if (hit.secret, n) not in counted:
            counted.add((hit.secret, n))
            leak.lines += 1
            leak.services.add(str(page[n].service))
            leak.sample = leak.sample or page[n]


def _masked_sample(line: LogLine, canary: redact.Canary) -> str:
    """The line's message and the fields that held a secret, every secret masked."""
    # masked as data first (a split secret), then as text, and only then clipped: clipping
    # first could cut a secret into a piece no longer recognised
    body, fields = canary.scrub_data([line.body, line.fields])
    where = {k: v for k, v in fields.items() if line.fields.get(k) != v and k != "body"}
    text = " ".join(part for part in (body, json.dumps(where, ensure_ascii=False, default=str)
                                      if where else "") if part)
    return canary.scrub(text)[:160]


async def secret_leak_check(check: SecretLeakCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """None of the secrets appears, in any encoding, in any log line of the retained window
    (from ``lookback_s`` before the run began: start-up config dumps count)."""
    logs = ctx.logs
    if logs is None:
        return j.result("skipped", "no log backend configured")
    # config refuses shorter secrets (core.http.check_secret_lengths)
    secrets = [s for s in dict.fromkeys(ctx.secrets) if len(s) >= redact.MIN_LEN]
    if not secrets:
        return j.result("skipped", "no secrets configured to look for")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if probe is None:
        return j.result("error", str(why))
    run_start = min(ctx.anchors.phase_start.values(), default=probe.started_at)
    since = run_start - check.lookback_s

    # An empty log store would "contain no secret": prove lines flow before trusting absence.
    async def flowing() -> Seen[int]:
        lines = await _lines(logs, trace_id=probe.trace_id)
        return Seen(len(lines)) if lines else \
            Seen(miss=f"no log line of the {check.jname} probe (trace {probe.trace_id}) "
                 "arrived, so absence of secrets proves nothing")

    out = await eventually(flowing, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    when = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    evidence: dict[str, Any] = {
        "backend": logs.kind, "secrets_checked": len(secrets), "since": round(since, 3),
        "lookback_s": check.lookback_s,
        "query": f"every {logs.kind} log line since {when} ({check.lookback_s:g}s before the "
                 "run), each matched against every encoding of every secret"}
    # The window is scanned even when no line could be tied to the probe (a service that
    # logs neither trace nor request ids): a leak found is a leak; only absence needs proof.
    canary = redact.canary(tuple(secrets))
    found: dict[int, _Leak] = {}
    scanned, problem = 0, None
    try:
        async for page in read_window(logs, since, max_lines=check.max_lines):
            scanned += len(page)
            _scan_page(page, canary, found)
    except IncompleteWindow as exc:
        problem = f"could not scan the whole log window: {exc} (scanned {scanned})"
    except BackendError as exc:
        problem = f"could not read the log window after {scanned} line(s): {exc}"
    evidence["lines_scanned"] = scanned
    if found:
        leaks = []
        for index in sorted(found):
            leak = found[index]
            assert leak.sample is not None
            leaks.append(f"secret #{index + 1} appears in {leak.lines} log line(s) from "
                         f"{', '.join(sorted(leak.services))} "
                         f"({', '.join(sorted(leak.encodings))}), "
                         f"e.g. {_masked_sample(leak.sample, canary)!r}")
        evidence["leaks"] = leaks
        if problem:
            evidence["incomplete"] = problem
        if out.found is None:
            evidence["flow_unproven"] = out.last_miss
        return j.result("fail", "secret leaked into the logs: " + "; ".join(leaks),
                        evidence=evidence)
    if out.found is None:
        return j.settle(out, anchor=probe.started_at, evidence=evidence,
                        what="log lines to scan", passed=lambda _, lat: "")
    if problem is not None:
        return j.result("error", problem, evidence=evidence)
    if scanned == 0:  # the probe's lines exist, yet the window read none: not a clean log
        return j.result("error", f"the log window since {when} returned no line, though "
                        f"{out.found} line(s) of the {check.jname} probe exist",
                        evidence=evidence)
    # latency: when the probe's lines (the proof that logs flow) were seen
    latency = (out.observed_at or probe.started_at) - probe.started_at
    return j.result("pass", f"none of {len(secrets)} secret(s) appears in any encoding in "
                    f"{scanned} log line(s) since {when} ({out.found} line(s) of the "
                    f"{check.jname} probe prove logs flow)", latency=latency, evidence=evidence)
