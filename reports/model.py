"""The result model: check results, the verdict rule, and the report itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "error", "skipped"]
Verdict = Literal["ready", "not_ready", "inconclusive"]

# 1.1 added `links` and `comparison` (optional: 1.0 readers ignore them)
REPORT_SCHEMA_VERSION = "1.1"


@dataclass(frozen=True)
class CheckResult:
    """How one check ended, with the evidence behind it.

    ``fail`` means the system did not show the signal (or showed it late); ``error`` means
    readygate could not look. ``latency_s`` is the measured time from the anchor to the
    signal (``None`` when it was not seen).
    """

    name: str
    signal: str
    status: Status
    message: str
    severity: str = "critical"
    phase: str = ""
    latency_s: float | None = None
    deadline_s: float | None = None
    anchor: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    settled_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "signal": self.signal, "status": self.status,
            "severity": self.severity, "phase": self.phase, "message": self.message,
            "latency_s": None if self.latency_s is None else round(self.latency_s, 3),
            "deadline_s": self.deadline_s, "anchor": self.anchor, "evidence": self.evidence,
            "settled_at": self.settled_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """The inverse of :meth:`to_dict` (for reading a previous report.json)."""
        return cls(name=data["name"], signal=data["signal"], status=data["status"],
                   message=data.get("message", ""), severity=data.get("severity", "critical"),
                   phase=data.get("phase", ""), latency_s=data.get("latency_s"),
                   deadline_s=data.get("deadline_s"), anchor=data.get("anchor", ""),
                   evidence=data.get("evidence") or {}, settled_at=data.get("settled_at"))


def verdict_of(checks: list[CheckResult]) -> Verdict:
    """ready / not_ready (a critical check failed) / inconclusive (one could not be judged).

    Warnings never block. A gate with no critical check that passed is inconclusive: a
    gate that judged nothing must not say ready.
    """
    critical = [c for c in checks if c.severity == "critical"]
    if any(c.status == "fail" for c in critical):
        return "not_ready"
    if any(c.status in ("error", "skipped") for c in critical):
        return "inconclusive"
    if not any(c.status == "pass" for c in critical):
        return "inconclusive"
    return "ready"


EXIT_CODES: dict[str, int] = {"ready": 0, "not_ready": 1, "inconclusive": 2}


@dataclass
class Report:
    """Everything a run produced; renderers turn it into files."""

    gate: str
    target: str
    started_at: float
    finished_at: float
    verdict: Verdict
    checks: list[CheckResult]
    partial: bool = False
    reason: str | None = None
    description: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    stack: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    drill: dict[str, Any] | None = None  # scenarios.drill: milestones, time to detect/notify
    load: dict[str, Any] | None = None  # scenarios.load: Locust totals, RPS, p95
    fault_effect: str | None = None  # set when the fault went unnoticed by every probe

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report read back from its report.json (probe summaries are recomputed)."""
        return cls(gate=data["gate"], target=data.get("target", ""),
                   started_at=data["started_at"], finished_at=data["finished_at"],
                   verdict=data["verdict"],
                   checks=[CheckResult.from_dict(c) for c in data.get("checks", [])],
                   partial=data.get("partial", False), reason=data.get("reason"),
                   description=data.get("description", ""), phases=data.get("phases", []),
                   faults=data.get("faults", []), probes=data.get("probe_results", []),
                   timeline=data.get("timeline", []), stack=data.get("stack", {}),
                   links=data.get("links") or {}, comparison=data.get("comparison"),
                   fault_effect=data.get("fault_effect"))

    def to_dict(self) -> dict[str, Any]:
        """The report.json document (docs/report-schema.json)."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "gate": self.gate, "target": self.target, "verdict": self.verdict,
            "partial": self.partial, "reason": self.reason, "description": self.description,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "duration_s": round(self.finished_at - self.started_at, 3),
            "summary": summarize(self.checks),
            "checks": [c.to_dict() for c in self.checks],
            "phases": self.phases, "faults": self.faults,
            "probes": probe_summary(self.probes), "probe_results": self.probes,
            "timeline": self.timeline, "stack": self.stack,
            "links": self.links, "comparison": self.comparison,
            # optional blocks of runs with a fault or load (absent otherwise)
            **({"drill": self.drill} if self.drill is not None else {}),
            **({"load": self.load} if self.load is not None else {}),
            **({"fault_effect": self.fault_effect} if self.fault_effect is not None else {}),
        }


def summarize(checks: list[CheckResult]) -> dict[str, int]:
    """How many checks ended in each status."""
    out = {"pass": 0, "fail": 0, "error": 0, "skipped": 0}
    for c in checks:
        out[c.status] += 1
    return out


def probe_summary(probes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per journey: runs, successes, success ratio, p50/p95 duration."""
    by: dict[str, list[dict[str, Any]]] = {}
    for p in probes:
        by.setdefault(p["journey"], []).append(p)
    out: dict[str, dict[str, Any]] = {}
    for journey, runs in sorted(by.items()):
        durations = sorted(r["duration_s"] for r in runs)
        ok = sum(1 for r in runs if r["success"])
        out[journey] = {"runs": len(runs), "success": ok,
                        "success_ratio": round(ok / len(runs), 4),
                        "p50_s": _quantile(durations, 0.5), "p95_s": _quantile(durations, 0.95)}
    return out


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    idx = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return round(values[idx], 4)
