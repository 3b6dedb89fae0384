"""A raw Prometheus exposition page (``/metrics``), parsed with prometheus-client's parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.errors import BackendError
from gates.backends.prometheus import Sample


class ScrapeClient:
    """Scrapes one ``/metrics`` URL; every failure to look is a :class:`BackendError`."""

    kind = "scrape"

    def __init__(self, url: str, client: httpx.AsyncClient, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.client = client
        self.timeout_s = timeout_s

    async def samples(self) -> list[tuple[str, Sample]]:
        """(sample name, sample) for every sample on the page (``_total`` etc. included)."""
        try:
            resp = await self.client.get(self.url, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(f"scrape of {self.url} failed: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise BackendError(f"scrape of {self.url} answered {resp.status_code}")
        try:
            return [(s.name, Sample(dict(s.labels), float(s.value)))
                    for family in text_string_to_metric_families(resp.text)
                    for s in family.samples]
        except (ValueError, TypeError, IndexError) as exc:
            raise BackendError(f"{self.url} is not a Prometheus exposition page: {exc}") from None
