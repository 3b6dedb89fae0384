"""report.html: one self-contained page (inline CSS and SVG, no scripts, no external assets).

A pure renderer: the timeline chart is drawn here as SVG from the report's probe results,
phases, faults and checks, so the page looks the same offline, in a CI artifact viewer
and in a mail attachment.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from typing import Any

from reports.links import check_links
from reports.model import REPORT_SCHEMA_VERSION, CheckResult, Report, probe_summary, summarize

_VERDICT = {"ready": "READY", "not_ready": "NOT READY", "inconclusive": "INCONCLUSIVE"}
_PALETTE = ["#2563eb", "#0d9488", "#7c3aed", "#c2410c", "#be185d", "#4d7c0f"]
_STATUS_COLOR = {"pass": "#16a34a", "fail": "#dc2626", "error": "#d97706", "skipped": "#6b7280"}
_PHASE_FILL = {"baseline": "#f0fdf4", "fault": "#fff7ed", "recovery": "#eff6ff"}

# chart geometry (SVG user units; the SVG scales to the page width)
_W, _LEFT, _RIGHT = 1200, 64, 16
_MARK_TOP, _PLOT_TOP, _PLOT_H = 4, 74, 220
_STRIP_H, _LANE_H = 16, 22
# above this many points per journey, draw one point per pixel column (max latency, any
# failure): a 10,000-probe run stays a small page and renders in milliseconds
_MAX_POINTS = 900

_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--card:#f9fafb}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1320px;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted)}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
.verdict{display:flex;align-items:center;gap:18px;padding:14px 18px;border-radius:10px;
color:#fff;margin:12px 0}
.verdict .big{font-size:26px;font-weight:700;letter-spacing:.5px}
.v-ready{background:#15803d}.v-not_ready{background:#b91c1c}.v-inconclusive{background:#b45309}
.chips span{display:inline-block;background:rgba(255,255,255,.18);border-radius:12px;
padding:2px 10px;margin-right:6px}
.pill{display:inline-block;min-width:52px;text-align:center;border-radius:10px;color:#fff;
font-size:12px;font-weight:600;padding:1px 8px}
.p-pass{background:#16a34a}.p-fail{background:#dc2626}.p-error{background:#d97706}
.p-skipped{background:#6b7280}
.chart{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
.chart svg{width:100%;height:auto;display:block}
.legend{font-size:12px;color:var(--muted);margin:6px 4px 0}
.legend i{display:inline-block;width:14px;height:10px;margin:0 4px -1px 12px;border-radius:2px}
details.check{border:1px solid var(--line);border-radius:8px;margin:6px 0;background:var(--card)}
details.check>summary{cursor:pointer;list-style:none;display:grid;
grid-template-columns:70px minmax(220px,2fr) 80px 70px 150px 3fr;gap:10px;align-items:center;
padding:8px 12px}
details.check>summary::-webkit-details-marker{display:none}
details.check[open]>summary{border-bottom:1px solid var(--line)}
.body{padding:10px 14px}.body pre{background:#fff;border:1px solid var(--line);
border-radius:6px;padding:8px;overflow:auto;max-height:360px;margin:6px 0}
.bar{position:relative;height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden}
.bar b{position:absolute;left:0;top:0;bottom:0;border-radius:4px}
.lat{font-size:12px;color:var(--muted)}
.hdr{font-size:12px;color:var(--muted);display:grid;
grid-template-columns:70px minmax(220px,2fr) 80px 70px 150px 3fr;gap:10px;padding:0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.worse{color:#b91c1c;font-weight:600}.better{color:#15803d}
.links a{margin-right:12px}
.sev-warning{color:#b45309}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ts(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def render_html(report: Report) -> str:
    """report.html: verdict, timeline chart, every check with its evidence and links."""
    counts = summarize(report.checks)
    verdict = _VERDICT[report.verdict]
    title = f"readygate: {report.gate} — {verdict}"
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>readygate · {_e(report.gate)}</h1>",
        f"<div class=\"muted\">target <b>{_e(report.target)}</b> · started "
        f"{_e(_ts(report.started_at))} · {report.finished_at - report.started_at:.1f} s</div>",
        f"<div class=\"verdict v-{report.verdict}\"><span class=\"big\">{_e(verdict)}</span>"
        f"<span class=\"chips\"><span>{counts['pass']} passed</span>"
        f"<span>{counts['fail']} failed</span><span>{counts['error']} errors</span>"
        f"<span>{counts['skipped']} skipped</span></span></div>",
    ]
    if report.partial:
        parts.append(f"<p><b>Partial report:</b> {_e(report.reason or 'interrupted')}</p>")
    elif report.reason:
        parts.append(f"<p>{_e(report.reason)}</p>")
    if report.description:
        parts.append(f"<p class=\"muted\">{_e(report.description)}</p>")
    parts += ["<h2>Timeline</h2>", _chart(report)]
    parts += ["<h2>Checks</h2>", _checks(report)]
    if report.comparison:
        parts += ["<h2>Compared with the previous run</h2>", _comparison(report.comparison)]
    parts += _probes(report)
    parts += _faults(report)
    parts += ["<h2>Events</h2>", _events(report)]
    if report.stack:
        parts.append("<details><summary class=\"muted\">Demo stack</summary><pre>"
                     f"{_e(json.dumps(report.stack, indent=2, default=str))}</pre></details>")
    parts.append(f"<p class=\"muted\">readygate report · schema {REPORT_SCHEMA_VERSION} · "
                 "the same data is in report.json</p></body></html>")
    return "\n".join(parts) + "\n"


# --- the timeline chart -----------------------------------------------------------------

def _anchor_times(report: Report) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in report.phases:
        out[f"phase_start:{p['phase']}"] = p["started_at"]
    if report.faults:
        out["fault_start"] = report.faults[0]["started_at"]
        if report.faults[0].get("ended_at"):
            out["fault_end"] = report.faults[0]["ended_at"]
    return out


def signal_time(check: CheckResult, anchors: dict[str, float]) -> float | None:
    """When the check's signal was seen (wall clock), if the report can tell."""
    received = check.evidence.get("received_at")
    if isinstance(received, int | float):
        return float(received)
    if check.latency_s is None:
        return None
    key = f"phase_start:{check.phase}" if check.anchor == "phase_start" else check.anchor
    base = anchors.get(key)
    return None if base is None else base + check.latency_s


def _nice_step(span: float) -> float:
    raw = span / 10
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * math.ceil(raw / 3600)


def _chart(report: Report) -> str:
    t0 = report.started_at
    span = max(report.finished_at - t0, 1.0)
    plot_w = _W - _LEFT - _RIGHT

    def x(t: float) -> float:
        return round(_LEFT + plot_w * min(max((t - t0) / span, 0.0), 1.0), 1)

    by_journey: dict[str, list[dict[str, Any]]] = {}
    for p in report.probes:
        by_journey.setdefault(p["journey"], []).append(p)
    journeys = sorted(by_journey)
    durations = [p["duration_s"] for p in report.probes if p["duration_s"] > 0]
    lo = 0.001
    hi = max(max(durations, default=0.1) * 1.3, 0.1)
    llo, lhi = math.log10(lo), math.log10(hi)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return round(_PLOT_TOP + _PLOT_H * (1 - (math.log10(v) - llo) / (lhi - llo)), 1)

    strips_top = _PLOT_TOP + _PLOT_H + 14
    lane_top = strips_top + _STRIP_H * len(journeys) + 6
    axis_y = lane_top + _LANE_H + 4
    height = axis_y + 26
    bottom = lane_top + _LANE_H
    s: list[str] = [
        f"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {_W} {height}\" "
        "role=\"img\" aria-label=\"timeline: probe latency and success, faults, alerts\" "
        "font-family=\"system-ui,sans-serif\" font-size=\"11\">",
        "<defs><pattern id=\"hatch\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" "
        "patternTransform=\"rotate(45)\"><rect width=\"8\" height=\"8\" fill=\"#fee2e2\"/>"
        "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#fca5a5\" stroke-width=\"3\"/>"
        "</pattern></defs>",
    ]
    # phases as background bands, labelled at the top of the plot
    for p in report.phases:
        x1, x2 = x(p["started_at"]), x(p.get("finished_at") or report.finished_at)
        fill = _PHASE_FILL.get(p["phase"], "#f9fafb")
        s.append(f"<rect x=\"{x1}\" y=\"{_PLOT_TOP}\" width=\"{max(x2 - x1, 1)}\" "
                 f"height=\"{bottom - _PLOT_TOP}\" fill=\"{fill}\"/>")
        s.append(f"<text x=\"{x1 + 4}\" y=\"{_PLOT_TOP + 12}\" fill=\"#6b7280\" "
                 f"font-weight=\"600\">{_e(p['phase'])}</text>")
    # fault windows: hatched, over the whole height so they line up with every lane
    for f in report.faults:
        x1 = x(f["started_at"])
        x2 = x(f.get("ended_at") or report.finished_at)
        s.append(f"<rect x=\"{x1}\" y=\"{_PLOT_TOP}\" width=\"{max(x2 - x1, 2)}\" "
                 f"height=\"{bottom - _PLOT_TOP}\" fill=\"url(#hatch)\" opacity=\"0.55\">"
                 f"<title>fault {_e(f.get('kind', ''))} on {_e(f.get('service', ''))}: "
                 f"{_e(f.get('summary', ''))}</title></rect>")
        s.append(f"<text x=\"{x1 + 4}\" y=\"{_PLOT_TOP + 26}\" fill=\"#b91c1c\" "
                 f"font-weight=\"600\">fault: {_e(f.get('summary') or f.get('kind', ''))}"
                 "</text>")
    # latency grid (log scale)
    decade = 10 ** math.floor(llo)
    while decade <= hi:
        if decade >= lo:
            yy = y(decade)
            label = f"{decade * 1000:g} ms" if decade < 1 else f"{decade:g} s"
            s.append(f"<line x1=\"{_LEFT}\" x2=\"{_W - _RIGHT}\" y1=\"{yy}\" y2=\"{yy}\" "
                     "stroke=\"#e5e7eb\"/>")
            s.append(f"<text x=\"{_LEFT - 6}\" y=\"{yy + 4}\" text-anchor=\"end\" "
                     f"fill=\"#6b7280\">{label}</text>")
        decade *= 10
    s.append(f"<text x=\"14\" y=\"{_PLOT_TOP + _PLOT_H / 2}\" fill=\"#6b7280\" "
             f"transform=\"rotate(-90 14 {_PLOT_TOP + _PLOT_H / 2})\" text-anchor=\"middle\">"
             "probe latency</text>")
    # latency lines and failure markers, then a success strip per journey
    for i, journey in enumerate(journeys):
        color = _PALETTE[i % len(_PALETTE)]
        runs = by_journey[journey]
        line, fails = _points(runs, x, y)
        s.append(f"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" "
                 f"points=\"{' '.join(f'{a},{b}' for a, b in line)}\"/>")
        if len(runs) <= _MAX_POINTS:
            s.extend(f"<circle cx=\"{a}\" cy=\"{b}\" r=\"2\" fill=\"{color}\"/>"
                     for a, b in line)
        for a, b in fails:
            s.append(f"<path d=\"M{a - 3},{b - 3}L{a + 3},{b + 3}M{a - 3},{b + 3}L{a + 3},"
                     f"{b - 3}\" stroke=\"#dc2626\" stroke-width=\"1.8\"/>")
        top = strips_top + i * _STRIP_H
        s.append(f"<text x=\"{_LEFT - 6}\" y=\"{top + 11}\" text-anchor=\"end\" "
                 f"fill=\"{color}\" font-weight=\"600\">{_e(journey)}</text>")
        s.append(_strip(runs, x, top, report.finished_at))
    # the checks lane: one diamond per settled check
    s.append(f"<text x=\"{_LEFT - 6}\" y=\"{lane_top + 15}\" text-anchor=\"end\" "
             "fill=\"#6b7280\" font-weight=\"600\">checks</text>")
    for c in report.checks:
        if c.settled_at is None:
            continue
        cx, cy = x(c.settled_at), lane_top + 11
        s.append(f"<path d=\"M{cx},{cy - 6}L{cx + 6},{cy}L{cx},{cy + 6}L{cx - 6},{cy}Z\" "
                 f"fill=\"{_STATUS_COLOR[c.status]}\" stroke=\"#fff\"><title>"
                 f"{_e(c.status.upper())} {_e(c.name)}: {_e(c.message)}</title></path>")
    # alert and notification markers: when the signal was seen, not when we polled it
    s.extend(_markers(report, x, bottom))
    # time axis
    step = _nice_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        xx = x(t0 + tick)
        s.append(f"<line x1=\"{xx}\" x2=\"{xx}\" y1=\"{axis_y - 4}\" y2=\"{axis_y}\" "
                 "stroke=\"#9ca3af\"/>")
        s.append(f"<text x=\"{xx}\" y=\"{axis_y + 14}\" text-anchor=\"middle\" "
                 f"fill=\"#6b7280\">{tick:g}s</text>")
        tick += step
    s.append(f"<line x1=\"{_LEFT}\" x2=\"{_W - _RIGHT}\" y1=\"{axis_y - 4}\" "
             f"y2=\"{axis_y - 4}\" stroke=\"#9ca3af\"/></svg>")
    legend = "".join(f"<i style=\"background:{_PALETTE[i % len(_PALETTE)]}\"></i>{_e(j)}"
                     for i, j in enumerate(journeys))
    legend += ("<i style=\"background:#dc2626;height:3px\"></i>failed probe"
               "<i style=\"background:#fca5a5\"></i>fault active"
               "<i style=\"background:#ea580c;width:3px\"></i>alert firing"
               "<i style=\"background:#7c3aed;width:3px\"></i>notification delivered"
               "<i style=\"background:#16a34a;transform:rotate(45deg);width:9px;height:9px\">"
               "</i>check settled (hover for details)")
    return f"<div class=\"chart\">{''.join(s)}<div class=\"legend\">{legend}</div></div>"


def _points(runs: list[dict[str, Any]], x: Any, y: Any
            ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Line points and failure points; downsampled to one per pixel column when large."""
    if len(runs) <= _MAX_POINTS:
        pts = [(x(r["started_at"]), y(r["duration_s"])) for r in runs]
        fails = [pt for pt, r in zip(pts, runs, strict=True) if not r["success"]]
        return pts, fails
    worst: dict[int, float] = {}
    failed: dict[int, float] = {}
    for r in runs:
        col = int(x(r["started_at"]))
        d = r["duration_s"]
        if d > worst.get(col, -1.0):
            worst[col] = d
        if not r["success"]:
            failed[col] = max(d, failed.get(col, 0.0))
    return ([(float(c), y(worst[c])) for c in sorted(worst)],
            [(float(c), y(failed[c])) for c in sorted(failed)])


def _strip(runs: list[dict[str, Any]], x: Any, top: float, end: float) -> str:
    """Success over time: runs of equal outcome merged into one bar each."""
    out: list[str] = []
    ordered = sorted(runs, key=lambda r: r["started_at"])
    i = 0
    while i < len(ordered):
        ok = ordered[i]["success"]
        j = i
        while j + 1 < len(ordered) and ordered[j + 1]["success"] == ok:
            j += 1
        start = ordered[i]["started_at"]
        stop = ordered[j + 1]["started_at"] if j + 1 < len(ordered) else \
            max(ordered[j]["started_at"] + ordered[j]["duration_s"], start)
        stop = min(stop, end)
        x1, x2 = x(start), x(stop)
        color = "#86efac" if ok else "#f87171"
        n = j - i + 1
        out.append(f"<rect x=\"{x1}\" y=\"{top + 2}\" width=\"{max(x2 - x1, 1.5)}\" "
                   f"height=\"{_STRIP_H - 4}\" fill=\"{color}\"><title>{n} "
                   f"{'successful' if ok else 'failed'} probe(s)"
                   + ("" if ok else f": {_e(ordered[i].get('error') or '')}")
                   + "</title></rect>")
        i = j + 1
    return "".join(out)


def _markers(report: Report, x: Any, bottom: float) -> list[str]:
    anchors = _anchor_times(report)
    marks: list[tuple[float, str, str, str]] = []
    for c in report.checks:
        if c.signal not in ("alert", "notification") or c.status != "pass":
            continue
        at = signal_time(c, anchors)
        if at is None:
            continue
        if c.signal == "alert":
            label = f"alert {c.evidence.get('alert', c.name)} firing"
            color = "#ea580c"
        else:
            wanted = c.evidence.get("status_wanted", "")
            alertname = (c.evidence.get("labels") or {}).get("alertname", "")
            label = f"notified: {alertname} {wanted}"
            color = "#7c3aed"
        lat = f" · {c.latency_s:.1f}s after {c.anchor}" if c.latency_s is not None else ""
        marks.append((at, label + lat, color, c.name))
    observed = _observed_marks(report)
    if observed:  # the watchers saw each state change: better than one point per check
        marks = observed
    out: list[str] = []
    rows: list[list[tuple[float, float]]] = []  # occupied label spans per row
    for at, label, color, name in sorted(marks):
        xx = x(at)
        width = 6.4 * len(label) + 8
        anchor_end = xx + width > _W - _RIGHT
        span = (xx - width, xx) if anchor_end else (xx, xx + width)
        row = next((k for k, used in enumerate(rows)
                    if all(span[1] < a or span[0] > b for a, b in used)), len(rows))
        if row == len(rows):
            rows.append([])
        rows[row].append(span)
        ty = _MARK_TOP + 10 + row * 16
        out.append(f"<line x1=\"{xx}\" x2=\"{xx}\" y1=\"{ty + 3}\" y2=\"{bottom}\" "
                   f"stroke=\"{color}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\">"
                   f"<title>{_e(name)}</title></line>")
        out.append(f"<text x=\"{xx + (-4 if anchor_end else 4)}\" y=\"{ty}\" fill=\"{color}\" "
                   f"font-weight=\"600\" text-anchor=\"{'end' if anchor_end else 'start'}\" "
                   # a white halo keeps the label readable where another marker crosses it
                   "stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">"
                   f"{_e(label)}</text>")
    return out


def _observed_marks(report: Report) -> list[tuple[float, str, str, str]]:
    fault_at = report.faults[0]["started_at"] if report.faults else None
    out: list[tuple[float, str, str, str]] = []

    def rel(at: float) -> str:
        if fault_at is None:
            return f" · +{at - report.started_at:.1f}s"
        return f" · {at - fault_at:+.1f}s from fault_start"

    for ev in report.timeline:
        at = ev.get("at")
        if not isinstance(at, int | float):
            continue
        if ev.get("type") == "AlertObserved" and ev.get("state") in ("firing", "resolved"):
            label = f"alert {ev.get('alertname', '')} {ev['state']}{rel(at)}"
            out.append((at, label, "#ea580c", label))
        elif ev.get("type") == "NotificationObserved":
            label = f"notified: {ev.get('alertname', '')} {ev.get('status', '')}{rel(at)}"
            out.append((at, label, "#7c3aed", label))
    return out


# --- checks, probes, faults, events -----------------------------------------------------

def _checks(report: Report) -> str:
    anchors = _anchor_times(report)
    start, end = report.started_at, report.finished_at
    rows = ["<div class=\"hdr\"><span>status</span><span>check</span><span>phase</span>"
            "<span>severity</span><span>latency / deadline</span><span>result</span></div>"]
    for c in report.checks:
        frac = 0.0
        if c.latency_s is not None and c.deadline_s:
            frac = min(c.latency_s / c.deadline_s, 1.0)
        bar = (f"<div class=\"bar\"><b style=\"width:{frac * 100:.0f}%;background:"
               f"{_STATUS_COLOR[c.status]}\"></b></div>")
        deadline = "—" if c.deadline_s is None else f"{c.deadline_s:g} s"
        opened = " open" if c.status in ("fail", "error") else ""
        links = check_links(c, report.links, start=start, end=end)
        link_html = "".join(f"<a href=\"{_e(url)}\">{_e(label)}</a>" for label, url in links)
        seen = signal_time(c, anchors)
        facts = [f"signal <code>{_e(c.signal)}</code>",
                 f"anchor <code>{_e(c.anchor or '—')}</code>"]
        if seen is not None:
            facts.append(f"seen at +{seen - start:.2f} s")
        if c.settled_at is not None:
            facts.append(f"settled at +{c.settled_at - start:.2f} s")
        rows.append(
            f"<details class=\"check\"{opened}><summary>"
            f"<span class=\"pill p-{c.status}\">{_e(c.status.upper())}</span>"
            f"<b>{_e(c.name)}</b><span>{_e(c.phase)}</span>"
            f"<span class=\"sev-{_e(c.severity)}\">{_e(c.severity)}</span>"
            f"<span>{bar}<span class=\"lat\">{_secs(c.latency_s)} / {deadline}</span></span>"
            f"<span>{_e(c.message)}</span></summary><div class=\"body\">"
            f"<div class=\"muted\">{' · '.join(facts)}</div>"
            + (f"<div class=\"links\">{link_html}</div>" if link_html else "")
            + f"<pre>{_e(json.dumps(c.evidence, indent=2, default=str))}</pre></div></details>")
    return "".join(rows)


def _delta_cell(delta: Any, worse: bool) -> str:
    if not isinstance(delta, int | float):
        return "<td class=\"num\">—</td>"
    cls = "worse" if worse else ("better" if delta < 0 else "")
    return f"<td class=\"num {cls}\">{delta:+.2f} s</td>"


def _comparison(cmp: dict[str, Any]) -> str:
    prev = cmp.get("previous", {})
    out = [f"<p class=\"muted\">previous run: {_e(prev.get('verdict', '?'))} at "
           f"{_e(_ts(prev['started_at'])) if prev.get('started_at') else '?'}"
           f" ({_e(prev.get('source', ''))})</p>"]
    regressions = cmp.get("regressions") or []
    if regressions:
        out.append("<p class=\"worse\">Regressions: " + "; ".join(_e(r) for r in regressions)
                   + "</p>")
    else:
        out.append("<p class=\"better\">No regressions.</p>")
    out.append("<table><tr><th>check</th><th>before</th><th>now</th><th class=\"num\">"
               "latency before</th><th class=\"num\">now</th><th class=\"num\">Δ</th>"
               "<th>trend (oldest → now)</th></tr>")
    for row in cmp.get("checks", []):
        trend = " → ".join("—" if v is None else f"{v:.2f}" for v in row.get("trend", []))
        out.append(f"<tr><td>{_e(row['name'])}</td><td>{_e(row.get('before') or 'new')}</td>"
                   f"<td>{_e(row['now'])}</td><td class=\"num\">{_secs(row.get('latency_before'))}"
                   f"</td><td class=\"num\">{_secs(row.get('latency_now'))}</td>"
                   + _delta_cell(row.get("latency_delta_s"), bool(row.get("regressed")))
                   + f"<td class=\"muted\">{_e(trend)}</td></tr>")
    out.append("</table>")
    probes = cmp.get("probes") or {}
    if probes:
        out.append("<table><tr><th>journey</th><th class=\"num\">success before</th>"
                   "<th class=\"num\">now</th><th class=\"num\">p95 before</th>"
                   "<th class=\"num\">now</th></tr>")
        for journey, p in probes.items():
            out.append(f"<tr><td>{_e(journey)}</td>"
                       f"<td class=\"num\">{_ratio(p.get('success_ratio_before'))}</td>"
                       f"<td class=\"num\">{_ratio(p.get('success_ratio_now'))}</td>"
                       f"<td class=\"num\">{_secs(p.get('p95_before_s'))}</td>"
                       f"<td class=\"num\">{_secs(p.get('p95_now_s'))}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _ratio(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.1%}"


def _probes(report: Report) -> list[str]:
    summary = probe_summary(report.probes)
    if not summary:
        return []
    rows = ["<h2>Probes</h2><table><tr><th>journey</th><th class=\"num\">runs</th>"
            "<th class=\"num\">success</th><th class=\"num\">p50</th><th class=\"num\">p95</th>"
            "</tr>"]
    for journey, p in summary.items():
        rows.append(f"<tr><td>{_e(journey)}</td><td class=\"num\">{p['runs']}</td>"
                    f"<td class=\"num\">{p['success_ratio']:.1%}</td>"
                    f"<td class=\"num\">{_secs(p['p50_s'])}</td>"
                    f"<td class=\"num\">{_secs(p['p95_s'])}</td></tr>")
    rows.append("</table>")
    return rows


def _faults(report: Report) -> list[str]:
    if not report.faults:
        return []
    rows = ["<h2>Faults</h2><table><tr><th>fault</th><th>service</th><th>what</th>"
            "<th class=\"num\">injected</th><th class=\"num\">held</th><th>removed by</th></tr>"]
    for f in report.faults:
        end = f.get("ended_at")
        held = f"{end - f['started_at']:.1f} s" if end else "still active at report time"
        rows.append(f"<tr><td><code>{_e(f.get('fault_id', ''))}</code></td>"
                    f"<td>{_e(f.get('service', ''))}</td><td>{_e(f.get('summary', ''))}</td>"
                    f"<td class=\"num\">+{f['started_at'] - report.started_at:.2f} s</td>"
                    f"<td class=\"num\">{held}</td><td>{_e(f.get('end_reason') or '?')}</td></tr>")
    rows.append("</table>")
    return rows


def _events(report: Report) -> str:
    rows = ["<table><tr><th class=\"num\">at</th><th>event</th><th>detail</th></tr>"]
    for ev in report.timeline:
        kind = ev.get("type", "?")
        detail = {k: v for k, v in ev.items() if k not in ("type", "at", "spec")}
        text = ", ".join(f"{k}={v}" for k, v in detail.items())
        at = ev.get("at")
        when = f"+{at - report.started_at:.2f} s" if isinstance(at, int | float) else ""
        rows.append(f"<tr><td class=\"num\">{when}</td><td>{_e(kind)}</td>"
                    f"<td>{_e(text)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)
