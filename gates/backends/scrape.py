"""A raw Prometheus exposition page (``/metrics``), parsed with prometheus-client's parser."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.errors import BackendError
from core.http import REQUEST_ERRORS, describe, split_userinfo
from gates.backends.prometheus import Sample


class ScrapeClient:
    """Scrapes one ``/metrics`` URL; every failure to look is a :class:`BackendError`.

    Credentials in the URL's user-info are sent as basic auth and never shown: ``url`` is
    the URL without them. TLS, auth and proxies come with the client (``backends.scrape``).
    """

    kind = "scrape"

    def __init__(self, url: str, client: httpx.AsyncClient, *,
                 timeout_s: float | None = None) -> None:
        self.url, credentials = split_userinfo(url)
        self._auth = httpx.BasicAuth(*credentials) if credentials is not None else None
        self.client = client
        self.timeout_s = timeout_s

    async def samples(self) -> list[tuple[str, Sample]]:
        """(sample name, sample) for every sample on the page (``_total`` etc. included)."""
        try:
            resp = await self.client.get(
                self.url, auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                timeout=httpx.USE_CLIENT_DEFAULT if self.timeout_s is None else self.timeout_s)
        except REQUEST_ERRORS as exc:
            raise BackendError(f"scrape of {self.url} failed: {describe(exc)}") from None
        if resp.status_code in (401, 403):
            raise BackendError(f"scrape of {self.url} refused ({resp.status_code}): set "
                               "backends.scrape's basic_auth, token or headers")
        if resp.status_code != 200:
            raise BackendError(f"scrape of {self.url} answered {resp.status_code}")
        text = resp.text
        try:
            parsed = [(s.name, Sample(dict(s.labels), float(s.value)))
                      for family in text_string_to_metric_families(text)
                      for s in family.samples]
        except (ValueError, TypeError, IndexError) as exc:
            raise BackendError(f"{self.url} is not a Prometheus exposition page: {exc}") from None
        written = set(_NAME_RE.findall(text))
        return [(exposed_name(name, written), sample) for name, sample in parsed]


_NAME_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)


def exposed_name(parsed: str, written: set[str]) -> str:
    """The sample's name as the page writes it (``written``: every name on the page), as
    Prometheus stores it.

    prometheus-client's parser names a counter's samples ``<family>_total`` even when the
    page writes ``x`` (the OpenTelemetry Collector's ``otelcol_exporter_sent_spans``, type
    counter); PromQL sees ``x``, so a check written for Prometheus must find it by that name.
    """
    bare = parsed[:-len("_total")] if parsed.endswith("_total") else None
    return bare if bare is not None and parsed not in written and bare in written else parsed
