"""JSON-lines log files on this machine (one JSON object per line; a glob of files)."""

from __future__ import annotations

import asyncio
import glob
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from core.errors import BackendError
from core.times import epoch_seconds
from gates.backends.types import IncompleteWindow, LogLine, log_line_from

_MAX_BYTES = 200 * 1024 * 1024  # read at most this much per look: files are bounded evidence


def _ts(record: dict[str, Any]) -> float | None:
    for key in ("timestamp", "@timestamp", "time", "ts"):
        value = record.get(key)
        seconds = epoch_seconds(value)
        if seconds is not None:
            return seconds
    return None


class JsonLinesLogs:
    """Reads JSON-lines files matching ``path`` (a file or a glob)."""

    kind = "jsonl"

    def __init__(self, path: str) -> None:
        self.path = path

    def describe_query(self, **filters: str) -> str:
        return f"scan {self.path} for " + ", ".join(f"{k}={v}" for k, v in filters.items())

    def _files(self) -> list[str]:
        files = sorted(glob.glob(self.path)) if any(c in self.path for c in "*?[") \
            else [self.path]
        if not files or not all(Path(f).is_file() for f in files):
            raise BackendError(f"no log file at {self.path}")
        return files

    def _read(self) -> list[tuple[str, LogLine]]:
        files = self._files()
        out: list[tuple[str, LogLine]] = []
        budget = _MAX_BYTES
        for name in files:
            try:
                with open(name, encoding="utf-8", errors="replace") as handle:
                    text = handle.read(budget)
            except OSError as exc:
                raise BackendError(f"cannot read {name}: {exc.strerror}") from None
            budget -= len(text)
            for raw in text.splitlines():
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                line = log_line_from(record, ts=_ts(record)) if isinstance(record, dict) \
                    else LogLine(body=raw)
                out.append((raw, line))
        return out

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every line written at or after ``since`` (and every line without a time)."""
        rows = await asyncio.to_thread(self._read)
        lines = [line for _, line in rows if line.ts is None or line.ts >= since]
        for at in range(0, len(lines), page_size):
            yield lines[at:at + page_size]
        try:
            size = sum(os.path.getsize(name) for name in self._files())
        except OSError as exc:
            raise BackendError(f"cannot read {self.path}: {exc.strerror}") from None
        if size > _MAX_BYTES:
            raise IncompleteWindow(f"{self.path} holds {size // 2**20} MB; only the first "
                                   f"{_MAX_BYTES // 2**20} MB were read")

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        rows = await asyncio.to_thread(self._read)
        out = [line for raw, line in rows
               if (not trace_id or line.trace_id == trace_id.lower())
               and (not request_id or line.request_id == request_id)
               and (not contains or contains in raw)
               and (since is None or line.ts is None or line.ts >= since)]
        return out[:limit]
