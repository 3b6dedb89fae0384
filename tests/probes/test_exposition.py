"""``render_single`` writes byte for byte what prometheus_client would for the same result."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from core import redact
from probes.metrics import render_single, result_families
from probes.model import ProbeResult, StepResult


def reference(result: ProbeResult) -> bytes:
    """The previous implementation: a registry and ``generate_latest`` per answer."""
    class One(Collector):
        def collect(self) -> Iterable[Metric]:
            yield from result_families([result])

    registry = CollectorRegistry()
    registry.register(One())
    return redact.scrub(generate_latest(registry).decode()).encode()


def step(name: str, **kw: object) -> StepResult:
    base: dict[str, object] = {"method": "GET", "url": "http://t/", "status": 200,
                               "duration_s": 0.0123, "request_id": "rg-1", "ok": True}
    base.update(kw)
    return StepResult(name, **base)  # type: ignore[arg-type]


RESULTS = [
    ProbeResult("http_2xx", 1_700_000_000.123456, 0.00123, True, "t" * 32,
                steps=(step("get", phases={"connect": 1e-4, "processing": 2.5e-4,
                                           "transfer": 3e-6}, ttfb_s=4e-4),),
                target="http://127.0.0.1:8080/"),
    ProbeResult('odd "name"\\with\nnewline', 12.0, 1e7, False, "t" * 32,
                steps=(step('step "1"', status=None, ok=False, error="boom", attempts=2),
                       step("skipped", skipped=True),
                       step("é ünïcode", status=503, phases={"tls": 0.5}, ttfb_s=0.0,
                            tls_cert_expiry=1.9e9)),
                error="boom", target="https://x.example/"),
    ProbeResult("browser", 5.0, 2.0, True, "t" * 32, kind="browser",
                steps=(step("goto 1", status=None),),
                web_vitals={"/login": {"lcp": 0.25, "cls": 0.0, "fcp": float("inf")},
                            "/": {"ttfb": float("nan")}}),
    ProbeResult("empty", 0.0, 0.0, False, "t" * 32, kind="http", target=""),
]


@pytest.mark.parametrize("result", RESULTS, ids=[r.journey[:8] for r in RESULTS])
def test_render_single_matches_prometheus_client(result: ProbeResult) -> None:
    assert render_single(result) == reference(result)


def test_render_single_masks_secrets() -> None:
    redact.register("s3cret-value")
    result = ProbeResult("j", 1.0, 1.0, True, "t" * 32,
                         steps=(step("login as s3cret-value"),))
    text = render_single(result)
    assert b"s3cret-value" not in text and text == reference(result)
