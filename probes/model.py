"""Probe results: what a journey sent, what came back, and the ids to find it again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """One HTTP request of a journey."""

    name: str
    method: str
    url: str
    status: int | None
    duration_s: float
    request_id: str
    ok: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "url": self.url, "status": self.status,
                "duration_s": round(self.duration_s, 6), "request_id": self.request_id,
                "ok": self.ok, "error": self.error}


@dataclass(frozen=True)
class ProbeResult:
    """One run of a journey. ``trace_id`` is readygate's own: every request carried it."""

    journey: str
    started_at: float
    duration_s: float
    success: bool
    trace_id: str
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def finished_at(self) -> float:
        return self.started_at + self.duration_s

    @property
    def request_ids(self) -> list[str]:
        return [s.request_id for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {"journey": self.journey, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 6), "success": self.success,
                "trace_id": self.trace_id, "error": self.error,
                "steps": [s.to_dict() for s in self.steps]}
