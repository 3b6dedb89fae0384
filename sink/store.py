"""The sink's one SQLite store (WAL), bounded by age and by size.

Every row records ``received_at`` (unix seconds) at arrival. Rows older than
``retention_s`` are deleted, and when the database's pages exceed ``max_bytes`` the
oldest rows of all tables (by ``received_at``) are deleted until it is back under 90 %
of the limit (the slack keeps one full store from pruning on every insert). Both limits
are enforced on insert and by a background thread, so an idle sink sheds old rows too.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Json = dict[str, Any]

DEFAULT_RETENTION_S = 3600.0
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MIN_MAX_BYTES = 1024 * 1024  # below this the empty schema and one batch would not fit
PRUNE_TARGET = 0.9  # a store over its size limit is pruned down to this share of it
PRUNE_INTERVAL_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT, service TEXT, kind TEXT,
    status_code TEXT, start_unix_nano INTEGER, end_unix_nano INTEGER, attributes TEXT);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE INDEX IF NOT EXISTS spans_received ON spans(received_at);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, time_unix_nano INTEGER, service TEXT,
    severity_text TEXT, severity_number INTEGER, body TEXT, trace_id TEXT, span_id TEXT,
    request_id TEXT, attributes TEXT);
CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id);
CREATE INDEX IF NOT EXISTS logs_request ON logs(request_id);
CREATE INDEX IF NOT EXISTS logs_received ON logs(received_at);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, service TEXT, scope TEXT,
    name TEXT NOT NULL, description TEXT, unit TEXT, type TEXT, temporality TEXT,
    monotonic INTEGER, time_unix_nano INTEGER, start_unix_nano INTEGER,
    value, count INTEGER, sum, attributes TEXT, resource TEXT, details TEXT);
CREATE INDEX IF NOT EXISTS metrics_name ON metrics(name, received_at);
CREATE INDEX IF NOT EXISTS metrics_received ON metrics(received_at);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, project_id TEXT, event_id TEXT,
    service TEXT, level TEXT, message TEXT, exception_type TEXT, trace_id TEXT,
    request_id TEXT, event TEXT);
CREATE INDEX IF NOT EXISTS errors_trace ON errors(trace_id);
CREATE INDEX IF NOT EXISTS errors_received ON errors(received_at);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, receiver TEXT, status TEXT,
    alertname TEXT, labels TEXT, annotations TEXT, starts_at TEXT, ends_at TEXT,
    fingerprint TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications(alertname);
CREATE INDEX IF NOT EXISTS notifications_received ON notifications(received_at);
"""
TABLES = ("spans", "logs", "metrics", "errors", "notifications")
# `value` and `sum` have no type affinity on purpose: an int64 stays exact, a double a
# double, and a non-finite double its JSON-mapping string.
JSON_COLUMNS = frozenset({"attributes", "event", "labels", "annotations", "payload",
                          "resource", "details"})


class SinkDB:
    """One SQLite connection (WAL), shared by the server's threads behind a lock.

    ``retention_s`` and ``max_bytes`` of 0 (or None) mean no limit of that kind.
    """

    def __init__(self, path: Path, *, retention_s: float | None = DEFAULT_RETENTION_S,
                 max_bytes: int | None = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention_s = retention_s or None
        self.max_bytes = max_bytes or None
        self.clock = clock
        self.dropped = {"age": 0, "size": 0}
        self._lock = threading.RLock()
        self._last_age_prune = 0.0
        self._stop = threading.Event()
        self._pruner: threading.Thread | None = None
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
        # The write-ahead log sits beside the bounded file: checkpoint it at a quarter of
        # the limit (SQLite's default, 1000 pages, at most) and truncate it back to that.
        wal_pages = 1000 if not self.max_bytes else max(
            16, min(1000, self.max_bytes // self._page_size // 4))
        self._conn.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
        self._conn.execute(f"PRAGMA journal_size_limit={wal_pages * self._page_size}")

    # ---- writing --------------------------------------------------------------------

    def insert(self, table: str, rows: Sequence[Json]) -> None:
        """Insert rows (dicts keyed by column) in one transaction, then enforce the limits."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        if not rows:
            return
        columns = list(rows[0])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})")
        values = [[json.dumps(r[c], default=str) if c in JSON_COLUMNS else r[c]
                   for c in columns] for r in rows]
        with self._lock:
            self._transaction(lambda: self._conn.executemany(sql, values))
            self._enforce(force_age=False)

    def _transaction(self, work: Callable[[], object]) -> None:
        self._conn.execute("BEGIN")
        try:
            work()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---- limits ---------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of the database's pages in use (freed pages are reused, not counted)."""
        with self._lock:
            pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def prune(self) -> dict[str, int]:
        """Enforce both limits now; the rows dropped this time, by reason."""
        with self._lock:
            return self._enforce(force_age=True)

    def _enforce(self, *, force_age: bool) -> dict[str, int]:
        now = self.clock()
        dropped = {"age": 0, "size": 0}
        # Deleting by age scans an index, so inserts do it at most once per interval;
        # the size check is two PRAGMAs and runs on every insert.
        if self.retention_s and (force_age or now - self._last_age_prune >= PRUNE_INTERVAL_S):
            self._last_age_prune = now
            dropped["age"] = self._delete_older_than(now - self.retention_s, inclusive=False)
        if self.max_bytes and self.used_bytes() > self.max_bytes:
            dropped["size"] = self._shrink(int(self.max_bytes * PRUNE_TARGET))
        for reason, count in dropped.items():
            self.dropped[reason] += count
        return dropped

    def _delete_older_than(self, cutoff: float, *, inclusive: bool) -> int:
        op = "<=" if inclusive else "<"
        counts: list[int] = []

        def work() -> None:
            for table in TABLES:
                cursor = self._conn.execute(
                    f"DELETE FROM {table} WHERE received_at {op} ?", (cutoff,))
                counts.append(cursor.rowcount)
        self._transaction(work)
        return sum(counts)

    def _shrink(self, target: int) -> int:
        """Delete the oldest rows of all tables until the pages in use are under ``target``."""
        dropped = 0
        for _ in range(64):  # each round deletes at least one row; bounded all the same
            used = self.used_bytes()
            total = sum(self._counts().values())
            if used <= target or total == 0:
                break
            # Rows are not all the same size and index pages free up later than table
            # pages, so estimate the share to drop, then measure again.
            share = min(1.0, (used - target) / used + 0.01)
            nth = max(1, int(total * share))
            cutoff = self._nth_oldest(nth)
            if cutoff is None:
                break
            dropped += self._delete_older_than(cutoff, inclusive=True)
        return dropped

    def _nth_oldest(self, nth: int) -> float | None:
        """The ``received_at`` of the nth oldest row across all tables (a merge of indexes)."""
        cursors = [self._conn.execute(f"SELECT received_at FROM {table} ORDER BY received_at")
                   for table in TABLES]
        try:
            merged = heapq.merge(*((row[0] for row in cursor) for cursor in cursors))
            found = list(itertools.islice(merged, nth - 1, nth))
        finally:
            for cursor in cursors:  # unfinished reads must not stay open across the delete
                cursor.close()
        return float(found[0]) if found else None

    def start_pruning(self, interval_s: float = PRUNE_INTERVAL_S) -> None:
        """Enforce the limits every ``interval_s`` in a daemon thread, until :meth:`close`."""
        if self._pruner is not None or not (self.retention_s or self.max_bytes):
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.prune()
                except sqlite3.Error as exc:  # a full disk must not kill the receiver
                    print(f"sink: pruning failed: {exc}", file=sys.stderr)
        self._pruner = threading.Thread(target=loop, name="sink-pruner", daemon=True)
        self._pruner.start()

    # ---- reading --------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Json]:
        """Rows as dicts, JSON columns decoded."""
        with self._lock:
            cursor = self._conn.execute(sql, params)
            rows = cursor.fetchall()
        out = []
        for row in rows:
            item = dict(row)
            for key in JSON_COLUMNS & item.keys():
                item[key] = json.loads(item[key]) if item[key] is not None else None
            out.append(item)
        return out

    def _counts(self) -> dict[str, int]:
        return {t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in TABLES}

    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        with self._lock:
            return self._counts()

    def storage(self) -> Json:
        """What the store holds and its limits: bytes in use, file sizes, rows dropped."""
        with self._lock:
            used = self.used_bytes()
            oldest = [self._conn.execute(f"SELECT MIN(received_at) FROM {t}").fetchone()[0]
                      for t in TABLES]
            dropped = dict(self.dropped)
        files = {suffix or "db": _size(Path(str(self.path) + suffix))
                 for suffix in ("", "-wal")}
        present = [o for o in oldest if o is not None]
        return {"used_bytes": used, "file_bytes": files["db"], "wal_bytes": files["-wal"],
                "max_bytes": self.max_bytes, "retention_s": self.retention_s,
                "oldest_received_at": min(present) if present else None,
                "dropped_rows": dropped}

    def close(self) -> None:
        """Stop the pruning thread and close the connection."""
        self._stop.set()
        if self._pruner is not None:
            self._pruner.join(timeout=5)
        with self._lock:
            self._conn.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
