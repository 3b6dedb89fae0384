"""A fake Opsgenie Alert API v2: ``GET /v2/alerts`` (list alerts) in the documented shape.

Requires ``Authorization: GenieKey <key>``. The search ``query`` understands what readygate
sends: ``createdAt > <epoch ms>`` (also ``<``, ``>=``, ``<=``), ``field: value`` for
``status``, ``tag`` and ``teams``, joined by ``AND``. Paging with ``offset``/``limit``
(at most 100), ``sort=createdAt``, ``order``; answers ``{"data", "paging", "took",
"requestId"}``. Alerts are created as Alertmanager's ``opsgenie_configs`` would (its
default message is the notification's subject) and closed by alias.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

_CLAUSE = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<|:|=)\s*(.+?)\s*$")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _matcher(query: str) -> Any:
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()) if query.strip() else []:
        m = _CLAUSE.match(part.strip("() "))
        if m is None:
            raise ValueError(f"cannot parse {part!r}")
        clauses.append(m.groups())

    def match(alert: dict[str, Any]) -> bool:
        for name, op, value in clauses:
            if name == "createdAt":
                at, want = _ms(alert["createdAt"]), float(value)
                if not {">": at > want, "<": at < want, ">=": at >= want,
                        "<=": at <= want}.get(op, at == want):
                    return False
            elif name == "status":
                if alert["status"] != value:
                    return False
            elif name in ("tag", "tags"):
                if value not in alert["tags"]:
                    return False
            elif name == "teams":
                if value not in alert.get("_teams", []):
                    return False
            else:
                raise ValueError(f"unknown field {name!r}")
        return True
    return match


@dataclass
class FakeOpsgenie:
    """Alerts of one account; ``mode`` breaks it ("garbage", "500")."""

    key: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "ok"
    queries: list[str] = field(default_factory=list)

    def create(self, message: str, *, at: float | None = None, alias: str | None = None,
               tags: list[str] | None = None, teams: list[str] | None = None
               ) -> dict[str, Any]:
        """Create an alert, or count another occurrence of the open one with ``alias``."""
        at = at or time.time()
        alias = alias or uuid.uuid4().hex
        for alert in self.alerts:
            if alert["alias"] == alias and alert["status"] == "open":
                alert.update(count=alert["count"] + 1, lastOccurredAt=iso(at),
                             updatedAt=iso(at))
                return alert
        alert = {"id": str(uuid.uuid4()), "tinyId": str(len(self.alerts) + 1), "alias": alias,
                 "message": message, "status": "open", "acknowledged": False,
                 "isSeen": False, "tags": tags or [], "snoozed": False, "count": 1,
                 "lastOccurredAt": iso(at), "createdAt": iso(at), "updatedAt": iso(at),
                 "source": "http://alertmanager:9093", "owner": "", "priority": "P3",
                 "responders": [{"type": "team", "id": "t1"}],
                 "integration": {"id": "i1", "name": "Alertmanager", "type": "Prometheus"},
                 "report": {}, "_teams": teams or []}
        self.alerts.append(alert)
        return alert

    def close(self, alert: dict[str, Any], *, at: float | None = None) -> None:
        """Close as ``POST /v2/alerts/{alias}/close?identifierType=alias`` does."""
        at = at or time.time()
        created = _ms(alert["createdAt"]) / 1000
        alert.update(status="closed", updatedAt=iso(at), report={
            **alert["report"], "closeTime": int((at - created) * 1000), "closedBy": "System"})

    def app(self) -> Starlette:
        async def list_alerts(request: Request) -> Response:
            if request.headers.get("authorization") != f"GenieKey {self.key}":
                return JSONResponse({"message": "Could not authenticate", "took": 0.0,
                                     "requestId": str(uuid.uuid4())}, status_code=401)
            if self.mode == "garbage":
                return PlainTextResponse("<html>maintenance</html>")
            if self.mode == "500":
                return JSONResponse({"message": "Internal error", "took": 0.0}, 500)
            params = request.query_params
            self.queries.append(params.get("query", ""))
            try:
                match = _matcher(params.get("query", ""))
            except ValueError as exc:
                return JSONResponse({"message": f"Invalid query: {exc}", "took": 0.0}, 422)
            limit, offset = int(params.get("limit", 20)), int(params.get("offset", 0))
            if limit > 100:
                return JSONResponse({"message": "limit must be at most 100"}, 422)
            found = [a for a in self.alerts if match(a)]
            found.sort(key=lambda a: a.get(params.get("sort", "createdAt")) or "",
                       reverse=params.get("order", "desc") == "desc")
            page = [{k: v for k, v in a.items() if not k.startswith("_")}
                    for a in found[offset:offset + limit]]
            base = f"{request.base_url}v2/alerts?limit={limit}"
            paging = {"first": f"{base}&offset=0", "last": f"{base}&offset="
                      f"{max(0, (len(found) - 1) // limit * limit)}"}
            if offset + limit < len(found):
                paging["next"] = f"{base}&offset={offset + limit}"
            return JSONResponse({"data": page, "paging": paging, "took": 0.05,
                                 "requestId": str(uuid.uuid4())})

        return Starlette(routes=[Route("/v2/alerts", list_alerts, methods=["GET"])])
