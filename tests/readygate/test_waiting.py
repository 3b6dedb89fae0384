"""The one waiting helper: polls, measures, reports the near miss, and tells errors apart."""

from __future__ import annotations

import asyncio
import time

from core.errors import BackendError
from core.waiting import Seen, eventually


def test_returns_as_soon_as_the_evidence_appears() -> None:
    start = time.monotonic()

    async def observe() -> Seen[str]:
        return Seen("yes") if time.monotonic() - start > 0.3 else Seen(miss="not yet")

    out = asyncio.run(eventually(observe, timeout=5, interval=0.05))
    assert out.found == "yes"
    assert 0.3 <= out.elapsed_s < 0.6
    assert out.observed_at is not None


def test_deadline_passes_with_the_nearest_miss() -> None:
    async def observe() -> Seen[str]:
        return Seen(miss="saw something else")

    out = asyncio.run(eventually(observe, timeout=0.3, interval=0.05))
    assert out.found is None and not out.ok
    assert out.last_miss == "saw something else"
    assert out.error is None
    assert out.attempts >= 3


def test_backend_error_at_the_deadline_is_reported_as_could_not_look() -> None:
    async def observe() -> Seen[str]:
        raise BackendError("prometheus unreachable")

    out = asyncio.run(eventually(observe, timeout=0.2, interval=0.05))
    assert out.found is None and out.error == "prometheus unreachable"


def test_a_good_answer_after_errors_clears_the_error() -> None:
    calls = 0

    async def observe() -> Seen[str]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise BackendError("flaky")
        return Seen(miss="nothing yet")

    out = asyncio.run(eventually(observe, timeout=0.4, interval=0.05))
    assert out.error is None and out.last_miss == "nothing yet"
