"""A fake Toxiproxy API server: proxies and toxics as Toxiproxy's REST API documents them.

Routes (Toxiproxy 2.x): ``GET /version``, ``GET|POST /proxies``, ``GET|POST|DELETE
/proxies/{proxy}``, ``GET|POST /proxies/{proxy}/toxics``, ``GET|POST|DELETE
/proxies/{proxy}/toxics/{toxic}``, ``POST /reset``. Errors are ``{"error": ..., "status": N}``
with 404 for unknown names and 409 for duplicates, as the real server answers. It keeps state
only (it forwards no bytes); tests read the state through the same API.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

_TOXIC_TYPES = {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                "limit_data"}


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


class FakeToxiproxy:
    """The app plus its state: ``proxies[name] = {name, listen, upstream, enabled, toxics}``."""

    def __init__(self) -> None:
        self.proxies: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(routes=[
            Route("/version", self._version, methods=["GET"]),
            Route("/reset", self._reset, methods=["POST"]),
            Route("/proxies", self._proxies, methods=["GET", "POST"]),
            Route("/proxies/{proxy}", self._proxy, methods=["GET", "POST", "PATCH", "DELETE"]),
            Route("/proxies/{proxy}/toxics", self._toxics, methods=["GET", "POST"]),
            Route("/proxies/{proxy}/toxics/{toxic}", self._toxic,
                  methods=["GET", "POST", "PATCH", "DELETE"]),
        ])

    async def _body(self, request: Request) -> dict[str, Any] | None:
        self.requests.append((request.method, request.url.path))
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def _version(self, request: Request) -> Response:
        return PlainTextResponse("2.9.0")

    async def _reset(self, request: Request) -> Response:
        await self._body(request)
        for proxy in self.proxies.values():
            proxy["enabled"] = True
            proxy["toxics"] = []
        return Response(status_code=204)

    async def _proxies(self, request: Request) -> Response:
        data = await self._body(request)
        if request.method == "GET":
            return JSONResponse(self.proxies)
        if data is None or not data.get("name") or not data.get("upstream"):
            return _err(400, "bad request body")
        if data["name"] in self.proxies:
            return _err(409, "proxy already exists")
        proxy = {"name": data["name"], "listen": data.get("listen", "127.0.0.1:0"),
                 "upstream": data["upstream"], "enabled": data.get("enabled", True),
                 "toxics": []}
        self.proxies[proxy["name"]] = proxy
        return JSONResponse(proxy, status_code=201)

    async def _proxy(self, request: Request) -> Response:
        data = await self._body(request)
        proxy = self.proxies.get(request.path_params["proxy"])
        if proxy is None:
            return _err(404, "proxy not found")
        if request.method == "DELETE":
            del self.proxies[proxy["name"]]
            return Response(status_code=204)
        if request.method in ("POST", "PATCH"):
            if data is None:
                return _err(400, "bad request body")
            for key in ("enabled", "listen", "upstream"):
                if key in data:
                    proxy[key] = data[key]
        return JSONResponse(proxy)

    async def _toxics(self, request: Request) -> Response:
        data = await self._body(request)
        proxy = self.proxies.get(request.path_params["proxy"])
        if proxy is None:
            return _err(404, "proxy not found")
        if request.method == "GET":
            return JSONResponse(proxy["toxics"])
        if data is None or data.get("type") not in _TOXIC_TYPES:
            return _err(400, "bad request body")
        stream = data.get("stream", "downstream")
        if stream not in ("upstream", "downstream"):
            return _err(400, "stream was invalid, can be either upstream or downstream")
        name = data.get("name") or f"{data['type']}_{stream}"
        if any(t["name"] == name for t in proxy["toxics"]):
            return _err(409, "toxic already exists")
        toxic = {"name": name, "type": data["type"], "stream": stream,
                 "toxicity": data.get("toxicity", 1.0), "attributes": data.get("attributes", {})}
        proxy["toxics"].append(toxic)
        return JSONResponse(toxic)

    async def _toxic(self, request: Request) -> Response:
        data = await self._body(request)
        proxy = self.proxies.get(request.path_params["proxy"])
        if proxy is None:
            return _err(404, "proxy not found")
        toxic = next((t for t in proxy["toxics"] if t["name"] == request.path_params["toxic"]),
                     None)
        if toxic is None:
            return _err(404, "toxic not found")
        if request.method == "DELETE":
            proxy["toxics"].remove(toxic)
            return Response(status_code=204)
        if request.method in ("POST", "PATCH") and data:
            toxic["attributes"].update(data.get("attributes", {}))
            if "toxicity" in data:
                toxic["toxicity"] = data["toxicity"]
        return JSONResponse(toxic)
