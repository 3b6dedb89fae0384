"""Dashboard hygiene: every panel of the named dashboards returns data for the target.

Each dashboard's JSON model is read once (panels inside rows, collapsed or not, and library
panels count); each panel's queries run together through the dashboard tool's query API
over the check's window, with the template variables the check gives (a variable not
given keeps the dashboard's saved value; ``$__interval`` and the other built-ins are left
to Grafana, which fills them in). A panel passes once its shown queries return a row with
a value and none errors; the check passes when every panel has, within the deadline.
A panel with no data, or whose query errors (named with Grafana's message), fails the
check by title and dashboard; could-not-look (Grafana down, refused, garbage) is an error.
"""

from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass, field
from typing import Any

from core.waiting import Seen, eventually
from gates.backends.types import DashboardsBackend, QueryAnswer
from gates.checks.common import GRACE_S, Judge
from gates.config import DashboardCheck
from gates.context import CheckContext
from reports.model import CheckResult

# ${var}, ${var:format}, $var and the deprecated [[var]] / [[var:format]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_MIXED = "-- Mixed --"
_DASHBOARD = "-- Dashboard --"  # a panel showing another panel's results: nothing to query
_MAX_POINTS = 500
_MAX_SHOWN = 10  # panels named in the message (the evidence has every one)


@dataclass
class Panel:
    """One panel's queries, ready to send, and what it has shown so far."""

    dashboard: str                      # the dashboard's title (uid)
    title: str
    queries: list[dict[str, Any]] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)  # refIds of queries not hidden
    problem: str | None = None          # why it cannot be queried at all
    seen_at: float | None = None        # when it first showed data
    why: str = "not queried yet"

    def describe(self) -> str:
        return f'panel "{self.title}" ({self.dashboard})'


def saved_values(model: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """The dashboard's saved variable values, and the names of every variable it defines.

    "All" is the variable's custom all value, else ``.*`` (what an all-matching regex
    selector needs); several values are joined as ``(a|b)``, Grafana's regex format.
    """
    values: dict[str, str] = {}
    names: set[str] = set()
    for var in (model.get("templating") or {}).get("list") or []:
        if not isinstance(var, dict) or not var.get("name"):
            continue
        name = str(var["name"])
        names.add(name)
        current = (var.get("current") or {}).get("value")
        if current is None and var.get("type") == "constant":
            current = var.get("query")
        if isinstance(current, list):
            current = [str(v) for v in current]
            if "$__all" in current:
                current = "$__all"
            elif len(current) == 1:
                current = current[0]
            elif current:
                current = "(" + "|".join(current) + ")"
            else:
                current = None
        if current == "$__all":
            current = var.get("allValue") or ".*"
        if current is not None and current != "":
            values[name] = str(current)
    return values, names


def substitute(value: Any, values: dict[str, str], unresolved: set[str],
               defined: set[str]) -> Any:
    """``value`` with template variables replaced (strings inside dicts and lists too);
    a variable the dashboard defines but that has no value lands in ``unresolved``."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2) or match.group(3)
            if name in values:
                return values[name]
            if name in defined:
                unresolved.add(name)
            return match.group(0)  # built-ins ($__interval, ...) are Grafana's to fill in
        return _VARIABLE.sub(one, value)
    if isinstance(value, dict):
        return {k: substitute(v, values, unresolved, defined) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, unresolved, defined) for v in value]
    return value


def _flatten(panels: Any) -> list[dict[str, Any]]:
    """Every panel, with those inside rows (a collapsed row keeps its own ``panels``)."""
    out: list[dict[str, Any]] = []
    for panel in panels or []:
        if not isinstance(panel, dict):
            continue
        if panel.get("type") == "row":
            out += _flatten(panel.get("panels"))
        else:
            out.append(panel)
    return out


def _uid(ref: Any) -> str | None:
    return str(ref.get("uid")) if isinstance(ref, dict) and ref.get("uid") else \
        (ref if isinstance(ref, str) else None)


async def _panel(raw: dict[str, Any], dashboard: str, source: DashboardsBackend,
                 values: dict[str, str], defined: set[str]) -> Panel | None:
    """The panel's queries with variables and datasources resolved (None: nothing to query)."""
    title = str(raw.get("title") or f"panel {raw.get('id', '?')}")
    library = raw.get("libraryPanel")
    if isinstance(library, dict) and library.get("uid") and "targets" not in raw:
        model = await source.library_panel(str(library["uid"]))
        if model is None:
            return Panel(dashboard, title, problem=f"library panel {library['uid']} not found")
        raw = {**model, **{k: v for k, v in raw.items() if k != "libraryPanel"}}
        title = str(raw.get("title") or title)
    targets = [t for t in raw.get("targets") or [] if isinstance(t, dict)]
    panel_ds = raw.get("datasource")
    if not targets or _uid(panel_ds) == _DASHBOARD:
        return None
    panel = Panel(dashboard, title)
    unresolved: set[str] = set()
    for index, target in enumerate(targets):
        target = substitute(target, values, unresolved, defined)
        ref_id = str(target.get("refId") or chr(ord("A") + index % 26))
        ref = target.get("datasource")
        if ref is None or _uid(ref) == _MIXED:
            ref = panel_ds if _uid(panel_ds) != _MIXED else None
        ref = substitute(ref, values, unresolved, defined)
        if _uid(ref) == _DASHBOARD:
            return None
        datasource = ref if _uid(ref) == "__expr__" else await source.datasource(ref)
        if datasource is None:
            panel.problem = f"datasource {_uid(ref) or 'default'} not found in grafana"
            return panel
        panel.queries.append({**target, "refId": ref_id, "datasource": datasource})
        if not target.get("hide"):
            panel.shown.add(ref_id)
    if unresolved:
        panel.problem = ("template variable(s) without a value: "
                         + ", ".join(f"${n}" for n in sorted(unresolved)) + " (give them in vars:)")
    elif not panel.shown:
        panel.problem = "every query is hidden"
    return panel


async def collect(model: dict[str, Any], uid: str, source: DashboardsBackend,
                  check: DashboardCheck) -> tuple[list[Panel], list[str]]:
    """The dashboard's panels to judge, and the titles left out (skip_panels, no queries)."""
    values, defined = saved_values(model)
    values.update(check.vars)
    name = f"{model.get('title') or uid} [{uid}]"
    panels: list[Panel] = []
    left_out: list[str] = []
    for raw in _flatten(model.get("panels")):
        title = str(raw.get("title") or "")
        if any(fnmatch.fnmatchcase(title, glob) for glob in check.skip_panels):
            left_out.append(f"{title} ({name}): skip_panels")
            continue
        panel = await _panel(raw, name, source, values, defined)
        if panel is None:
            left_out.append(f"{title or 'untitled'} ({name}): nothing to query")
        else:
            panels.append(panel)
    return panels, left_out


def verdict_of(panel: Panel, answers: dict[str, QueryAnswer]) -> str | None:
    """Why the panel shows nothing (None: it shows data)."""
    shown = [answers.get(ref) for ref in sorted(panel.shown)]
    errors = [a for a in shown if a is not None and a.error]
    if errors:
        several = len(panel.shown) > 1
        return "query error: " + "; ".join(
            (f"{a.ref_id}: " if several else "") + str(a.error) for a in errors)
    if any(a is not None and a.rows > 0 for a in shown):
        return None
    return "no data"


async def dashboard_check(check: DashboardCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Every panel of the dashboards returns data over the window, within the deadline."""
    if ctx.dashboards is None:
        return j.result("skipped", "no dashboards backend configured "
                        "(backends.dashboards: {kind: grafana, url, token})")
    source = ctx.dashboards
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    panels: list[Panel] = []
    left_out: list[str] = []
    missing: list[str] = []
    for uid in check.dashboards:
        model = await source.dashboard(uid)
        if model is None:
            missing.append(uid)
            continue
        found, skipped = await collect(model, uid, source, check)
        panels += found
        left_out += skipped
    evidence: dict[str, Any] = {"query": "GET /api/dashboards/uid/{uid}; POST /api/ds/query",
                                "dashboards": check.dashboards, "window_s": check.window_s,
                                "vars": check.vars, "panels": len(panels),
                                "left_out": left_out}
    base = getattr(source, "base_url", None)
    if base:
        evidence["links"] = [f"{base}/d/{uid}" for uid in check.dashboards]
    if missing:
        return j.result("fail", f"dashboard(s) not found in {source.kind}: "
                        f"{', '.join(missing)}", evidence=evidence)
    if not panels:  # nothing judged is no evidence of data
        return j.result("fail", f"no panel with a query in {', '.join(check.dashboards)}"
                        + (f" ({len(left_out)} left out)" if left_out else ""),
                        evidence=evidence)

    async def observe() -> Seen[bool]:
        end = time.time()
        for panel in panels:
            if panel.seen_at is not None or panel.problem is not None:
                continue
            interval_ms = max(1000, int(check.window_s * 1000 / _MAX_POINTS))
            queries = [{"intervalMs": interval_ms, "maxDataPoints": _MAX_POINTS, **q}
                       for q in panel.queries]
            why = verdict_of(panel, await source.query(queries, end - check.window_s, end))
            if why is None:
                panel.seen_at = time.time()
            else:
                panel.why = why
        bad = [p for p in panels if p.seen_at is None]
        if not bad:
            return Seen(True)
        return Seen(miss="; ".join(f"{p.describe()}: {p.problem or p.why}"
                                   for p in bad[:_MAX_SHOWN])
                    + (f"; and {len(bad) - _MAX_SHOWN} more" if len(bad) > _MAX_SHOWN else ""))

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 1.0))
    evidence["without_data"] = [f"{p.describe()}: {p.problem or p.why}"
                                for p in panels if p.seen_at is None]
    seen = [p.seen_at for p in panels if p.seen_at is not None]
    names = ", ".join(check.dashboards)
    if out.found is None and out.error is None:
        evidence["nearest_miss"] = out.last_miss
        return j.result("fail", f"{len(evidence['without_data'])} of {len(panels)} panels of "
                        f"{names} show no data within {check.deadline_s:g}s of {check.anchor}: "
                        f"{out.last_miss}", evidence=evidence)
    return j.settle(out, anchor=anchor, evidence=evidence, what=f"data in the panels of {names}",
                    passed=lambda _, lat: f"all {len(panels)} panels of {names} return data "
                    f"({lat:.1f}s after {check.anchor})",
                    latency_of=lambda _: max(seen, default=anchor) - anchor)
