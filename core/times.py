"""Times on the wire: RFC 3339 / ISO 8601 text and unix numbers, read and written one way.

Backends, webhooks and Prometheus write times in several shapes (``Z`` or an offset,
nanosecond fractions, epoch seconds or milliseconds); every reader here turns them into unix
seconds the same way, and every writer emits UTC with a ``Z``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

__all__ = ["epoch_seconds", "rfc3339", "rfc3339_seconds"]

_FRACTION = re.compile(r"\.(\d{6})\d+")  # nanoseconds (Go, VictoriaLogs) -> microseconds


def rfc3339_seconds(value: Any) -> float | None:
    """An RFC 3339 / ISO 8601 time as unix seconds; None if absent or unreadable.

    ``Z``, ``z`` or an offset; any number of fraction digits (nanoseconds are cut to
    microseconds); a time without a zone is read as UTC, as backends mean it, never in the
    machine's local zone. A ``datetime`` is taken as is (naive: UTC).
    """
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r".\1", value.strip().upper().replace("Z", "+00:00"))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def epoch_seconds(value: Any) -> float | None:
    """A time as unix seconds from a number (s, ms, us or ns by size) or an RFC 3339 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            return None
        for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
            if abs(number) > limit:
                return number / scale
        return number
    return rfc3339_seconds(value)


def rfc3339(at: float, *, fraction: bool = True) -> str:
    """Unix seconds as RFC 3339 UTC with ``Z`` (microseconds unless ``fraction=False``)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime(fmt)
