"""A fake Grafana (9-11) speaking the documented REST formats readygate reads and writes.

- ``GET /api/prometheus/grafana/api/v1/alerts``: Grafana-managed alert instances
  (``{"status": "success", "data": {"alerts": [{labels, annotations, state, activeAt,
  value}]}}``, states ``Alerting``/``Pending``/``Normal``/... with an optional reason);
- ``GET /api/annotations``: the alert state history (``type=alert``, ``from``/``to`` in
  ms, ``limit``), text ``<title> {<labels>} - <values>`` as Grafana writes it;
- ``POST /api/annotations``: annotations written (``{"message": "Annotation added", "id"}``);
- ``GET /api/dashboards/uid/{uid}`` (``{"dashboard": {...}, "meta": {...}}``),
  ``GET /api/library-elements/{uid}`` (``{"result": {"model": {...}}}``),
  ``GET /api/datasources``, ``/api/datasources/name/{name}``, ``/api/datasources/uid/{uid}``;
- ``POST /api/ds/query``: ``{"results": {refId: {"status", "frames": [{schema, data}]}}}``;
  a query that errors answers 400 with the same shape and ``error`` on its result.

Every request must carry ``Authorization: Bearer <token>`` (else 401, as Grafana answers);
with ``org_id`` set, also ``X-Grafana-Org-Id`` (else 401). ``garbage`` answers HTML.
"""

from __future__ import annotations

import datetime as dt
import itertools
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route


def closed_url() -> str:
    """A loopback URL nothing listens on (a free port, bound then released): Grafana down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def rfc3339(ts: float) -> str:
    """A time as Grafana writes ``activeAt``: RFC 3339 with nanoseconds."""
    whole = dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((ts % 1) * 1e9):09d}Z"


@dataclass
class Series:
    """What a query (by its expr) answers: rows from ``after`` on, or an error."""

    rows: int = 0
    error: str | None = None
    after: float = 0.0


@dataclass
class FakeGrafana:
    """Grafana's alerting, annotations, dashboards and datasource query APIs in memory."""

    token: str
    org_id: int | None = None
    garbage: bool = False
    alerts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    library: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)  # /api/ds/query bodies seen
    fail_writes: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- state ------------------------------------------------------------------------
    def alert(self, name: str, state: str, active_at: float, **labels: str) -> None:
        """An alert instance of rule ``name`` in ``state`` (Alerting, Pending, Normal...)."""
        self.alerts.append({
            "labels": {"alertname": name, "grafana_folder": "ops", **labels},
            "annotations": {"summary": f"{name} summary"}, "state": state,
            "activeAt": rfc3339(active_at), "value": "1e+00"})

    def transition(self, name: str, new_state: str, at: float, prev: str = "Normal",
                   **labels: str) -> None:
        """A state change in the history, as Grafana's annotation historian records it."""
        all_labels = {"alertname": name, "grafana_folder": "ops", **labels}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(all_labels.items()))
        self.history.append({
            "id": next(self._ids), "alertId": 7, "alertName": "", "dashboardId": 0,
            "dashboardUID": "", "panelId": 0, "userId": 0, "newState": new_state,
            "prevState": prev, "created": int(at * 1000), "updated": int(at * 1000),
            "time": int(at * 1000), "timeEnd": int(at * 1000),
            "text": f"{name} {{{shown}}} - B=0.300000, C=1.000000", "tags": [], "login": "",
            "email": "", "avatarUrl": "", "data": {"values": {"B": 0.3, "C": 1}}})

    def datasource(self, uid: str, name: str, kind: str = "prometheus", *,
                   default: bool = False) -> None:
        self.datasources.append({"id": len(self.datasources) + 1, "uid": uid, "name": name,
                                 "type": kind, "access": "proxy", "isDefault": default,
                                 "orgId": 1, "url": "http://prometheus:9090"})

    # -- the app ----------------------------------------------------------------------
    def _refused(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        if self.org_id is not None and request.headers.get("x-grafana-org-id") != \
                str(self.org_id):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        if self.garbage:
            return HTMLResponse("<html><body>502 Bad Gateway</body></html>")
        return None

    def _frame(self, ref_id: str, rows: int) -> dict[str, Any]:
        now = int(time.time() * 1000)
        times = [now - 15000 * (rows - i) for i in range(rows)]
        return {"schema": {"refId": ref_id, "meta": {"type": "timeseries-multi"},
                           "fields": [{"name": "Time", "type": "time"},
                                      {"name": "Value", "type": "number",
                                       "labels": {"service": "web"}}]},
                "data": {"values": [times, [1.5] * rows]}}

    def _answer(self, query: dict[str, Any]) -> dict[str, Any]:
        ref_id = str(query.get("refId", "A"))
        expr = str(query.get("expr") or query.get("query") or "")
        found = self.series.get(expr)
        if found is None or time.time() < found.after:
            # Prometheus answers an empty vector: Grafana sends a frame without rows
            return {"status": 200, "frames": [{"schema": {"refId": ref_id, "fields": []},
                                               "data": {"values": []}}]}
        if found.error:
            return {"error": found.error, "errorSource": "downstream", "status": 400,
                    "frames": []}
        return {"status": 200, "frames": [self._frame(ref_id, found.rows)]}

    def app(self) -> Starlette:
        def guarded(handler: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                refused = self._refused(request)
                return refused if refused is not None else await handler(request)
            return endpoint

        async def alerts(request: Request) -> Response:
            return JSONResponse({"status": "success", "data": {"alerts": self.alerts}})

        async def find_annotations(request: Request) -> Response:
            q = request.query_params
            start, end = int(q.get("from", 0)), int(q.get("to", 2**62))
            limit = int(q.get("limit", 100))
            items = [a for a in self.history if start <= a["time"] <= end
                     and (q.get("type") != "annotation")]
            items.sort(key=lambda a: a["time"], reverse=True)
            return JSONResponse(items[:limit])

        async def add_annotation(request: Request) -> Response:
            body = await request.json()
            if self.fail_writes:
                return JSONResponse({"message": "Failed to save annotation"}, status_code=500)
            if not isinstance(body.get("time"), int) or not isinstance(body.get("text"), str):
                return JSONResponse({"message": "bad request data"}, status_code=400)
            uid = body.get("dashboardUID")
            if uid and uid not in self.dashboards:
                return JSONResponse({"message": "Dashboard not found"}, status_code=404)
            ident = next(self._ids)
            self.written.append({"id": ident, **body})
            return JSONResponse({"message": "Annotation added", "id": ident})

        async def dashboard(request: Request) -> Response:
            uid = request.path_params["uid"]
            if uid not in self.dashboards:
                return JSONResponse({"message": "Dashboard not found"}, status_code=404)
            return JSONResponse({"dashboard": self.dashboards[uid],
                                 "meta": {"slug": uid, "folderTitle": "ops", "version": 3}})

        async def library_element(request: Request) -> Response:
            uid = request.path_params["uid"]
            if uid not in self.library:
                return JSONResponse({"message": "library element could not be found"},
                                    status_code=404)
            return JSONResponse({"result": {"uid": uid, "name": uid, "kind": 1,
                                            "model": self.library[uid]}})

        async def list_datasources(request: Request) -> Response:
            return JSONResponse(self.datasources)

        def one_datasource(key: str) -> Any:
            async def get(request: Request) -> Response:
                wanted = request.path_params["value"]
                for ds in self.datasources:
                    if ds[key] == wanted:
                        return JSONResponse(ds)
                return JSONResponse({"message": "Data source not found"}, status_code=404)
            return get

        async def ds_query(request: Request) -> Response:
            body = await request.json()
            self.queries.append(body)
            queries = body.get("queries")
            if not isinstance(queries, list) or not queries or "from" not in body:
                return JSONResponse({"message": "bad request data"}, status_code=400)
            known = {ds["uid"] for ds in self.datasources} | {"__expr__"}
            if any((q.get("datasource") or {}).get("uid") not in known for q in queries):
                return JSONResponse({"message": "Data source not found"}, status_code=404)
            results = {str(q.get("refId", "A")): self._answer(q) for q in queries}
            failed = any(r.get("error") for r in results.values())
            return JSONResponse({"results": results}, status_code=400 if failed else 200)

        return Starlette(routes=[
            Route("/api/prometheus/grafana/api/v1/alerts", guarded(alerts)),
            Route("/api/annotations", guarded(find_annotations), methods=["GET"]),
            Route("/api/annotations", guarded(add_annotation), methods=["POST"]),
            Route("/api/dashboards/uid/{uid}", guarded(dashboard)),
            Route("/api/library-elements/{uid}", guarded(library_element)),
            Route("/api/datasources", guarded(list_datasources)),
            Route("/api/datasources/name/{value}", guarded(one_datasource("name"))),
            Route("/api/datasources/uid/{value}", guarded(one_datasource("uid"))),
            Route("/api/ds/query", guarded(ds_query), methods=["POST"]),
        ])
