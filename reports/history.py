"""Compare a run with earlier reports of the same gate: time to detect, latencies, outcomes.

Reading only: previous reports come from ``--previous FILE`` or from a history directory
that :func:`reports.writer.archive_report` fills (``DIR/<gate>/<UTC start>.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from reports.model import Report, probe_summary

# A latency counts as a regression only past both bounds: jitter of a few hundred ms on a
# 2 s alert is normal (one scrape interval), a doubling is not.
LATENCY_REGRESSION_S = 0.5
LATENCY_REGRESSION_RATIO = 0.25
P95_REGRESSION_S = 0.05
TREND_LENGTH = 10
_BAD = {"fail", "error"}


def read_report(path: str | Path) -> dict[str, Any]:
    """A report.json as a dict; a file that is not one is a ConfigError (exit 3)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("previous report not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read previous report: {exc}", path=str(path)) from None
    if not isinstance(data, dict) or "gate" not in data or "checks" not in data:
        raise ConfigError("not a readygate report.json (no gate/checks)", path=str(path))
    return data


def history_reports(history_dir: str | Path, gate: str) -> list[tuple[Path, dict[str, Any]]]:
    """Earlier reports of ``gate`` in ``history_dir``, oldest first; unreadable ones skipped."""
    folder = Path(history_dir) / _safe(gate)
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("gate") == gate and "checks" in data:
            out.append((path, data))
    out.sort(key=lambda item: item[1].get("started_at", 0))
    return out


def history_path(history_dir: str | Path, report: Report) -> Path:
    """Where a report is archived: one file per run, sortable by start time."""
    import datetime as dt
    stamp = dt.datetime.fromtimestamp(report.started_at, dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return Path(history_dir) / _safe(report.gate) / f"{stamp}.json"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "gate"


def compare_for(report: Report, *, previous: str | Path | None = None,
                history_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The comparison for a finished run, or None when there is nothing to compare with."""
    older: list[tuple[Path, dict[str, Any]]] = []
    if history_dir is not None:
        older = [(p, d) for p, d in history_reports(history_dir, report.gate)
                 if d.get("started_at") != report.started_at]
    if previous is not None:
        prev_path, prev = Path(previous), read_report(previous)
    elif older:
        prev_path, prev = older[-1]
    else:
        return None
    return compare(report, prev, source=str(prev_path), older=[d for _, d in older])


def compare(report: Report, previous: dict[str, Any], *, source: str = "",
            older: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Outcomes, latencies, time to detect and probe figures, now against ``previous``."""
    regressions: list[str] = []
    if previous.get("gate") != report.gate:
        regressions.append(f"previous report is of gate {previous.get('gate')!r}, "
                           f"not {report.gate!r}")
    if previous.get("verdict") == "ready" and report.verdict != "ready":
        regressions.append(f"verdict {report.verdict} (was ready)")
    before = {c["name"]: c for c in previous.get("checks", [])}
    history = [*(older or [])]
    if not history or history[-1] is not previous:
        history.append(previous)
    history = history[-(TREND_LENGTH - 1):]
    rows: list[dict[str, Any]] = []
    ttd: dict[str, dict[str, float | None]] = {}
    for c in report.checks:
        old = before.get(c.name)
        lat_before = old.get("latency_s") if old else None
        delta = None
        if c.latency_s is not None and isinstance(lat_before, int | float):
            delta = round(c.latency_s - lat_before, 3)
        regressed = False
        if old and old.get("status") == "pass" and c.status in _BAD:
            regressed = True
            regressions.append(f"{c.name}: {c.status} (was pass)")
        elif (delta is not None and isinstance(lat_before, int | float)
              and delta > LATENCY_REGRESSION_S and delta > LATENCY_REGRESSION_RATIO * lat_before):
            regressed = True
            regressions.append(f"{c.name}: {c.latency_s:.2f}s (was {lat_before:.2f}s)")
        trend = [_latency_of(h, c.name) for h in history] + [
            None if c.latency_s is None else round(c.latency_s, 3)]
        rows.append({"name": c.name, "before": old.get("status") if old else None,
                     "now": c.status, "latency_before": lat_before,
                     "latency_now": None if c.latency_s is None else round(c.latency_s, 3),
                     "latency_delta_s": delta, "regressed": regressed, "trend": trend})
        if c.anchor == "fault_start" and c.signal in ("alert", "notification"):
            ttd[c.name] = {"before": lat_before, "now": c.latency_s}
    now_probes = probe_summary(report.probes)
    old_probes = previous.get("probes") or {}
    probes: dict[str, dict[str, Any]] = {}
    for journey in sorted(set(now_probes) | set(old_probes)):
        n, o = now_probes.get(journey, {}), old_probes.get(journey, {})
        probes[journey] = {"success_ratio_before": o.get("success_ratio"),
                           "success_ratio_now": n.get("success_ratio"),
                           "p95_before_s": o.get("p95_s"), "p95_now_s": n.get("p95_s")}
        p95_o, p95_n = o.get("p95_s"), n.get("p95_s")
        if isinstance(p95_o, int | float) and isinstance(p95_n, int | float) \
                and p95_n - p95_o > P95_REGRESSION_S and p95_n > 1.5 * p95_o:
            regressions.append(f"{journey} probe p95 {p95_n * 1000:.0f} ms "
                               f"(was {p95_o * 1000:.0f} ms)")
    return {"previous": {"verdict": previous.get("verdict"),
                         "started_at": previous.get("started_at"), "source": source},
            "regressions": regressions, "time_to_detect": ttd, "checks": rows,
            "probes": probes, "runs_in_trend": len(history) + 1}


def _latency_of(report: dict[str, Any], name: str) -> float | None:
    for c in report.get("checks", []):
        if c.get("name") == name:
            value = c.get("latency_s")
            return float(value) if isinstance(value, int | float) else None
    return None
