"""TCP fault specs, records and the TTL table the TCP fault proxy consults.

Pure like :mod:`chaos.faults`: the clock is injected, so the TTL rules are tested without a
server. :mod:`chaos.tcpproxy` serves it; :class:`chaos.client.TcpProxyClient` talks to it.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chaos.faults import DEFAULT_MAX_TTL_S

TcpKind = Literal["tcp_latency", "tcp_reset", "tcp_blackhole", "tcp_bandwidth"]
Direction = Literal["both", "upstream", "downstream"]
EndReason = Literal["removed", "expired", "cleared"]
TCP_KINDS: tuple[str, ...] = ("tcp_latency", "tcp_reset", "tcp_blackhole", "tcp_bandwidth")


class TcpFaultSpec(BaseModel):
    """One TCP fault: what it does to the bytes, in which direction, and for how long."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: TcpKind
    name: str | None = Field(default=None, max_length=200)
    ttl_s: float = Field(gt=0.0)
    latency_ms: float = Field(default=0.0, ge=0.0, le=600_000.0)
    jitter_ms: float = Field(default=0.0, ge=0.0, le=600_000.0)
    bytes_per_s: int | None = Field(default=None, gt=0)
    direction: Direction = "both"

    @model_validator(mode="after")
    def _needs(self) -> TcpFaultSpec:
        if self.kind == "tcp_bandwidth" and self.bytes_per_s is None:
            raise ValueError("tcp_bandwidth needs bytes_per_s")
        return self

    def applies(self, direction: str) -> bool:
        """Whether this fault acts on bytes flowing ``upstream`` or ``downstream``."""
        return self.direction in ("both", direction)


class TcpFaultRecord(TcpFaultSpec):
    """A TCP fault as the proxy reports it: the spec, its lifetime and its counters."""

    id: str
    started_at: float
    expires_at: float
    ended_at: float | None = None
    end_reason: EndReason | None = None
    connections: int = 0  # connections it acted on (reset, or whose bytes it touched)


def parse_tcp_spec(data: object, *, max_ttl_s: float | None = None) -> TcpFaultSpec:
    """Validate a TCP fault spec; raise ``ValueError`` with one line."""
    if isinstance(data, TcpFaultSpec):
        spec = data
    else:
        if not isinstance(data, Mapping):
            raise ValueError("invalid fault spec: expected a JSON object")
        if data.get("kind") not in TCP_KINDS:
            raise ValueError(f"invalid fault spec: kind: {data.get('kind')!r} is not a TCP"
                             f" fault (one of {', '.join(TCP_KINDS)})")
        try:
            spec = TcpFaultSpec.model_validate(dict(data))
        except ValidationError as exc:
            parts = [f"{'.'.join(str(p) for p in e['loc']) or 'fault'}: "
                     f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
            raise ValueError("invalid fault spec: " + "; ".join(parts)) from None
    if max_ttl_s is not None and spec.ttl_s > max_ttl_s:
        raise ValueError(f"invalid fault spec: ttl_s: {spec.ttl_s:g} exceeds this proxy's"
                         f" max TTL of {max_ttl_s:g}s")
    return spec


@dataclass
class Effects:
    """What to do to one chunk of bytes: drop it, delay it, or pace it."""

    blackhole: bool = False
    delay_s: float = 0.0
    bytes_per_s: int | None = None
    fault_ids: tuple[str, ...] = ()


class TcpFaultTable:
    """Active TCP faults and their history; ends faults at their TTL."""

    def __init__(self, *, max_ttl_s: float = DEFAULT_MAX_TTL_S,
                 clock: Callable[[], float] = time.time,
                 jitter: Callable[[float], float] | None = None,
                 history_limit: int = 1000) -> None:
        self.max_ttl_s = max_ttl_s
        self._clock = clock
        self._jitter = jitter or (lambda top: 0.0)
        self._active: dict[str, TcpFaultRecord] = {}
        self._history: deque[TcpFaultRecord] = deque(maxlen=history_limit)

    def add(self, data: object) -> TcpFaultRecord:
        """Validate and activate a fault; ``ValueError`` (one line) if the spec is bad."""
        spec = parse_tcp_spec(data, max_ttl_s=self.max_ttl_s)
        now = self._clock()
        self.expire_due(now)
        record = TcpFaultRecord(id=f"t-{uuid.uuid4().hex[:12]}", started_at=now,
                                expires_at=now + spec.ttl_s, **spec.model_dump())
        self._active[record.id] = record
        return record

    def get(self, fault_id: str) -> TcpFaultRecord | None:
        """The record for ``fault_id``, active or ended."""
        if fault_id in self._active:
            return self._active[fault_id]
        return next((r for r in self._history if r.id == fault_id), None)

    def remove(self, fault_id: str) -> TcpFaultRecord | None:
        """End an active fault (``removed``); an ended one is returned unchanged."""
        self.expire_due()
        record = self._active.get(fault_id)
        if record is None:
            return self.get(fault_id)
        return self._end(record, self._clock(), "removed")

    def clear(self) -> list[TcpFaultRecord]:
        """End every active fault (``cleared``)."""
        self.expire_due()
        now = self._clock()
        return [self._end(r, now, "cleared") for r in list(self._active.values())]

    def expire_due(self, now: float | None = None) -> list[TcpFaultRecord]:
        """End faults whose TTL ran out, with ``ended_at`` = their ``expires_at``."""
        now = self._clock() if now is None else now
        due = sorted((r for r in self._active.values() if now >= r.expires_at),
                     key=lambda r: r.expires_at)
        return [self._end(r, r.expires_at, "expired") for r in due]

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` among active faults."""
        return min((r.expires_at for r in self._active.values()), default=None)

    def active(self) -> list[TcpFaultRecord]:
        """Active faults, oldest first."""
        self.expire_due()
        return list(self._active.values())

    def history(self) -> list[TcpFaultRecord]:
        """Ended faults, in the order they ended."""
        self.expire_due()
        return list(self._history)

    def resetting(self) -> TcpFaultRecord | None:
        """The active ``tcp_reset`` fault, if any: new connections are reset at once."""
        return next((r for r in self.active() if r.kind == "tcp_reset"), None)

    def effects(self, direction: str) -> Effects:
        """Combine the active faults for one chunk flowing ``direction``."""
        out = Effects()
        ids: list[str] = []
        for record in self.active():
            if not record.applies(direction):
                continue
            if record.kind == "tcp_blackhole":
                out.blackhole = True
            elif record.kind == "tcp_latency":
                out.delay_s += (record.latency_ms + self._jitter(record.jitter_ms)) / 1000.0
            elif record.kind == "tcp_bandwidth" and record.bytes_per_s is not None:
                # Several limits: the tightest wins.
                out.bytes_per_s = min(out.bytes_per_s or record.bytes_per_s, record.bytes_per_s)
            else:
                continue
            ids.append(record.id)
        out.fault_ids = tuple(ids)
        return out

    def _end(self, record: TcpFaultRecord, ended_at: float,
             reason: EndReason) -> TcpFaultRecord:
        self._active.pop(record.id, None)
        record.ended_at = ended_at
        record.end_reason = reason
        self._history.append(record)
        return record
