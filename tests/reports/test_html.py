"""report.html is one self-contained page: timeline chart, every check, evidence, links."""

from __future__ import annotations

import re

from reports.html import render_html
from reports.model import Report
from tests.reports.conftest import make_check, make_report, many_probes


def test_the_page_loads_nothing_from_outside(demo_report: Report) -> None:
    page = render_html(demo_report)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""src=["']?(https?:)?//""", page), "links may leave, assets may not"
    assert not re.search(r"url\((?!#)", page), "only local SVG references (url(#hatch))"


def test_the_timeline_shows_probes_faults_alerts_and_notifications(demo_report: Report) -> None:
    page = render_html(demo_report)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count("<polyline") == 3, "one latency line per journey"
    assert 'fill="url(#hatch)"' in svg, "the fault window is shaded"
    assert "fault: HTTP 500 at rate 1 on /objects" in svg
    for phase in ("baseline", "fault", "recovery"):
        assert f">{phase}</text>" in svg
    assert "alert HighErrorRate{service=&quot;web&quot;} firing" in svg
    assert "notified: HighErrorRate firing" in svg and "notified: HighErrorRate resolved" in svg
    assert "#f87171" in svg, "the failed uploads during the fault show in the success strip"


def test_every_check_appears_with_its_evidence(demo_report: Report) -> None:
    page = render_html(demo_report)
    for check in demo_report.checks:
        assert check.name.replace('"', "&quot;") in page
    assert "57968cfb0b0c9811c8ab3c1572ce2d7b" in page  # the trace check's evidence
    assert "READY" in page and "8 passed" in page


def test_failed_checks_are_open_and_markup_is_escaped() -> None:
    page = render_html(make_report(make_check("pass", "fine"),
                                   make_check("fail", "<img src=x onerror=alert(1)>")))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<details class=\"check\" open>") == 1
    assert "NOT READY" in page


def test_configured_links_point_into_prometheus_grafana_and_jaeger() -> None:
    report = make_report(
        make_check("pass", "rate visible", signal="metric",
                   evidence={"query": 'sum(rate(x{service="web"}[1m])) > 0'}),
        make_check("pass", "trace", signal="trace", evidence={"trace_id": "ab" * 16}))
    assert "Grafana" not in render_html(report), "no links unless configured"
    report.links = {"prometheus": "http://prom:9090", "grafana": "https://grafana.example",
                    "jaeger": "https://jaeger.example"}
    page = render_html(report)
    assert 'href="http://prom:9090/graph?g0.expr=sum%28rate%28x%7Bservice%3D%22web%22' in page
    assert 'href="https://grafana.example/explore?orgId=1&amp;left=' in page
    assert f'href="https://jaeger.example/trace/{"ab" * 16}"' in page


def test_ten_thousand_probes_are_downsampled_to_a_small_page() -> None:
    report = make_report(make_check("pass"), probes=many_probes(10_000))
    page = render_html(report)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count("<circle") == 0, "above the point limit the line has no dots"
    assert len(page) < 600_000
