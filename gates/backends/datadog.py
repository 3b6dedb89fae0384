"""Datadog with its own client library (datadog-api-client): logs search and monitor state.

Logs: the Logs Search API v2 (``POST /api/v2/logs/events/search``), a query per look ANDed
with the configured ``query``, paged with its cursor. Alerts: monitors and their group
states (``GET /api/v1/monitor?group_states=all``); the alert name is the monitor's name, the
labels its ``key:value`` tags and the group's tags. datadog-api-client is synchronous: each
call runs in a thread (``asyncio.to_thread``) bounded by the backend's timeout.

Datadog metrics are not a backend here: the metric checks are PromQL conditions, and a
Datadog query answers values, not a filtered vector (docs/backends.md says why).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

import urllib3
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException, OpenApiException
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.logs_sort import LogsSort
from pydantic import SecretStr

from core.errors import BackendError, ConfigError
from core.http import TlsOptions, warn_insecure
from core.times import rfc3339, rfc3339_seconds
from gates.backends.config import SignalBackend
from gates.backends.types import (
    REQUEST_ID_KEYS,
    ActiveAlert,
    IncompleteWindow,
    LogLine,
    log_line_from,
)

T = TypeVar("T")


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a missing or odd field)."""
    return value if isinstance(value, dict) else {}


def _plain(model: Any) -> Any:
    """A client model as plain JSON-like data (the library's models are untyped)."""
    to_dict: Callable[[], Any] = model.to_dict
    return to_dict()

_LOOKBACK_S = 3600.0   # without ``since``, look back one hour (as the Loki backend does)
_PAGE_MAX = 1000       # the Logs Search API's largest page
_MONITOR_PAGES = 50    # 50 pages of 1000 monitors: more is not an organisation, it is a bug
# Monitor states that are an alert now: Alert fires; Warn (the warning threshold) and No Data
# (the monitor cannot see its data) are shown as pending: neither proves a fault, and a
# healthy system should show neither.
_STATES = {"Alert": "firing", "Warn": "pending", "No Data": "pending"}
_HEX = re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{32}$")


_configuration: Callable[..., Configuration] = Configuration  # untyped in the library
_logs_api: Callable[[ApiClient], LogsApi] = LogsApi
_monitors_api: Callable[[ApiClient], MonitorsApi] = MonitorsApi


def configuration(*, site: str, url: str | None, api_key: str | None, app_key: str | None,
                  timeout_s: float, tls: TlsOptions | None = None,
                  proxy_from_env: bool = False) -> Configuration:
    """The client's configuration: the site's API (or ``url``), keys, timeout, TLS."""
    if url:
        # the client's own endpoint option: server 1 is "{protocol}://{name}"
        protocol, _, name = url.rstrip("/").partition("://")
        config = _configuration(server_index=1,
                                server_variables={"protocol": protocol, "name": name})
    else:
        # server 2 is "https://{subdomain}.{site}" for any Datadog deployment
        config = _configuration(server_index=2,
                                server_variables={"site": site, "subdomain": "api"})
    config.api_key = {k: v for k, v in (("apiKeyAuth", api_key), ("appKeyAuth", app_key)) if v}
    config.request_timeout = timeout_s
    # no retries (urllib3 would try a refused connection 4 times): the checks poll anyway,
    # and a retry would outlast the check's own deadline
    config.enable_retry = False
    config.retry_policy = urllib3.util.Retry(total=0, redirect=0, raise_on_redirect=False)
    if tls is not None:
        config.ssl_ca_cert = tls.ca_file
        config.cert_file = tls.cert_file
        config.key_file = tls.key_file
        config.verify_ssl = not tls.insecure_skip_verify
    if proxy_from_env:
        config.proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or None
    return config


class DatadogClient:
    """One datadog-api-client ``ApiClient``; every call in a thread, every failure a
    :class:`BackendError`."""

    kind = "datadog"

    def __init__(self, config: Configuration, *, timeout_s: float,
                 headers: dict[str, str] | None = None) -> None:
        self.api = ApiClient(config)
        self.api.default_headers.update(headers or {})
        self.timeout_s = timeout_s
        self.where = config.host

    def close(self) -> None:
        """Close the client's connection pool."""
        self.api.close()

    async def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` in a thread, bounded by the timeout; failures as :class:`BackendError`."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), self.timeout_s * 2 + 1)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise BackendError(f"datadog refused {what} ({exc.status}): check the API "
                                   "and application keys and the site") from None
            if not exc.status:  # the client's own wrapping of a connection or TLS failure
                raise BackendError(f"datadog unreachable at {self.where}: "
                                   f"{str(exc.reason)[:200]}") from None
            raise BackendError(f"datadog answered {exc.status} for {what}"
                               + (f": {_detail(exc.body)}" if _detail(exc.body) else "")
                               ) from None
        except OpenApiException as exc:  # the answer did not fit the documented shape
            raise BackendError(f"datadog answered a malformed {what}: "
                               f"{str(exc).splitlines()[0][:160]}") from None
        except TimeoutError:  # before OSError, its base class
            raise BackendError(f"datadog did not answer {what} within "
                               f"{self.timeout_s * 2 + 1:g}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            cause = getattr(exc, "reason", None) or exc  # MaxRetryError wraps the real one
            if isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
                    cause, urllib3.exceptions.NewConnectionError):  # a subclass, for history
                raise BackendError(f"datadog did not answer {what} within "
                                   f"{self.timeout_s:g}s ({type(cause).__name__})") from None
            raise BackendError(f"datadog unreachable at {self.where}: "
                               f"{type(cause).__name__}") from None


def _detail(body: Any) -> str | None:
    """Datadog's error answer: ``{"errors": ["..."]}`` (the client has decoded it)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    return "; ".join(str(e) for e in errors)[:200] or None


def quote(value: str) -> str:
    """A Datadog search value in double quotes (backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dd_trace_id(trace_id: str) -> str | None:
    """The decimal form Datadog tracers log as ``dd.trace_id`` (the low 64 bits)."""
    hexa = trace_id.lower()
    return str(int(hexa[-16:], 16)) if _HEX.match(hexa) else None


def trace_query(trace_id: str) -> str:
    """Lines carrying the trace id: the reserved ``trace_id``, OTel's and Datadog's fields."""
    hexa = trace_id.lower()
    dec = _dd_trace_id(hexa)
    parts = [f"trace_id:{quote(hexa)}", f"@trace_id:{quote(hexa)}",
             f"@otel.trace_id:{quote(hexa)}", f"@dd.trace_id:{quote(hexa)}"]
    if dec is not None:
        parts += [f"trace_id:{quote(dec)}", f"@dd.trace_id:{quote(dec)}"]
    return "(" + " OR ".join(parts) + ")"


def request_query(request_id: str) -> str:
    """Lines carrying the request id in any of the usual attributes."""
    return "(" + " OR ".join(f"@{k}:{quote(request_id)}" for k in REQUEST_ID_KEYS) + ")"


def _line(log: dict[str, Any], trace_id: str | None) -> LogLine:
    """One Datadog log (``{"id", "attributes": {message, service, status, timestamp, ...}}``)."""
    attrs = log.get("attributes")
    if not isinstance(attrs, dict):
        raise BackendError("datadog answered a log without attributes")
    custom = _obj(attrs.get("attributes"))
    record = {**custom, **{k: attrs[k] for k in ("host", "service", "status", "tags")
                           if attrs.get(k) is not None}}
    message = attrs.get("message")
    line = log_line_from(record, service=attrs.get("service"),
                         ts=rfc3339_seconds(attrs.get("timestamp")),
                         body=message if isinstance(message, str) else None)
    level = line.level or (str(attrs["status"]) if attrs.get("status") else None)
    found = line.trace_id
    otel = _obj(custom.get("otel")).get("trace_id") or custom.get("otel.trace_id")
    if isinstance(otel, str) and otel:
        found = otel.lower()
    if trace_id and found in (_dd_trace_id(trace_id), trace_id.lower()):
        found = trace_id.lower()  # Datadog's decimal form of the same trace
    return replace(line, level=level, trace_id=found)


class DatadogLogs:
    """Datadog Logs Search API v2 as a logs backend."""

    kind = "datadog"

    def __init__(self, client: DatadogClient, *, query: str | None = None) -> None:
        self.client = client
        self.logs = _logs_api(client.api)
        self.base = (query or "").strip()

    def close(self) -> None:
        """Close the Datadog client."""
        self.client.close()

    def query(self, *, trace_id: str | None = None, request_id: str | None = None,
              contains: str | None = None) -> str:
        """The search query: the configured one AND each given filter."""
        parts = [f"({self.base})"] if self.base else []
        if trace_id:
            parts.append(trace_query(trace_id))
        if request_id:
            parts.append(request_query(request_id))
        if contains:
            parts.append(quote(contains))
        return " AND ".join(parts) or "*"

    def describe_query(self, **filters: str) -> str:
        return "POST /api/v2/logs/events/search filter.query=" + self.query(
            trace_id=filters.get("trace_id"), request_id=filters.get("request_id"),
            contains=filters.get("contains"))

    async def _page(self, query: str, since: float, limit: int,
                    cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of logs, oldest first, and the cursor of the next (None: the last)."""
        page = LogsListRequestPage(limit=max(1, min(limit, _PAGE_MAX)))
        if cursor:
            page.cursor = cursor
        body = LogsListRequest(filter=LogsQueryFilter(query=query, _from=rfc3339(since),
                                                      to="now"),
                               sort=LogsSort.TIMESTAMP_ASCENDING, page=page)
        resp = await self.client.call("log search",
                                      lambda: _plain(self.logs.list_logs(body=body)))
        data = resp.get("data")
        if not isinstance(data, list):
            raise BackendError("datadog answered a log search without a data list")
        meta = _obj(resp.get("meta"))
        if meta.get("status") == "timeout":
            # a partial answer: lines may be missing, so it proves neither presence nor absence
            raise BackendError("datadog's log search timed out and answered partial results")
        after = _obj(meta.get("page")).get("after")
        return [d for d in data if isinstance(d, dict)], after or None

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        query = self.query(trace_id=trace_id, request_id=request_id, contains=contains)
        start = since if since is not None else time.time() - _LOOKBACK_S
        out: list[LogLine] = []
        cursor: str | None = None
        while len(out) < limit:
            page, cursor = await self._page(query, start, limit - len(out), cursor)
            out += [_line(log, trace_id) for log in page]
            if cursor is None or not page:
                break
        return out[:limit]

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every line at or after ``since`` (within the configured query), page by page."""
        query = self.query()
        cursor: str | None = None
        while True:
            page, cursor = await self._page(query, since, page_size, cursor)
            if page:
                yield [_line(log, None) for log in page]
            if cursor is None:
                return
            if not page:
                raise IncompleteWindow("datadog answered an empty page with a cursor to "
                                       "another: cannot page on")


def _pairs(text: str, sep: str = ",") -> dict[str, str]:
    """``key:value`` items (tags, a group's name) as labels; bare tags are left out."""
    out: dict[str, str] = {}
    for item in text.split(sep):
        key, colon, value = item.strip().partition(":")
        if colon and key:
            out[key] = value
    return out


def _seconds(value: Any) -> float | None:
    """A Datadog epoch (seconds, or milliseconds in some answers) as seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value) / (1000.0 if value > 1e11 else 1.0)


def _groups(monitor: dict[str, Any]) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(labels, group state) for each group of a monitor; a monitor without groups is one."""
    labels = {**_pairs(",".join(str(t) for t in monitor.get("tags") or [])),
              "monitor_id": str(monitor.get("id"))}
    groups = _obj(_obj(monitor.get("state")).get("groups"))
    if not groups:
        modified = rfc3339_seconds(monitor.get("overall_state_modified"))
        # no group states: only the overall state and when it last changed are known
        return [(labels, {"status": monitor.get("overall_state"), "modified": modified})]
    return [({**labels, **_pairs(str(name) if name != "*" else "")}, g)
            for name, g in groups.items() if isinstance(g, dict)]


class DatadogMonitors:
    """Datadog monitors as an alerts backend: group states now, and whether a group fired."""

    kind = "datadog"

    def __init__(self, client: DatadogClient, *, monitor_tags: list[str] | None = None) -> None:
        self.client = client
        self.monitors_api = _monitors_api(client.api)
        self.monitor_tags = ",".join(monitor_tags or [])

    def close(self) -> None:
        """Close the Datadog client."""
        self.client.close()

    async def monitors(self) -> list[dict[str, Any]]:
        """Every monitor (with the configured tags), with every group's state."""
        out: list[dict[str, Any]] = []
        for page in range(_MONITOR_PAGES):
            kwargs: dict[str, Any] = {"group_states": "all", "page": page, "page_size": 1000}
            if self.monitor_tags:
                kwargs["monitor_tags"] = self.monitor_tags
            got = await self.client.call("monitor list", lambda k=kwargs: [  # type: ignore[misc]
                _plain(m) for m in self.monitors_api.list_monitors(**k)])
            out += [m for m in got if isinstance(m, dict)]
            if len(got) < 1000:
                return out
        raise BackendError(f"datadog lists more than {_MONITOR_PAGES * 1000} monitors: narrow "
                           "them with monitor_tags")

    async def alerts(self) -> list[ActiveAlert]:
        out: list[ActiveAlert] = []
        for monitor in await self.monitors():
            name = monitor.get("name")
            if not isinstance(name, str):
                raise BackendError("datadog answered a monitor without a name")
            for labels, group in _groups(monitor):
                status = str(group.get("status") or "")
                state = _STATES.get(status)
                if state is None:
                    continue
                since = _seconds(group.get("last_nodata_ts")) if status == "No Data" else \
                    _seconds(group.get("last_triggered_ts"))
                if since is None:
                    since = group.get("modified")
                out.append(ActiveAlert(name, state, {**labels, "monitor_state": status},
                                       None if since is None else rfc3339(since, fraction=False)))
        return out

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        """A matching group is in Alert now, triggered at or after ``since``, or resolved
        after it (so it was in Alert then). A monitor without group states tells only its
        state now."""
        for monitor in await self.monitors():
            if monitor.get("name") != alertname:
                continue
            for group_labels, group in _groups(monitor):
                if any(group_labels.get(k) != v for k, v in labels.items()):
                    continue
                triggered = _seconds(group.get("last_triggered_ts"))
                resolved = _seconds(group.get("last_resolved_ts"))
                if group.get("status") == "Alert" or (triggered or 0) >= since or (
                        triggered is not None and (resolved or 0) >= since):
                    return True
        return False


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def client_for(spec: SignalBackend, signal: str) -> DatadogClient:
    """The client a ``kind: datadog`` backend's config describes (its TLS options included:
    the library's urllib3 takes a CA file, a client certificate and skip-verify)."""
    tls = spec.tls
    if tls is not None:
        unsupported = [k for k in ("server_name", "key_password") if getattr(tls, k)]
        if unsupported:
            raise ConfigError(f"datadog's client cannot use tls.{unsupported[0]}",
                              key=f"backends.{signal}.tls.{unsupported[0]}")
        warn_insecure(tls, f"backends.{signal}")
    config = configuration(site=spec.site, url=spec.url, api_key=_secret(spec.token),
                           app_key=_secret(spec.app_key), timeout_s=spec.timeout_s, tls=tls,
                           proxy_from_env=spec.proxy_from_env)
    return DatadogClient(config, timeout_s=spec.timeout_s,
                         headers={k: v.get_secret_value() for k, v in spec.headers.items()})
