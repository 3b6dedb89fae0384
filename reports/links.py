"""Links from a check's evidence into the tools a team already uses (pure functions).

The base URLs come from the config's ``links:`` section (copied into ``Report.links``);
with none configured, a check has only the links its own evidence carries.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from reports.model import CheckResult

_ALERT_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?$")


def promql_of(check: CheckResult) -> str | None:
    """The PromQL that shows this check's signal: its query, or the ALERTS series."""
    ev = check.evidence
    if check.signal == "metric" and isinstance(ev.get("query"), str):
        return str(ev["query"])
    if check.signal in ("alert", "notification"):
        alert = ev.get("alert") or (ev.get("labels") or {}).get("alertname")
        if isinstance(alert, str):
            m = _ALERT_RE.match(alert)
            if m:
                inner = (m.group(2) or "{}")[1:-1]
                selector = f'alertname="{m.group(1)}"' + (f",{inner}" if inner else "")
                return "ALERTS{" + selector + "}"
    return None


def trace_ids_of(check: CheckResult) -> list[str]:
    """Trace ids the evidence names (the probe's own ids)."""
    ev = check.evidence
    ids = [ev["trace_id"]] if isinstance(ev.get("trace_id"), str) else []
    ids += [t for t in ev.get("trace_ids") or [] if isinstance(t, str)]
    return ids


def check_links(check: CheckResult, links: dict[str, str], *, start: float | None = None,
                end: float | None = None) -> list[tuple[str, str]]:
    """(label, url) pairs for one check: evidence link, Prometheus, Grafana Explore, Jaeger."""
    out: list[tuple[str, str]] = []
    own = check.evidence.get("link")
    if isinstance(own, str) and own.startswith(("http://", "https://")):
        out.append(("evidence", own))
    elif isinstance(own, str) and own.startswith("traces/"):  # saved beside the report
        out.append(("trace (saved)", own))
    query = promql_of(check)
    if query:
        if links.get("prometheus"):
            out.append(("Prometheus graph", prometheus_graph(links["prometheus"], query, start,
                                                             end)))
        if links.get("grafana"):
            out.append(("Grafana Explore", grafana_explore(
                links["grafana"], links.get("grafana_datasource") or "prometheus", query,
                start, end)))
    if links.get("jaeger"):
        for trace_id in trace_ids_of(check)[:3]:
            out.append((f"Jaeger {trace_id[:8]}…", jaeger_trace(links["jaeger"], trace_id)))
    return out


def prometheus_graph(base: str, query: str, start: float | None = None,
                     end: float | None = None) -> str:
    """A Prometheus /graph URL for ``query`` over the run (with a little margin)."""
    url = f"{base.rstrip('/')}/graph?g0.expr={quote(query, safe='')}&g0.tab=0"
    if start is not None and end is not None:
        span = max(60, round(end - start + 60))
        url += f"&g0.range_input={span}s&g0.end_input={_iso(end + 30)}"
    return url


def grafana_explore(base: str, datasource: str, query: str, start: float | None = None,
                    end: float | None = None) -> str:
    """A Grafana Explore URL (the ``left=`` form every Grafana since 7 understands)."""
    state: dict[str, Any] = {"datasource": datasource,
                             "queries": [{"refId": "A", "expr": query}]}
    if start is not None and end is not None:
        state["range"] = {"from": str(int((start - 30) * 1000)), "to": str(int((end + 30) * 1000))}
    return f"{base.rstrip('/')}/explore?orgId=1&left=" + quote(
        json.dumps(state, separators=(",", ":")), safe="")


def jaeger_trace(base: str, trace_id: str) -> str:
    """The Jaeger UI page of one trace."""
    return f"{base.rstrip('/')}/trace/{quote(trace_id, safe='')}"


def _iso(ts: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
