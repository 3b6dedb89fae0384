"""The demo ``storage`` service: keeps uploaded objects in memory.

``python -m demo.storage --sink-url URL [--otlp-url URL] [--host 127.0.0.1] [--port 0]``
prints ``READY <url>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.serve import run_asgi
from demo.telemetry import ObservabilityMiddleware, Telemetry, sabotage_or_exit


def create_app(telemetry: Telemetry) -> Starlette:
    """The storage ASGI app, reporting through ``telemetry``."""
    objects: dict[str, bytes] = {}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "objects": len(objects)})

    async def put_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        body = await request.body()
        objects[object_id] = body
        digest = hashlib.sha256(body).hexdigest()
        telemetry.log.info("object stored", extra={"fields": {
            "object_id": object_id, "size": len(body)}})
        return JSONResponse({"id": object_id, "size": len(body), "sha256": digest},
                            status_code=201)

    async def get_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        if object_id not in objects:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(objects[object_id], media_type="application/octet-stream")

    async def delete_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        if objects.pop(object_id, None) is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        telemetry.log.info("object deleted", extra={"fields": {"object_id": object_id}})
        return Response(status_code=204)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        telemetry.log.info("storage started")
        yield
        telemetry.log.info("storage stopping")
        telemetry.shutdown()

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/objects/{object_id}", put_object, methods=["PUT"]),
        Route("/objects/{object_id}", get_object, methods=["GET"]),
        Route("/objects/{object_id}", delete_object, methods=["DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(ObservabilityMiddleware, telemetry=telemetry, routes=lambda: routes)])


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m demo.storage``."""
    parser = argparse.ArgumentParser(prog="demo.storage", description=__doc__)
    parser.add_argument("--sink-url", required=True)
    parser.add_argument("--otlp-url", help="where OTLP traces and logs go (default: the sink)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sabotage = sabotage_or_exit(os.environ.get("DEMO_SABOTAGE"), "demo.storage")
    telemetry = Telemetry("storage", args.sink_url, sabotage, otlp_url=args.otlp_url)
    run_asgi(create_app(telemetry), args.host, args.port)


if __name__ == "__main__":
    main()
