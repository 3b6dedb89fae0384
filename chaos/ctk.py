"""readygate as a Chaos Toolkit extension: python-provider actions and probes.

Use them from an experiment with ``"provider": {"type": "python", "module": "chaos.ctk",
"func": "inject_fault", "arguments": {...}}``. Actions inject and clear faults on
readygate's HTTP or TCP fault proxy (the same control API); probes read Prometheus, the
sink's Alertmanager receiver and any HTTP endpoint. Every wait is bounded by ``within_s``
and polls; no probe sleeps a fixed time. Functions are synchronous (Chaos Toolkit calls them
from its own threads) and raise ``ActivityFailed`` when they cannot look.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed

from chaos.tcpfaults import TCP_KINDS

__all__ = ["alert_is_firing", "alert_matches_faults", "assert_alert_firing", "clear_faults",
           "inject_fault", "notification_received", "probe_success_ratio", "send_requests"]

_POLL_S = 0.2
_TIMEOUT = httpx.Timeout(5.0)


def _client() -> httpx.Client:
    # trust_env=False: a user's HTTP(S)_PROXY must not capture calls to the targets.
    return httpx.Client(timeout=_TIMEOUT, trust_env=False)


def _json(resp: httpx.Response, what: str) -> Any:
    if resp.status_code >= 300:
        try:
            message = resp.json().get("error", resp.text)
        except (ValueError, AttributeError):
            message = resp.text
        raise ActivityFailed(f"{what}: HTTP {resp.status_code}: {str(message)[:200]}")
    try:
        return resp.json()
    except ValueError:
        raise ActivityFailed(f"{what}: answer is not JSON") from None


def _get(url: str, what: str, params: dict[str, str] | None = None) -> Any:
    try:
        with _client() as client:
            return _json(client.get(url, params=params), what)
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{what}: cannot reach {url}: {type(exc).__name__}") from exc


# -- actions -----------------------------------------------------------------------------


def inject_fault(proxy_url: str, kind: str, ttl_s: float = 60.0,
                 **fields: Any) -> dict[str, Any]:
    """Inject a fault on readygate's HTTP or TCP fault proxy; returns the fault record."""
    spec = {"kind": kind, "ttl_s": ttl_s, "name": f"ctk:{kind}", **fields}
    what = f"inject {kind} on {proxy_url}"
    try:
        with _client() as client:
            record: dict[str, Any] = _json(client.post(
                proxy_url.rstrip("/") + "/_readygate/faults", json=spec), what)
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{what}: {type(exc).__name__}: {exc}") from exc
    return record


def clear_faults(proxy_url: str) -> list[str]:
    """End every active fault on a fault proxy; returns the ids it ended."""
    what = f"clear faults on {proxy_url}"
    try:
        with _client() as client:
            ended = _json(client.delete(proxy_url.rstrip("/") + "/_readygate/faults"), what)
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{what}: {type(exc).__name__}: {exc}") from exc
    return [str(r.get("id")) for r in ended or []]


def send_requests(url: str, duration_s: float = 5.0, interval_s: float = 0.1,
                  method: str = "GET") -> dict[str, int]:
    """Send requests to ``url`` for ``duration_s`` (traffic an alert can see); status counts."""
    counts: dict[str, int] = {}
    deadline = time.monotonic() + min(duration_s, 600.0)
    with _client() as client:
        while time.monotonic() < deadline:
            try:
                key = str(client.request(method, url).status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1
            time.sleep(interval_s)  # pacing the traffic, not waiting for a result
    return counts


# -- probes ------------------------------------------------------------------------------


def _firing(prometheus_url: str, alertname: str, labels: dict[str, str] | None) -> bool:
    body = _get(prometheus_url.rstrip("/") + "/api/v1/alerts", "Prometheus alerts")
    alerts = (body.get("data") or {}).get("alerts") or [] if isinstance(body, dict) else []
    want = {"alertname": alertname, **(labels or {})}
    return any(a.get("state") == "firing"
               and all((a.get("labels") or {}).get(k) == v for k, v in want.items())
               for a in alerts)


def alert_is_firing(prometheus_url: str, alertname: str, labels: dict[str, str] | None = None,
                    within_s: float = 0.0) -> bool:
    """Whether the alert is firing in Prometheus, waiting up to ``within_s`` for it."""
    deadline = time.monotonic() + within_s
    while True:
        if _firing(prometheus_url, alertname, labels):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def assert_alert_firing(prometheus_url: str, alertname: str,
                        labels: dict[str, str] | None = None, within_s: float = 0.0) -> float:
    """Raise ``ActivityFailed`` unless the alert fires within ``within_s``; the wait it took."""
    start = time.monotonic()
    if not alert_is_firing(prometheus_url, alertname, labels, within_s):
        raise ActivityFailed(f"alert {alertname} not firing within {within_s:g}s")
    return round(time.monotonic() - start, 3)


def _active_faults(proxy_url: str) -> list[dict[str, Any]]:
    body = _get(proxy_url.rstrip("/") + "/_readygate/faults", "fault proxy faults")
    return list(body.get("active") or []) if isinstance(body, dict) else []


def alert_matches_faults(prometheus_url: str, proxy_url: str, alertname: str,
                         labels: dict[str, str] | None = None, within_s: float = 20.0) -> bool:
    """The alert tells the truth: firing within ``within_s`` while a fault is active on the
    proxy, not firing while none is. A steady-state probe true both before and after."""
    if _active_faults(proxy_url):
        return alert_is_firing(prometheus_url, alertname, labels, within_s)
    return not _firing(prometheus_url, alertname, labels)


def notification_received(sink_url: str, alertname: str, since: float = 0.0,
                          status: str = "firing", within_s: float = 0.0) -> bool:
    """Whether readygate's sink received a notification for the alert since ``since``
    (unix seconds; negative = that many seconds ago), waiting up to ``within_s``."""
    start = time.time() + since if since < 0 else since
    deadline = time.monotonic() + within_s
    while True:
        body = _get(sink_url.rstrip("/") + "/api/notifications", "sink notifications",
                    {"alertname": alertname, "status": status, "since": f"{start:.6f}"})
        rows = body.get("notifications") if isinstance(body, dict) else body
        if rows:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def probe_success_ratio(url: str, requests: int = 10, timeout_s: float = 2.0,
                        expect_status: int = 200) -> float:
    """The share of ``requests`` GETs to ``url`` that answered ``expect_status`` in time."""
    ok = 0
    with httpx.Client(timeout=timeout_s, trust_env=False) as client:
        for _ in range(max(1, min(requests, 1000))):
            with contextlib.suppress(httpx.HTTPError):  # a failure is what this counts
                ok += client.get(url).status_code == expect_status
    return ok / max(1, min(requests, 1000))


def fault_kinds() -> list[str]:
    """Kinds ``inject_fault`` accepts: the HTTP proxy's and the TCP proxy's."""
    return ["http_error", "latency", "abort", *TCP_KINDS]
