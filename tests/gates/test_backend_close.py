"""A run closes the backends that hold client libraries' connections, once each, and a
failing close never fails the run."""

from __future__ import annotations

import asyncio

from gates.backends.registry import ContextBackends
from gates.context import Anchors, CheckContext


class Holder:
    kind = "holder"

    def __init__(self, fail: bool = False) -> None:
        self.closed = 0
        self.fail = fail

    def close(self) -> None:
        self.closed += 1
        if self.fail:
            raise RuntimeError("already closed")


def test_the_check_context_closes_each_backend_once() -> None:
    shared, other, broken = Holder(), Holder(), Holder(fail=True)
    ctx = CheckContext(prometheus=None, sink=None, anchors=Anchors(), probe_results=[],
                       logs=shared, alerts=shared, errors=other,  # type: ignore[arg-type]
                       traces=broken)  # type: ignore[arg-type]
    asyncio.run(ctx.aclose())
    assert (shared.closed, other.closed, broken.closed) == (1, 1, 1)


def test_context_backends_close_theirs_too() -> None:
    held = Holder()
    backends = ContextBackends(logs=held)  # type: ignore[arg-type]
    asyncio.run(backends.aclose())
    assert held.closed == 1
