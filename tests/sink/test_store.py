"""Bounded storage: rows older than --retention-s and the oldest rows over --max-bytes go."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from sink.store import MIN_MAX_BYTES, TABLES, SinkDB
from tests.fixtures.demo_system import eventually
from tests.sink.conftest import start_sink

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def row(table: str, received_at: float, size: int = 400) -> dict[str, Any]:
    """A row of ``table`` carrying about ``size`` bytes of payload."""
    blob = secrets.token_hex(size // 2)
    if table == "spans":
        return {"received_at": received_at, "trace_id": secrets.token_hex(16), "span_id": "s",
                "name": blob, "attributes": {}}
    if table == "logs":
        return {"received_at": received_at, "body": blob, "trace_id": secrets.token_hex(16),
                "attributes": {}}
    if table == "metrics":
        return {"received_at": received_at, "name": "m", "description": blob, "value": 1,
                "attributes": {}}
    if table == "errors":
        return {"received_at": received_at, "message": blob, "event": {}}
    return {"received_at": received_at, "alertname": "A", "payload": {"blob": blob}}


def received(db: SinkDB) -> list[float]:
    """Every row's received_at, across all tables, sorted."""
    return sorted(r["received_at"] for t in TABLES
                  for r in db.query(f"SELECT received_at FROM {t}"))


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rows_older_than_the_retention_are_dropped_from_every_table(tmp_path: Path) -> None:
    clock = Clock(900.0)
    db = SinkDB(tmp_path / "s.db", retention_s=60, max_bytes=0, clock=clock)
    try:
        for table in TABLES:
            db.insert(table, [row(table, 900.0), row(table, 939.0), row(table, 941.0),
                              row(table, 1000.0)])
        assert len(received(db)) == 20
        clock.now = 1000.0
        assert db.prune() == {"age": 10, "size": 0}  # 900 and 939 of five tables
        assert received(db) == [941.0] * 5 + [1000.0] * 5
        clock.now = 1100.0
        assert db.prune()["age"] == 10
        assert received(db) == []
        assert db.storage()["dropped_rows"] == {"age": 20, "size": 0}
    finally:
        db.close()


def test_age_is_enforced_on_insert_without_an_explicit_prune(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    db = SinkDB(tmp_path / "s.db", retention_s=60, max_bytes=0, clock=clock)
    try:
        db.insert("logs", [row("logs", 1000.0)])
        clock.now = 2000.0  # the old row is now 1000 s old
        db.insert("spans", [row("spans", 2000.0)])
        assert received(db) == [2000.0]
    finally:
        db.close()


def test_zero_retention_keeps_rows_forever(tmp_path: Path) -> None:
    db = SinkDB(tmp_path / "s.db", retention_s=0, max_bytes=0, clock=Clock(1e9))
    try:
        db.insert("logs", [row("logs", 1.0)])
        assert db.prune() == {"age": 0, "size": 0} and received(db) == [1.0]
    finally:
        db.close()


def test_over_the_size_limit_the_oldest_rows_of_all_tables_go_first(tmp_path: Path) -> None:
    db = SinkDB(tmp_path / "s.db", retention_s=0, max_bytes=MIN_MAX_BYTES)
    try:
        t = 0.0
        for _ in range(120):  # ~5 MiB into a 1 MiB store, the tables interleaved in time
            for table in TABLES:
                db.insert(table, [row(table, t + i, size=800) for i in range(10)])
                t += 10
                assert db.used_bytes() <= MIN_MAX_BYTES  # enforced on every insert
        kept = received(db)
        assert 0 < len(kept) < 6000 / 2
        # What is left is exactly the newest rows: a suffix of the arrival order.
        assert kept == [float(x) for x in range(int(t) - len(kept), int(t))]
        storage = db.storage()
        assert storage["dropped_rows"]["size"] == int(t) - len(kept)
        assert storage["oldest_received_at"] == kept[0]
        # The file reuses freed pages; its write-ahead log is kept to a quarter of the limit.
        assert storage["file_bytes"] + storage["wal_bytes"] <= 1.5 * MIN_MAX_BYTES
    finally:
        db.close()


def test_the_background_pruner_drops_old_rows_of_an_idle_store(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    db = SinkDB(tmp_path / "s.db", retention_s=5, max_bytes=0, clock=clock)
    try:
        db.insert("notifications", [row("notifications", 1000.0)])
        db.start_pruning(interval_s=0.05)
        clock.now = 1010.0
        eventually(lambda: received(db) == [], timeout=5, what="the idle row pruned")
    finally:
        db.close()


def _logs(marker: str, n: int, size: int) -> bytes:
    records = [{"body": {"stringValue": f"{marker}-{i}-" + "x" * size},
                "attributes": [{"key": "request_id", "value": {"stringValue": f"{marker}-{i}"}}]}
               for i in range(n)]
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).encode()


def test_the_command_drops_the_oldest_rows_over_max_bytes(tmp_path: Path) -> None:
    """``--max-bytes`` of a running sink, seen through the query API."""
    s = start_sink("sink-size", [f"--db={tmp_path / 'sink.db'}", "--retention-s=0",
                                 "--max-bytes=1MiB", "--grpc-listen=off"], tmp_path)
    try:
        storage = s.get("/api/storage").json()
        assert (storage["retention_s"], storage["max_bytes"]) == (None, MiB)
        for batch in range(40):  # 40 batches of 100 KB: the first ones make room
            assert s.post("/v1/logs", _logs(f"b{batch}", 50, 2000), JSON).status_code == 200
        storage = s.get("/api/storage").json()
        assert storage["used_bytes"] <= MiB and storage["dropped_rows"]["size"] > 0
        assert s.rows("logs", request_id="b0-0") == []
        assert len(s.rows("logs", request_id="b39-49")) == 1
    finally:
        s.stop()
    assert s.proc.proc is not None and s.proc.proc.returncode == 0


def test_the_command_drops_rows_older_than_retention_s_while_idle(tmp_path: Path) -> None:
    """``--retention-s``: with nothing more arriving, rows go once they are that old."""
    s = start_sink("sink-age", [f"--db={tmp_path / 'sink.db'}", "--retention-s=1",
                                "--grpc-listen=off"], tmp_path)
    try:
        assert s.post("/v1/logs", _logs("old", 3, 10), JSON).status_code == 200
        assert len(s.rows("logs")) == 3
        eventually(lambda: s.rows("logs") == [], timeout=10, what="rows dropped by age")
        assert s.get("/api/storage").json()["dropped_rows"] == {"age": 3, "size": 0}
    finally:
        s.stop()


def test_limits_default_to_an_hour_and_256_mib(tmp_path: Path) -> None:
    db = SinkDB(tmp_path / "s.db")
    try:
        assert (db.retention_s, db.max_bytes) == (3600, 256 * MiB)
        now = time.time()
        db.insert("logs", [row("logs", now - 3500), row("logs", now - 3700)])
        assert received(db) == [now - 3500]
        assert db.storage()["dropped_rows"] == {"age": 1, "size": 0}
    finally:
        db.close()
