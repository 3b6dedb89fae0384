"""Secrets never appear in output: every secret value is registered here and scrubbed.

Rendered reports, console lines and logs pass through :func:`scrub` in the one place
that writes them, so a renderer cannot leak a password by accident.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words; config refuses shorter secrets

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(*values: str | None) -> None:
    """Remember secret values so that :func:`scrub` masks them everywhere."""
    global _pattern
    with _lock:
        added = False
        for value in values:
            if value and len(value) >= _MIN_LEN and value not in _secrets:
                _secrets.add(value)
                added = True
        if added:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def registered() -> frozenset[str]:
    """The secret values known so far (for scans in tests and selftests)."""
    with _lock:
        return frozenset(_secrets)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def find_leaks(text: str, secrets: Iterable[str] | None = None) -> list[str]:
    """Which secrets occur in ``text`` (masked in the answer: first two characters only)."""
    found = []
    for secret in secrets if secrets is not None else registered():
        if secret and secret in text:
            found.append(secret[:2] + MASK)
    return found
