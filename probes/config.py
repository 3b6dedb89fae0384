"""``probes:`` in readygate.yaml: which journeys run, how often, against which service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config import Model

JourneyName = Literal["health", "login", "upload"]
_ALL_JOURNEYS: tuple[JourneyName, ...] = ("health", "login", "upload")


class Probes(Model):
    """The journeys that run throughout a scenario."""

    journeys: list[JourneyName] = Field(default_factory=lambda: list(_ALL_JOURNEYS))
    interval_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=300)
    service: str = Field("web", description="the target service the journeys call")
    upload_size_bytes: int = Field(1024, ge=1, le=50_000_000)
    journeys_file: str | None = Field(
        None, description="journeys YAML for `readygate probe` (relative to this config); "
                          "see docs/journeys.md")
    location: str | None = Field(
        None, description="`location` label of probe metrics (default: the host name)")
