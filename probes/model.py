"""Probe results: what a journey sent, what came back, and the ids to find it again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """What blackbox_exporter reports of a TLS connection (its ``probe_ssl_*`` series)."""

    version: str
    """``TLS 1.2``, ``TLS 1.3`` ... (blackbox's label values)."""
    earliest_expiry: float
    """The earliest notAfter of the certificates the server sent (Unix time)."""
    chain_expiry: float
    """The earliest notAfter in the verified chain; Go's zero time when unverified."""
    fingerprint: str
    """SHA-256 of the leaf certificate (DER), hex."""
    subject: str
    issuer: str
    sans: str
    """The leaf's DNS names, comma-separated."""


@dataclass(frozen=True, slots=True)
class HttpFacts:
    """What an answered request showed, for blackbox_exporter's ``probe_http_*`` series."""

    version: float
    """1.1, 1.0, 2.0."""
    content_length: int
    """The Content-Length header; -1 when the length was not announced (chunked, close)."""
    body_length: int
    """Bytes of the body after decoding (gzip and friends)."""
    redirects: int
    last_modified: float | None = None
    """The Last-Modified header as Unix time, when there is one."""
    ip: str | None = None
    """The address the request went to (when the client saw it)."""
    resolve_s: float | None = None
    """The name lookup of a fresh connection (0 for an IP literal; None: not measured)."""
    tls: TlsFacts | None = None
    failed_due_to_regex: bool = False
    """A body or header regular expression failed the step."""


@dataclass(frozen=True)
class StepResult:
    """One step of a journey: an HTTP request (after retries) or a browser action."""

    name: str
    method: str
    url: str
    status: int | None
    duration_s: float
    request_id: str
    ok: bool
    error: str | None = None
    attempts: int = 1
    phases: dict[str, float] = field(default_factory=dict)
    """Client-side HTTP phases in seconds: connect, tls, processing, transfer (blackbox names)."""
    ttfb_s: float | None = None
    tls_cert_expiry: float | None = None
    """The server certificate's notAfter (Unix time), for https."""
    traceparent: str | None = None
    skipped: bool = False
    cleanup: bool = False
    """The step runs even after a failure (``always: true``): clean-up, not the check."""
    http: HttpFacts | None = None
    """The answered request's facts (HTTP steps that got a response)."""

    @property
    def retried(self) -> bool:
        """True when the step needed more than one attempt (whatever its outcome)."""
        return self.attempts > 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "url": self.url, "status": self.status,
                "duration_s": round(self.duration_s, 6), "request_id": self.request_id,
                "ok": self.ok, "error": self.error, "attempts": self.attempts,
                "phases": {k: round(v, 6) for k, v in self.phases.items()},
                "ttfb_s": None if self.ttfb_s is None else round(self.ttfb_s, 6),
                "tls_cert_expiry": self.tls_cert_expiry, "traceparent": self.traceparent,
                "skipped": self.skipped}


@dataclass(frozen=True)
class ProbeResult:
    """One run of a journey. ``trace_id`` is readygate's own: every request carried it."""

    journey: str
    started_at: float
    duration_s: float
    success: bool
    trace_id: str
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    error: str | None = None
    kind: str = "http"
    target: str = ""
    user_agent: str = ""
    web_vitals: dict[str, dict[str, float]] = field(default_factory=dict)
    """Browser journeys: page path -> {lcp, fcp, ttfb, inp, cls} (seconds; cls unitless)."""
    artifacts: tuple[str, ...] = ()
    """Browser journeys: screenshot and trace zip paths kept after a failure."""

    @property
    def finished_at(self) -> float:
        return self.started_at + self.duration_s

    @property
    def request_ids(self) -> list[str]:
        return [s.request_id for s in self.steps if s.request_id]

    @property
    def retried(self) -> bool:
        """True when any step needed a retry: a pass after a retry is not a clean pass."""
        return any(s.retried for s in self.steps)

    @property
    def phases(self) -> dict[str, float]:
        """Per-phase HTTP time summed over the journey's steps."""
        out: dict[str, float] = {}
        for step in self.steps:
            for phase, seconds in step.phases.items():
                out[phase] = out.get(phase, 0.0) + seconds
        return out

    @property
    def tls_cert_expiry(self) -> float | None:
        """The earliest certificate expiry any step saw (https only)."""
        seen = [s.tls_cert_expiry for s in self.steps if s.tls_cert_expiry is not None]
        return min(seen) if seen else None

    @property
    def last_status(self) -> int | None:
        """The status of the last step that got an answer."""
        for step in reversed(self.steps):
            if step.status is not None and not step.skipped:
                return step.status
        return None

    @property
    def status_step(self) -> StepResult | None:
        """The step a journey's ``probe_http_*`` series describe (blackbox has one request).

        The first step that failed (why the journey failed), else the last step that ran
        and is not a clean-up (``always``) step, else the last step that ran: an upload
        journey that passed reports its read-back, not its DELETE.
        """
        ran = [s for s in self.steps if not s.skipped]
        for step in ran:
            if not step.ok:
                return step
        for step in reversed(ran):
            if not step.cleanup:
                return step
        return ran[-1] if ran else None

    def to_dict(self) -> dict[str, Any]:
        return {"journey": self.journey, "kind": self.kind, "target": self.target,
                "started_at": self.started_at, "duration_s": round(self.duration_s, 6),
                "success": self.success, "retried": self.retried, "trace_id": self.trace_id,
                "user_agent": self.user_agent, "error": self.error,
                "phases": {k: round(v, 6) for k, v in self.phases.items()},
                "tls_cert_expiry": self.tls_cert_expiry, "web_vitals": self.web_vitals,
                "artifacts": list(self.artifacts),
                "steps": [s.to_dict() for s in self.steps]}
