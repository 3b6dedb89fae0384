"""Correlation ids: a W3C traceparent whose trace id readygate chose, and request ids."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from core import __version__


def new_trace_id() -> str:
    """A random, valid (non-zero) 128-bit W3C trace id in hex."""
    while True:
        value = secrets.token_hex(16)
        if value != "0" * 32:
            return value


def new_span_id() -> str:
    """A random, valid (non-zero) 64-bit W3C span id in hex."""
    while True:
        value = secrets.token_hex(8)
        if value != "0" * 16:
            return value


@dataclass
class Correlation:
    """The ids one journey run carries on every request."""

    journey: str
    trace_id: str = field(default_factory=new_trace_id)
    _count: int = 0

    @property
    def user_agent(self) -> str:
        """The User-Agent every request of this journey carries."""
        return f"readygate/{__version__} (journey={self.journey})"

    def traceparent(self) -> str:
        """A traceparent for a new sampled span under the journey's trace."""
        return f"00-{self.trace_id}-{new_span_id()}-01"

    def headers(self) -> tuple[dict[str, str], str]:
        """Headers for the next request (a new sampled span under the journey's trace)."""
        self._count += 1
        request_id = f"rg-{self.trace_id[:16]}-{self._count}"
        return {
            "traceparent": self.traceparent(),
            "X-Request-ID": request_id,
            "User-Agent": self.user_agent,
        }, request_id
