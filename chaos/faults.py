"""Fault specs, fault records and the table of active faults the HTTP fault proxy consults.

Everything here is pure: the clock and the random source are injected, so the matching,
rate and TTL rules are tested without a server. :mod:`chaos.proxy` serves it over HTTP;
:mod:`chaos.client` talks to it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

FaultKind = Literal["http_error", "latency", "abort"]
EndReason = Literal["removed", "expired", "cleared"]

DEFAULT_MAX_TTL_S = 3600.0
CONTROL_PREFIX = "/_readygate/"


class _FaultBase(BaseModel):
    """Fields every fault has: where it applies, how often, and for how long."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(default=None, max_length=200)
    path_prefix: str | None = None
    methods: list[str] | None = None
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    ttl_s: float = Field(gt=0.0)

    @field_validator("path_prefix")
    @classmethod
    def _prefix_is_a_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _methods_upper(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            # An empty list would silently match nothing; omit the key to match every method.
            raise ValueError("must not be empty (omit it to match every method)")
        out = []
        for method in value:
            if not method.isalpha():
                raise ValueError(f"{method!r} is not an HTTP method")
            out.append(method.upper())
        return out


class HttpErrorFault(_FaultBase):
    """Answer matching requests with ``status`` instead of forwarding them."""

    kind: Literal["http_error"] = "http_error"
    status: int = Field(default=500, ge=400, le=599)


class LatencyFault(_FaultBase):
    """Delay matching requests by ``latency_ms`` plus a uniform extra in ``[0, jitter_ms]``."""

    kind: Literal["latency"] = "latency"
    latency_ms: float = Field(ge=0.0, le=600_000.0)
    jitter_ms: float = Field(default=0.0, ge=0.0, le=600_000.0)


class AbortFault(_FaultBase):
    """Drop matching requests: the connection closes before a complete response."""

    kind: Literal["abort"] = "abort"


FaultSpec = Annotated[HttpErrorFault | LatencyFault | AbortFault, Field(discriminator="kind")]
"""Any fault spec; ``kind`` selects the model."""

_SPEC_ADAPTER: TypeAdapter[HttpErrorFault | LatencyFault | AbortFault] = TypeAdapter(FaultSpec)


class FaultRecord(BaseModel):
    """One injected fault as the proxy reports it: the spec, its lifetime and its counters."""

    id: str
    kind: FaultKind
    name: str | None = None
    path_prefix: str | None = None
    methods: list[str] | None = None
    rate: float
    ttl_s: float
    status: int | None = None
    latency_ms: float | None = None
    jitter_ms: float | None = None
    started_at: float
    expires_at: float
    ended_at: float | None = None
    end_reason: EndReason | None = None
    matched: int = 0
    injected: int = 0

    @property
    def ended(self) -> bool:
        """True once the fault was removed, cleared or expired."""
        return self.ended_at is not None

    def applies_to(self, method: str, path: str, now: float) -> bool:
        """Whether this fault covers a request right now (TTL checked against ``now``)."""
        if self.ended_at is not None or now >= self.expires_at:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        return self.methods is None or method.upper() in self.methods


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # Discriminated unions prefix the location with the tag; the kind is already known.
        if loc and loc[0] in ("http_error", "latency", "abort"):
            loc = loc[1:]
        where = ".".join(loc) or "fault"
        parts.append(f"{where}: {err['msg']}")
    return "invalid fault spec: " + "; ".join(parts)


def parse_spec(data: object, *, max_ttl_s: float | None = None) -> FaultSpec:
    """Validate a fault spec (a mapping or a model); raise ``ValueError`` with one line."""
    if isinstance(data, HttpErrorFault | LatencyFault | AbortFault):
        spec: FaultSpec = data
    else:
        if not isinstance(data, Mapping):
            raise ValueError("invalid fault spec: expected a JSON object")
        if "kind" not in data:
            raise ValueError("invalid fault spec: kind: required"
                             " (one of 'http_error', 'latency', 'abort')")
        try:
            spec = _SPEC_ADAPTER.validate_python(dict(data))
        except ValidationError as exc:
            raise ValueError(_one_line(exc)) from None
    if max_ttl_s is not None and spec.ttl_s > max_ttl_s:
        raise ValueError(f"invalid fault spec: ttl_s: {spec.ttl_s:g} exceeds this proxy's"
                         f" max TTL of {max_ttl_s:g}s")
    return spec


def spec_to_json(spec: FaultSpec) -> dict[str, Any]:
    """The JSON body to POST for ``spec`` (unset optional fields left out)."""
    return spec.model_dump(mode="json", exclude_none=True)


@dataclass
class Decision:
    """What to do to one request: wait ``delay_s``, then answer ``status``, abort, or forward."""

    delay_s: float = 0.0
    status: int | None = None
    abort: bool = False
    fault_ids: list[str] = field(default_factory=list)

    @property
    def forward(self) -> bool:
        """True if the request goes on to the upstream after the delay."""
        return self.status is None and not self.abort


class FaultTable:
    """The active faults and their history; decides per request and ends faults at their TTL."""

    def __init__(self, *, max_ttl_s: float = DEFAULT_MAX_TTL_S,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 history_limit: int = 1000,
                 on_end: Callable[[FaultRecord], None] | None = None) -> None:
        self.max_ttl_s = max_ttl_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._active: dict[str, FaultRecord] = {}
        # Bounded so a long-lived proxy fed faults in a loop does not grow without limit.
        self._history: deque[FaultRecord] = deque(maxlen=history_limit)
        self._on_end = on_end

    def add(self, data: object) -> FaultRecord:
        """Validate and activate a fault; raise ``ValueError`` (one line) if the spec is bad."""
        spec = parse_spec(data, max_ttl_s=self.max_ttl_s)
        now = self._clock()
        record = FaultRecord(id=f"f-{uuid.uuid4().hex[:12]}", started_at=now,
                             expires_at=now + spec.ttl_s, **spec.model_dump())
        self.expire_due(now)
        self._active[record.id] = record
        return record

    def get(self, fault_id: str) -> FaultRecord | None:
        """The record for ``fault_id``, active or ended, if the proxy still knows it."""
        if fault_id in self._active:
            return self._active[fault_id]
        return next((r for r in self._history if r.id == fault_id), None)

    def remove(self, fault_id: str) -> FaultRecord | None:
        """End an active fault (``removed``); an already ended one is returned unchanged."""
        self.expire_due()
        record = self._active.get(fault_id)
        if record is None:
            return self.get(fault_id)
        return self._end(record, self._clock(), "removed")

    def clear(self) -> list[FaultRecord]:
        """End every active fault (``cleared``); return the ended records."""
        self.expire_due()
        now = self._clock()
        return [self._end(r, now, "cleared") for r in list(self._active.values())]

    def expire_due(self, now: float | None = None) -> list[FaultRecord]:
        """End the faults whose TTL has run out, with ``ended_at`` = their ``expires_at``."""
        now = self._clock() if now is None else now
        due = [r for r in self._active.values() if now >= r.expires_at]
        due.sort(key=lambda r: r.expires_at)
        return [self._end(r, r.expires_at, "expired") for r in due]

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` among active faults."""
        return min((r.expires_at for r in self._active.values()), default=None)

    def active(self) -> list[FaultRecord]:
        """Active faults, oldest first."""
        self.expire_due()
        return list(self._active.values())

    def history(self) -> list[FaultRecord]:
        """Ended faults, in the order they ended."""
        self.expire_due()
        return list(self._history)

    def decide(self, method: str, path: str) -> Decision:
        """Roll every matching fault for one request; latency adds up, the first error wins."""
        now = self._clock()
        self.expire_due(now)
        decision = Decision()
        for record in self._active.values():
            if not record.applies_to(method, path, now):
                continue
            record.matched += 1
            if record.kind != "latency" and (decision.status is not None or decision.abort):
                continue  # an earlier error or abort already answers this request
            if self._rng.random() >= record.rate:
                continue
            record.injected += 1
            decision.fault_ids.append(record.id)
            if record.kind == "latency":
                jitter = self._rng.uniform(0.0, record.jitter_ms or 0.0)
                decision.delay_s += ((record.latency_ms or 0.0) + jitter) / 1000.0
            elif record.kind == "http_error":
                decision.status = record.status
            else:
                decision.abort = True
        return decision

    def _end(self, record: FaultRecord, ended_at: float, reason: EndReason) -> FaultRecord:
        self._active.pop(record.id, None)
        record.ended_at = ended_at
        record.end_reason = reason
        self._history.append(record)
        if self._on_end is not None:
            self._on_end(record)
        return record
