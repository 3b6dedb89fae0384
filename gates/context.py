"""What checks may look at: backend clients, the run's anchors and the probe results."""

from __future__ import annotations

from dataclasses import dataclass, field

from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from probes.model import ProbeResult


@dataclass
class Anchors:
    """Wall-clock times checks count their deadlines from."""

    phase_start: dict[str, float] = field(default_factory=dict)
    phase_end: dict[str, float] = field(default_factory=dict)
    fault_start: float | None = None
    fault_end: float | None = None


@dataclass
class CheckContext:
    """Handed to every check; checks read, they never start or stop anything."""

    prometheus: PrometheusClient | None
    sink: SinkClient | None
    anchors: Anchors
    probe_results: list[ProbeResult]
    poll_interval_s: float = 0.1
    links: dict[str, str] = field(default_factory=dict)

    def probes_since(self, journey: str, since: float) -> list[ProbeResult]:
        return [p for p in self.probe_results if p.journey == journey and p.started_at >= since]
