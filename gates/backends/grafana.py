"""Grafana through grafana-client: Grafana-managed alert state, and dashboards' panels.

Alerts (``backends.alerts: {kind: grafana}``), what Grafana 9, 10 and 11 all answer:

- now: ``GET /api/prometheus/grafana/api/v1/alerts``, the Prometheus-compatible list of
  every instance of every Grafana-managed rule: ``labels`` (``alertname`` is the rule's
  title, ``grafana_folder`` its folder), ``state`` (``Alerting``, ``Pending``, ``Normal``,
  ``NoData``, ``Error``, ``Recovering``, with an optional `` (reason)``) and ``activeAt``;
- fired since: ``GET /api/annotations?type=alert&from=&to=``, the state history Grafana
  records as annotations by default (``[unified_alerting.state_history] backend =
  annotations``): one per transition, ``newState`` and the text ``<title> {<labels>} -
  <values>``. A Loki-only state history writes none: "fired since" then answers no, so an
  ``alert_resolves`` check fails ("never fired"); it never passes on that.

Dashboards (``backends.dashboards: {kind: grafana}``): ``GET /api/dashboards/uid/{uid}``,
library panels from ``GET /api/library-elements/{uid}``, datasources by name or the
default one from ``/api/datasources``, and a panel's queries through ``POST /api/ds/query``.

grafana-client 3.x speaks requests, synchronously: every call runs in a worker thread.
TLS options reach requests through an adapter carrying readygate's SSL context.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException
from requests.adapters import HTTPAdapter

from core.errors import BackendError
from core.http import HttpFields, ssl_context, warn_insecure
from gates.backends.types import ActiveAlert, QueryAnswer

T = TypeVar("T")

ALERTS_PATH = "/api/prometheus/grafana/api/v1/alerts"
HISTORY_PATH = "/api/annotations?type=alert"
_HISTORY_LIMIT = 5000  # transitions read per look; a full page cannot tell "never fired"
# Grafana's alert states (before any " (reason)") as ActiveAlert states; others are quiet
_STATES = {"alerting": "firing", "recovering": "firing", "pending": "pending"}


class _TlsAdapter(HTTPAdapter):
    """requests' adapter with readygate's SSL context: CA, client cert (and its key's
    password), skip-verify and the SNI server name, as every other backend has them."""

    def __init__(self, context: Any, server_name: str | None) -> None:
        self._context = context
        self._server_name = server_name
        super().__init__()

    def _tls(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["ssl_context"] = self._context
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
        return kwargs

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **self._tls(kwargs))

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, **self._tls(kwargs))

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # the context already holds the CA and client certificate: requests would load
        # certifi's bundle into it on top (trusting more than configured)
        return None


def grafana_api(url: str, *, token: str | None = None, org_id: int | None = None,
                timeout_s: float = 5.0, http: HttpFields | None = None,
                name: str = "grafana") -> GrafanaApi:
    """A grafana-client API for ``url`` (a sub-path is kept) with readygate's TLS, basic
    auth, headers and proxy rules (environment proxies only with ``proxy_from_env``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    prefix = parts.path.strip("/")
    auth: Any = token
    if auth is None and http is not None and http.basic_auth is not None:
        auth = (http.basic_auth.username, http.basic_auth.password.get_secret_value())
    tls = http.tls if http is not None else None
    api = GrafanaApi(auth, host=f"[{host}]" if ":" in host else host, port=parts.port,
                     url_path_prefix=f"{prefix}/" if prefix else "",
                     protocol=parts.scheme or "http", timeout=timeout_s,
                     verify=not (tls is not None and tls.insecure_skip_verify),
                     organization_id=org_id)
    session: requests.Session = api.client.s
    session.trust_env = bool(http is not None and http.proxy_from_env)
    warn_insecure(tls, name)
    session.mount("https://", _TlsAdapter(ssl_context(tls, key=f"{name}.tls"),
                                          tls.server_name if tls is not None else None))
    if http is not None:
        session.headers.update({k: v.get_secret_value() for k, v in http.headers.items()})
    return api


class GrafanaBase:
    """A grafana-client API whose calls run in a thread and fail as :class:`BackendError`."""

    kind = "grafana"

    def __init__(self, api: GrafanaApi, base_url: str) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")

    def close(self) -> None:
        """Close grafana-client's requests session."""
        self.api.client.s.close()

    async def call(self, what: str, fn: Callable[[], T], *, missing_ok: bool = False) -> T | None:
        """``fn()`` in a worker thread; with ``missing_ok`` a 404 answers None."""
        try:
            return await asyncio.to_thread(fn)
        except GrafanaException as exc:
            if missing_ok and exc.status_code == 404:
                return None
            if exc.status_code in (401, 403):
                raise BackendError(f"grafana refused the request ({exc.status_code}) for "
                                   f"{what} at {self.base_url}") from None
            raise BackendError(f"grafana answered {exc.status_code} for {what}: "
                               f"{message_of(exc.response) or 'no message'}") from None
        except requests.exceptions.JSONDecodeError:
            raise BackendError(f"grafana answered non-JSON for {what}") from None
        except requests.RequestException as exc:
            raise BackendError(f"grafana unreachable at {self.base_url}: "
                               f"{type(exc).__name__}") from None


def message_of(body: Any) -> str | None:
    """Grafana's error message in an error answer (``{"message": ...}``), cut short."""
    if isinstance(body, Mapping):
        text = body.get("message") or body.get("error")
        return str(text)[:300] if text else None
    if isinstance(body, str) and body.strip():
        return body.strip().splitlines()[0][:120]
    return None


def _active(raw: Any) -> ActiveAlert | None:
    """An alert instance of the alerts list as an ActiveAlert (None when not active)."""
    labels = {str(k): str(v) for k, v in dict(raw["labels"]).items()
              if not str(k).startswith("__")}
    state = _STATES.get(str(raw["state"]).split("(")[0].strip().lower())
    if state is None:
        return None
    active_at = raw.get("activeAt")
    return ActiveAlert(labels.get("alertname", "?"), state, labels,
                       active_at if isinstance(active_at, str) else None)


def history_matches(item: Mapping[str, Any], alertname: str, labels: dict[str, str]) -> bool:
    """Whether a state-history annotation is ``alertname``'s, its labels a superset of
    ``labels`` (its text is ``<title> {k=v, k=v} - <values>``)."""
    text = str(item.get("text") or "")
    head = f"{alertname} {{"
    if not text.startswith(head):
        return False
    end = text.rfind("} - ")
    padded = f", {text[len(head):end if end >= len(head) else len(text)]}, "
    return all(f", {k}={v}, " in padded for k, v in labels.items())


class GrafanaAlerts(GrafanaBase):
    """Grafana-managed alert state (unified alerting) as an :class:`AlertsBackend`."""

    async def alerts(self) -> list[ActiveAlert]:
        """Alert instances pending or firing now (``Alerting``, ``Recovering``: firing)."""
        body = await self.call(ALERTS_PATH, lambda: self.api.client.GET(
            "/prometheus/grafana/api/v1/alerts"))
        if not isinstance(body, dict) or body.get("status") != "success":
            raise BackendError(f"grafana answered no alert list from {ALERTS_PATH}")
        try:
            found = [_active(a) for a in body["data"]["alerts"] or []]
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BackendError(f"grafana answered a malformed alert list from {ALERTS_PATH}"
                               ) from None
        return [a for a in found if a is not None]

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        """Whether the state history shows the alert entering ``Alerting`` since ``since``."""
        start_ms, end_ms = int(since * 1000), int((time.time() + 1) * 1000)
        items = await self.call(HISTORY_PATH, lambda: self.api.annotations.get_annotation(
            time_from=start_ms, time_to=end_ms, ann_type="alert", limit=_HISTORY_LIMIT))
        if not isinstance(items, list):
            raise BackendError(f"grafana answered no annotation list from {HISTORY_PATH}")
        try:
            for item in items:
                fired = str(item.get("newState") or "").startswith("Alerting")
                if fired and float(item["time"]) >= start_ms and \
                        history_matches(item, alertname, labels):
                    return True
        except (KeyError, TypeError, AttributeError, ValueError):
            raise BackendError(f"grafana answered a malformed annotation from {HISTORY_PATH}"
                               ) from None
        if len(items) >= _HISTORY_LIMIT:
            raise BackendError(f"more than {_HISTORY_LIMIT} alert state changes since the "
                               f"anchor: {alertname}'s may be among those not read")
        return False


def _rows(frame: Any) -> int:
    """Rows of a data frame with a value besides time (``{schema, data: {values}}``)."""
    if not isinstance(frame, Mapping):
        raise ValueError("frame")
    fields = (frame.get("schema") or {}).get("fields") or []
    values = (frame.get("data") or {}).get("values") or []
    kinds = [f.get("type") if isinstance(f, Mapping) else None for f in fields]
    columns = [c for i, c in enumerate(values) if isinstance(c, list)
               and (i >= len(kinds) or kinds[i] != "time")]
    if not columns:  # only time columns (or none): rows are what there is
        return max((len(c) for c in values if isinstance(c, list)), default=0)
    length = max(len(c) for c in columns)
    return sum(1 for row in range(length)
               if any(row < len(c) and c[row] is not None for c in columns))


def answers_of(body: Any) -> dict[str, QueryAnswer]:
    """``/api/ds/query``'s ``results`` by refId (``ValueError`` when there are none)."""
    results = body.get("results") if isinstance(body, Mapping) else None
    if not isinstance(results, Mapping):
        raise ValueError("no results")
    out: dict[str, QueryAnswer] = {}
    for ref_id, result in results.items():
        if not isinstance(result, Mapping):
            raise ValueError("result")
        error = result.get("error")
        status = result.get("status")
        if not error and isinstance(status, int) and status >= 400:
            error = f"status {status}"
        frames = result.get("frames") or []
        if not isinstance(frames, list):
            raise ValueError("frames")
        out[str(ref_id)] = QueryAnswer(str(ref_id), sum(_rows(f) for f in frames),
                                       str(error)[:300] if error else None)
    return out


class GrafanaDashboards(GrafanaBase):
    """Dashboards, library panels, datasources and panel queries as a
    :class:`DashboardsBackend`."""

    def __init__(self, api: GrafanaApi, base_url: str) -> None:
        super().__init__(api, base_url)
        self._datasources: dict[str, dict[str, Any] | None] = {}

    async def dashboard(self, uid: str) -> dict[str, Any] | None:
        """The dashboard's JSON model (None when no dashboard has that uid)."""
        path = f"/api/dashboards/uid/{uid}"
        body = await self.call(path, lambda: self.api.dashboard.get_dashboard(quote(uid, "")),
                               missing_ok=True)
        if body is None:
            return None
        model = body.get("dashboard") if isinstance(body, dict) else None
        if not isinstance(model, dict):
            raise BackendError(f"grafana answered no dashboard model from {path}")
        return model

    async def library_panel(self, uid: str) -> dict[str, Any] | None:
        """A library panel's model (None when there is none with that uid)."""
        path = f"/api/library-elements/{uid}"
        body = await self.call(path, lambda: self.api.client.GET(
            f"/library-elements/{quote(uid, '')}"), missing_ok=True)
        if body is None:
            return None
        model = (body.get("result") or {}).get("model") if isinstance(body, dict) else None
        if not isinstance(model, dict):
            raise BackendError(f"grafana answered no library panel model from {path}")
        return model

    async def datasource(self, ref: Any) -> dict[str, Any] | None:
        """``{uid, type}`` of a panel's datasource reference: an object with a uid, a name
        or uid string (older dashboards), or None for the default datasource."""
        if isinstance(ref, Mapping) and ref.get("uid"):
            return {"uid": str(ref["uid"]), **({"type": ref["type"]} if ref.get("type") else {})}
        key = "" if ref is None else str(ref.get("type", "")) if isinstance(ref, Mapping) \
            else str(ref)
        if key not in self._datasources:
            self._datasources[key] = await self._lookup(ref, key)
        return self._datasources[key]

    async def _lookup(self, ref: Any, key: str) -> dict[str, Any] | None:
        if isinstance(ref, str):
            # older dashboards name the datasource; some write its uid as a plain string
            lookups = (("name", self.api.datasource.get_datasource_by_name),
                       ("uid", self.api.datasource.get_datasource_by_uid))
            for what, get in lookups:
                body = await self.call(f"/api/datasources/{what}/{ref}",
                                       functools.partial(get, quote(ref, "")), missing_ok=True)
                if isinstance(body, dict) and body.get("uid"):
                    return {"uid": str(body["uid"]), "type": body.get("type")}
            return None
        # no uid: the default datasource (of the given type, where one is named)
        listed = await self.call("/api/datasources", self.api.datasource.list_datasources)
        if not isinstance(listed, list):
            raise BackendError("grafana answered no datasource list from /api/datasources")
        for ds in listed:
            if isinstance(ds, dict) and ds.get("uid") and (
                    ds.get("type") == key if key else ds.get("isDefault")):
                return {"uid": str(ds["uid"]), "type": ds.get("type")}
        return None

    async def query(self, queries: list[dict[str, Any]], start: float,
                    end: float) -> dict[str, QueryAnswer]:
        """Each query's answer by refId, run together as Grafana runs a panel's queries.

        A query Grafana could run but that failed (bad expression, datasource down or
        gone) answers with its message; Grafana itself failing raises BackendError.
        """
        body = {"queries": queries, "from": str(int(start * 1000)),
                "to": str(int(end * 1000))}
        try:
            answer = await asyncio.to_thread(self.api.client.POST, "/ds/query", json=body)
        except GrafanaException as exc:
            if exc.status_code in (401, 403):
                raise BackendError(f"grafana refused the request ({exc.status_code}) for "
                                   f"/api/ds/query at {self.base_url}") from None
            try:  # errors per query come back as 400 (207 with multi-status) with results
                return answers_of(exc.response)
            except ValueError:
                pass
            message = message_of(exc.response)
            if message is None or not isinstance(exc.response, Mapping):
                raise BackendError(f"grafana answered {exc.status_code} for /api/ds/query"
                                   ) from None
            return {str(q.get("refId")): QueryAnswer(str(q.get("refId")), 0,
                                                     f"{exc.status_code}: {message}")
                    for q in queries}
        except requests.exceptions.JSONDecodeError:
            raise BackendError("grafana answered non-JSON for /api/ds/query") from None
        except requests.RequestException as exc:
            raise BackendError(f"grafana unreachable at {self.base_url}: "
                               f"{type(exc).__name__}") from None
        try:
            return answers_of(answer)
        except (ValueError, TypeError, AttributeError):
            raise BackendError("grafana answered a malformed /api/ds/query result") from None
