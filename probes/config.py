"""``probes:`` in readygate.yaml: which journeys run, how often, against which service."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from core.config import Model
from core.http import ConnectOptions

JourneyName = str
"""A journey's name, as defined in a journeys file or inline in readygate.yaml."""


class Probes(Model):
    """The journeys that run throughout a scenario, in ``probe run`` and ``probe serve``."""

    journeys: list[JourneyName] = Field(
        default_factory=list, description="which defined journeys run (default: all of them)")
    journeys_file: str | list[str] | None = Field(
        None, description="journeys YAML file(s), relative to this config (docs/journeys.md); "
                          "journeys may also be written inline under `journeys:`")
    interval_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float | None = Field(
        None, gt=0, le=300,
        description="per step, for journeys that set no timeout_s of their own")
    service: str | None = Field(
        None, description="the target service journeys without their own base_url call "
                          "(default: the only one in target.services)")
    location: str | None = Field(
        None, description="`location` label of probe metrics (default: the host name)")

    def files(self) -> list[str]:
        """The journeys files, as written."""
        if self.journeys_file is None:
            return []
        return [self.journeys_file] if isinstance(self.journeys_file, str) \
            else list(self.journeys_file)

    def base_url(self, services: Mapping[str, str]) -> str | None:
        """The URL journeys without a base_url call, or None if there is none to choose."""
        if self.service is not None:
            return services.get(self.service)
        if len(services) == 1:
            return next(iter(services.values()))
        return None

    http: ConnectOptions = Field(
        default_factory=ConnectOptions,
        description="TLS (CA bundle, client certificate, skip-verify, server name) and proxies "
                    "for every journey; a journey's own tls: wins (docs/journeys.md)")
