"""Scraped samples keep the names the page writes, the names PromQL sees."""

from __future__ import annotations

import asyncio

import httpx

from gates.backends.scrape import ScrapeClient

PAGE = """# TYPE otelcol_exporter_sent_spans counter
otelcol_exporter_sent_spans{exporter="otlp"} 12
# TYPE http_requests_total counter
http_requests_total{route="/"} 3
# TYPE up gauge
up 1
"""


def test_counters_keep_their_written_names_with_or_without_total() -> None:
    async def go() -> list[str]:
        transport = httpx.MockTransport(lambda r: httpx.Response(200, text=PAGE))
        async with httpx.AsyncClient(transport=transport) as http:
            return [name for name, _ in
                    await ScrapeClient("http://127.0.0.1:1/metrics", http).samples()]

    names = asyncio.run(go())
    assert "otelcol_exporter_sent_spans" in names
    assert "otelcol_exporter_sent_spans_total" not in names
    assert "http_requests_total" in names and "up" in names
