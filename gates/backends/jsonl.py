"""JSON-lines log files on this machine (one JSON object per line; a glob of files)."""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import json
from pathlib import Path
from typing import Any

from core.errors import BackendError
from gates.backends.types import LogLine, log_line_from

_MAX_BYTES = 200 * 1024 * 1024  # read at most this much per look: files are bounded evidence


def _ts(record: dict[str, Any]) -> float | None:
    for key in ("timestamp", "@timestamp", "time", "ts"):
        value = record.get(key)
        if isinstance(value, int | float):
            return float(value) / (1000.0 if value > 1e11 else 1.0)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


class JsonLinesLogs:
    """Reads JSON-lines files matching ``path`` (a file or a glob)."""

    kind = "jsonl"

    def __init__(self, path: str) -> None:
        self.path = path

    def describe_query(self, **filters: str) -> str:
        return f"scan {self.path} for " + ", ".join(f"{k}={v}" for k, v in filters.items())

    def _read(self) -> list[tuple[str, LogLine]]:
        files = sorted(glob.glob(self.path)) if any(c in self.path for c in "*?[") \
            else [self.path]
        if not files or not all(Path(f).is_file() for f in files):
            raise BackendError(f"no log file at {self.path}")
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
