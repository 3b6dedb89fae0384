"""Pure renderers: a report in, a string out. Only :mod:`reports.writer` touches disk."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from reports.model import CheckResult, Report

_ICON = {"pass": "✅", "fail": "❌", "error": "⚠️", "skipped": "⏭️"}
_VERDICT = {"ready": "READY", "not_ready": "NOT READY", "inconclusive": "INCONCLUSIVE"}


def render_json(report: Report) -> str:
    """report.json: the documented, versioned schema (see docs/report-schema.json)."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str) + "\n"


def _ts(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _latency(c: CheckResult) -> str:
    return "—" if c.latency_s is None else f"{c.latency_s:.2f}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _effect_line(report: Report) -> str | None:
    """What a failing fault-phase check must be read with when the fault went unnoticed."""
    if report.fault_effect is None:
        return None
    return (f"the fault had {report.fault_effect}: a failing fault-phase check may mean the "
            "fault never reached the service, not that the check is wrong")


def _unnoticed(report: Report, c: CheckResult) -> bool:
    return report.fault_effect is not None and c.phase == "fault" and c.status == "fail"


def render_markdown(report: Report) -> str:
    """report.md: fits a GitHub step summary or a PR comment."""
    verdict = _VERDICT[report.verdict]
    lines = [f"## readygate: {report.gate} — **{verdict}**", ""]
    if report.partial:
        lines += [f"> ⚠️ Partial report: {report.reason or 'the run was interrupted'}", ""]
    elif report.reason:
        lines += [f"> {report.reason}", ""]
    effect = _effect_line(report)
    if effect is not None:
        lines += [f"> ⚠️ Fault effect: {effect}.", ""]
    s = report.to_dict()["summary"]
    lines += [
        f"Target **{report.target}** · started {_ts(report.started_at)} · "
        f"{report.finished_at - report.started_at:.1f}s · "
        f"{s['pass']} passed, {s['fail']} failed, {s['error']} errors, {s['skipped']} skipped",
        "",
        "| | check | phase | severity | latency | deadline | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report.checks:
        deadline = "—" if c.deadline_s is None else f"{c.deadline_s:g}s"
        note = " ⚠️ *the fault had no observable effect*" if _unnoticed(report, c) else ""
        lines.append(f"| {_ICON[c.status]} | {_cell(c.name)} | {c.phase} | {c.severity} | "
                     f"{_latency(c)} | {deadline} | {_cell(c.message)}{note} |")
    probes = report.to_dict()["probes"]
    if probes:
        lines += ["", "### Probes", "", "| journey | runs | success | p50 | p95 |",
                  "|---|---|---|---|---|"]
        for journey, p in probes.items():
            lines.append(f"| {journey} | {p['runs']} | {p['success_ratio']:.0%} | "
                         f"{p['p50_s'] * 1000:.0f} ms | {p['p95_s'] * 1000:.0f} ms |")
    if report.faults:
        lines += ["", "### Faults", ""]
        for f in report.faults:
            end = f.get("ended_at")
            held = f"{end - f['started_at']:.1f}s" if end else "still active at report time"
            lines.append(f"- `{f['kind']}` on **{f['service']}** ({f.get('summary', '')}), "
                         f"held {held}, removed by {f.get('end_reason', '?')}")
    if report.comparison:
        lines += _comparison_md(report.comparison)
    return "\n".join(lines) + "\n"


def _secs(value: object) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.2f}s"


def _comparison_md(cmp: dict[str, Any]) -> list[str]:
    prev = cmp.get("previous", {})
    when = _ts(prev["started_at"]) if isinstance(prev.get("started_at"), int | float) else "?"
    lines = ["", "### Compared with the previous run", "",
             f"Previous: **{_VERDICT.get(prev.get('verdict', ''), '?')}** at {when}.", ""]
    regressions = cmp.get("regressions") or []
    if regressions:
        lines += ["**Regressions:**", ""] + [f"- ❗ {_cell(r)}" for r in regressions] + [""]
    else:
        lines += ["No regressions.", ""]
    lines += ["| check | before | now | latency before | now | Δ | trend (oldest → now) |",
              "|---|---|---|---|---|---|---|"]
    for row in cmp.get("checks", []):
        delta = row.get("latency_delta_s")
        d = "—" if delta is None else f"{delta:+.2f}s" + (" ❗" if row.get("regressed") else "")
        trend = " → ".join("—" if v is None else f"{v:.2f}" for v in row.get("trend", []))
        lines.append(f"| {_cell(row['name'])} | {row.get('before') or 'new'} | {row['now']} | "
                     f"{_secs(row.get('latency_before'))} | {_secs(row.get('latency_now'))} | "
                     f"{d} | {trend} |")
    return lines


def console_status(c: CheckResult) -> str:
    """FAIL/ERROR of a warning-severity check reads WARN: it does not change the verdict."""
    if c.status in ("fail", "error") and c.severity == "warning":
        return "WARN"
    return c.status.upper()


def render_console(report: Report, out_dir: str | None = None) -> str:
    """The end-of-run summary for a terminal: verdict, a table of checks, where the report is."""
    width = max([len(c.name) for c in report.checks] + [5])
    rows = [f"{'STATUS':<7} {'CHECK':<{width}}  {'LATENCY':>8}  {'DEADLINE':>8}  MESSAGE"]
    for c in report.checks:
        deadline = "" if c.deadline_s is None else f"{c.deadline_s:g}s"
        note = " [the fault had no observable effect]" if _unnoticed(report, c) else ""
        rows.append(f"{console_status(c):<7} {c.name:<{width}}  {_latency(c):>8}  "
                    f"{deadline:>8}  {c.message}{note}")
    effect = _effect_line(report)
    if effect is not None:
        rows += ["", f"fault effect: {effect}"]
    verdict = _VERDICT[report.verdict]
    tail = f"verdict: {verdict} (exit code {report.exit_code})"
    if report.partial:
        tail += f" — partial: {report.reason}"
    elif report.reason:
        tail += f" — {report.reason}"
    out = ["", *rows, "", tail]
    if out_dir:
        out.append(f"report: {out_dir}/report.html (also report.md, report.json, junit.xml)")
    return "\n".join(out) + "\n"
