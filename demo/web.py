"""The demo ``web`` service: login, upload, health, runbook and frontend pages in front of storage.

``python -m demo.web --storage-url URL --sink-url URL [--otlp-url URL] [--host 127.0.0.1]
[--port 0]`` prints ``READY <url>``. The password comes from ``DEMO_PASSWORD`` (never
argv), the user name from ``DEMO_USER`` (default ``demo``), sabotage knobs from
``DEMO_SABOTAGE``. OTLP goes to ``--otlp-url`` (default: the sink).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core import __version__
from core.serve import run_asgi
from demo.telemetry import (
    ObservabilityMiddleware,
    Telemetry,
    request_id_var,
    sabotage_or_exit,
)

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrftoken"
HEALTH_TIMEOUT_S = 1.0
STORAGE_TIMEOUT_S = 5.0
# Bounded so a probe hammering GET /login cannot grow memory without limit.
MAX_CSRF_TOKENS = 10_000

# The page's browser SDKs (@sentry/browser, posthog-js), bundled at build time by
# scripts/build-demo-frontend.sh from the pinned demo/frontend/package-lock.json.
FRONTEND_BUNDLE = Path(__file__).parent / "frontend" / "dist" / "demo-frontend.js"
FRONTEND_SERVICE = "web-frontend"
FRONTEND_SENTRY_PROJECT = 3  # the backend services are Sentry projects 1 and 2
FRONTEND_POSTHOG_KEY = "phc_readygate_demo"  # a PostHog project key is public by design
FRONTEND_ENVIRONMENT = "demo"

RUNBOOKS: dict[str, tuple[str, str]] = {
    "ServiceDown": ("A demo service stopped answering its scrape.",
                    "Check the process is running; restart it; look at its last log lines."),
    "HighErrorRate": ("More than 5% of requests answer 5xx.",
                      "Find the failing route in http_requests_total; follow a trace id from "
                      "the error events to the failing dependency."),
    "SlowRequests": ("The 95th percentile request duration is above its threshold.",
                     "Compare web and storage spans of a slow trace to find where time goes."),
    "UploadFailureSpike": ("Uploads are failing (demo_uploads_total{result=\"failure\"}).",
                           "Check storage health and the 'storage failed' error events."),
}


class StorageError(Exception):
    """The storage service failed or could not be reached."""


@dataclass
class WebConfig:
    """What the web service needs to run: where storage and the sink are, who may log in."""

    storage_url: str
    sink_url: str
    user: str
    password: str
    sabotage: frozenset[str] = field(default_factory=frozenset)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>", status_code=status)


def frontend_settings(config: WebConfig) -> dict[str, Any]:
    """What the page's browser SDKs are told: the sink as Sentry DSN and PostHog host, the
    release and environment they tag events with."""
    sink = urlsplit(config.sink_url)
    return {
        "sentry_dsn": f"{sink.scheme}://readygate@{sink.netloc}/{FRONTEND_SENTRY_PROJECT}",
        "posthog_host": config.sink_url.rstrip("/"), "posthog_key": FRONTEND_POSTHOG_KEY,
        "release": f"readygate-demo@{__version__}", "environment": FRONTEND_ENVIRONMENT,
        "service": FRONTEND_SERVICE,
        # Sabotage: both SDKs drop every report before sending it (beforeSend returns null).
        "drop_reports": "no_frontend_error_reporting" in config.sabotage,
    }


def frontend_page(settings: dict[str, Any]) -> HTMLResponse:
    """The page whose button throws a JavaScript error, tied to the request's trace.

    ``sentry-trace`` and ``baggage`` (Sentry's names) and ``traceparent`` carry the trace of
    the request that rendered the page, so the browser SDKs' events carry the trace id of the
    probe that loaded it.
    """
    ctx = trace.get_current_span().get_span_context()
    trace_id, span_id = trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)
    sampled = "1" if ctx.trace_flags.sampled else "0"
    baggage = ",".join(f"sentry-{k}={quote(str(v), safe='')}" for k, v in (
        ("trace_id", trace_id), ("environment", settings["environment"]),
        ("release", settings["release"]), ("public_key", "readygate"),
        ("sampled", "true" if sampled == "1" else "false")))
    page_settings = {**settings, "request_id": request_id_var.get()}
    # JSON inside <script>: "<" escaped so no value can close the element.
    data = json.dumps(page_settings).replace("<", "\\u003c")
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='sentry-trace' content='{trace_id}-{span_id}-{sampled}'>"
        f"<meta name='baggage' content='{html.escape(baggage)}'>"
        f"<meta name='traceparent' content='00-{trace_id}-{span_id}-0{sampled}'>"
        "<title>Frontend</title></head><body><h1>Frontend</h1>"
        "<p>The button throws an uncaught JavaScript error; the page's error trackers"
        " (Sentry and PostHog, reporting to readygate's sink) must report it.</p>"
        "<button type='button' id='throw-error'>Throw a JavaScript error</button>"
        "<p id='report-status' role='status'></p>"
        f"<script id='readygate-frontend' type='application/json'>{data}</script>"
        "<script src='/static/demo-frontend.js'></script></body></html>")


def create_app(config: WebConfig, telemetry: Telemetry) -> Starlette:
    """The web ASGI app, talking to storage at ``config.storage_url``."""
    sabotage = config.sabotage
    sessions: dict[str, str] = {}
    csrf_tokens: OrderedDict[str, None] = OrderedDict()
    logins_total = Counter("demo_logins_total", "Login attempts.", ["result"],
                           registry=telemetry.registry)
    uploads_total = Counter("demo_uploads_total", "Upload attempts.", ["result"],
                            registry=telemetry.registry)
    for result in ("success", "failure"):
        # Pre-create both series so rate() over them exists before the first failure.
        logins_total.labels(result)
        uploads_total.labels(result)
    state: dict[str, httpx.AsyncClient] = {}

    def client() -> httpx.AsyncClient:
        return state["client"]

    # ---- storage calls ------------------------------------------------------------

    async def storage_call(method: str, route: str, path: str, *, content: bytes | None = None,
                           timeout: float = STORAGE_TIMEOUT_S) -> httpx.Response:
        """One call to storage inside a CLIENT span, carrying the trace context."""
        url = config.storage_url.rstrip("/") + path
        with telemetry.tracer.start_as_current_span(
                f"{method} storage {route}", kind=SpanKind.CLIENT, attributes={
                    "http.request.method": method, "url.full": url,
                    "server.address": httpx.URL(url).host, "peer.service": "storage"},
                record_exception=False, set_status_on_exception=False) as span:
            headers: dict[str, str] = {}
            telemetry.inject(headers)
            try:
                resp = await client().request(method, url, content=content, headers=headers,
                                              timeout=timeout)
            except httpx.HTTPError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise StorageError(f"storage unreachable: {type(exc).__name__}") from exc
            span.set_attribute("http.response.status_code", resp.status_code)
            if resp.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {resp.status_code}"))
            return resp

    async def storage_ok() -> bool:
        try:
            resp = await storage_call("GET", "/health", "/health", timeout=HEALTH_TIMEOUT_S)
        except StorageError:
            return False
        return resp.status_code == 200

    def storage_failed(exc: Exception) -> Response:
        """Log, report and answer a failed storage call."""
        uploads_total.labels("failure").inc()
        level = "info" if "errors_at_info" in sabotage else "error"
        getattr(telemetry.log, level)("storage failed", extra={"fields": {
            "error.type": type(exc).__name__, "error.message": str(exc)}})
        telemetry.report_error(exc)
        return JSONResponse({"error": "storage failed"}, status_code=502)

    # ---- auth -----------------------------------------------------------------------

    def check_credentials(username: str, password: str) -> bool:
        # Compare both, always, so timing does not tell which one was wrong.
        user_ok = hmac.compare_digest(username.encode(), config.user.encode())
        pass_ok = hmac.compare_digest(password.encode(), config.password.encode())
        return user_ok and pass_ok

    def login_attempt(username: str, password: str, via: str) -> str | None:
        """Check credentials, count and log the attempt; a new session token on success."""
        if "leak_password" in sabotage:
            # Deliberate defect: readygate's secret scan must catch this line.
            telemetry.log.info(f"login attempt user={username} password={password}",
                               extra={"fields": {"user": username, "password": password}})
        leak_encoded(username, password)
        if not check_credentials(username, password):
            logins_total.labels("failure").inc()
            telemetry.log.warning("login failed", extra={"fields": {"user": username,
                                                                     "via": via}})
            return None
        logins_total.labels("success").inc()
        token = secrets.token_urlsafe(32)
        sessions[token] = username
        telemetry.log.info("login succeeded", extra={"fields": {"user": username, "via": via}})
        return token

    def leak_encoded(username: str, password: str) -> None:
        """Deliberate defects (sabotage knobs): the password logged encoded, as real services
        leak it; readygate's secret scan must catch every one."""
        credentials = {"username": username, "password": password}
        if "leak_password_url" in sabotage:
            telemetry.log.info(f"login form body {urlencode(credentials)}")
            telemetry.log.info("login redirect", extra={"fields": {
                "url.query": "next=/upload&" + urlencode(credentials, quote_via=quote)}})
        if "leak_password_basic" in sabotage:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            telemetry.log.info("login request headers", extra={"fields": {
                "http.request.header.authorization": f"Basic {token}"}})
        if "leak_password_json" in sabotage:
            telemetry.log.info(f"login request body {json.dumps(credentials)}")
        if "leak_password_split" in sabotage:
            half = len(password) // 2
            telemetry.log.info("login attempt", extra={"fields": {
                "user": username, "pw_head": password[:half], "pw_tail": password[half:]}})

    def authenticated_user(request: Request) -> str | None:
        token = request.cookies.get(SESSION_COOKIE)
        if token and token in sessions:
            return sessions[token]
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip() in sessions:
            return sessions[value.strip()]
        basic = basic_credentials(request)
        if basic is not None and check_credentials(*basic):
            return basic[0]
        return None

    def set_session(resp: Response, token: str) -> None:
        resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/")

    def new_csrf_token() -> str:
        token = secrets.token_urlsafe(24)
        csrf_tokens[token] = None
        while len(csrf_tokens) > MAX_CSRF_TOKENS:
            csrf_tokens.popitem(last=False)
        return token

    def csrf_ok(request: Request, submitted: str) -> bool:
        # Double submit: the form field must equal the cookie, and be one we issued.
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return (bool(submitted) and hmac.compare_digest(submitted, cookie)
                and submitted in csrf_tokens)

    # ---- health -----------------------------------------------------------------------

    async def health(request: Request) -> Response:
        if "health_ignores_storage" in sabotage:
            return JSONResponse({"status": "ok", "checks": {"storage": "ok"}})
        ok = await storage_ok()
        return JSONResponse({"status": "ok" if ok else "degraded",
                             "checks": {"storage": "ok" if ok else "down"}},
                            status_code=200 if ok else 503)

    async def health_live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def health_ready(request: Request) -> Response:
        if "ready_always_200" in sabotage:
            return JSONResponse({"status": "ready"})
        ok = await storage_ok()
        return JSONResponse({"status": "ready" if ok else "not ready"},
                            status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    # ---- HTML login / upload ------------------------------------------------------

    async def login_page(request: Request) -> Response:
        token = new_csrf_token()
        resp = _page("Log in", (
            "<form method='post' action='/login'>"
            f"<input type='hidden' name='csrf_token' value='{token}'>"
            "<label>Username <input name='username' id='username' autocomplete='username'>"
            "</label>"
            "<label>Password <input type='password' name='password' id='password'"
            " autocomplete='current-password'></label>"
            "<button type='submit' id='login'>Log in</button></form>"))
        resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
        return resp

    async def login_submit(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        if not csrf_ok(request, str(form.get("csrf_token") or "")):
            logins_total.labels("failure").inc()
            telemetry.log.warning("login rejected: bad csrf token")
            return _page("Login failed", "<p class='error'>Invalid or missing CSRF token."
                         " <a href='/login'>Try again</a>.</p>", status=401)
        token = login_attempt(username, password, "form")
        if token is None:
            return _page("Login failed", "<p class='error'>Invalid username or password."
                         " <a href='/login'>Try again</a>.</p>", status=401)
        resp = RedirectResponse("/upload", status_code=303)
        set_session(resp, token)
        return resp

    async def upload_page(request: Request) -> Response:
        user = authenticated_user(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return _page("Upload", (
            f"<p>Logged in as {html.escape(user)}.</p>"
            "<form method='post' action='/upload' enctype='multipart/form-data'>"
            "<input type='file' name='file' id='file'>"
            "<button type='submit' id='upload'>Upload</button></form>"))

    async def store_upload(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        """Store the multipart ``file`` field; (result, None) or (None, error response)."""
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return None, JSONResponse({"error": "multipart field 'file' is required"},
                                      status_code=400)
        data = await upload.read()
        object_id = uuid.uuid4().hex
        try:
            resp = await storage_call("PUT", "/objects/{id}", f"/objects/{object_id}",
                                      content=data)
            if resp.status_code != 201:
                raise StorageError(f"storage answered HTTP {resp.status_code}")
        except StorageError as exc:
            return None, storage_failed(exc)
        uploads_total.labels("success").inc()
        digest = hashlib.sha256(data).hexdigest()
        telemetry.log.info("upload stored", extra={"fields": {
            "object_id": object_id, "size": len(data)}})
        return {"id": object_id, "size": len(data), "sha256": digest}, None

    async def upload_submit(request: Request) -> Response:
        if authenticated_user(request) is None:
            return RedirectResponse("/login", status_code=303)
        result, error = await store_upload(request)
        if result is None:
            assert error is not None
            if error.status_code == 502:
                return _page("Upload failed", "<p class='error'>Storage failed.</p>", 502)
            return _page("Upload failed", "<p class='error'>Choose a file.</p>", 400)
        return _page("Uploaded", (
            f"<p>Stored as <code id='upload-id'>{result['id']}</code>"
            f" ({result['size']} bytes, sha256 <code id='sha256'>{result['sha256']}</code>)."
            "</p><p><a href='/upload'>Upload another</a></p>"))

    # ---- JSON API ------------------------------------------------------------------------

    def unauthorized() -> Response:
        return JSONResponse({"error": "unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="demo"'})

    def basic_credentials(request: Request) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, _, password = decoded.partition(":")
        return username, password

    async def api_login(request: Request) -> Response:
        basic = basic_credentials(request)
        if basic is not None and not await request.body():
            username, password = basic  # Basic auth alone is a login too
        else:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            username, password = str(body.get("username", "")), str(body.get("password", ""))
        token = login_attempt(username, password, "api")
        if token is None:
            return JSONResponse({"error": "invalid credentials"}, status_code=401)
        resp = JSONResponse({"token": token, "user": username})
        set_session(resp, token)
        return resp

    async def api_upload(request: Request) -> Response:
        if authenticated_user(request) is None:
            return unauthorized()
        result, error = await store_upload(request)
        if result is None:
            assert error is not None
            return error
        return JSONResponse(result, status_code=201)

    async def api_get_upload(request: Request) -> Response:
        if authenticated_user(request) is None:
            return unauthorized()
        object_id = request.path_params["id"]
        try:
            resp = await storage_call("GET", "/objects/{id}", f"/objects/{object_id}")
        except StorageError as exc:
            return storage_failed(exc)
        if resp.status_code == 404:
            return JSONResponse({"error": "not found"}, status_code=404)
        if resp.status_code != 200:
            return storage_failed(StorageError(f"storage answered HTTP {resp.status_code}"))
        return Response(resp.content, media_type="application/octet-stream")

    async def api_delete_upload(request: Request) -> Response:
        if authenticated_user(request) is None:
            return unauthorized()
        object_id = request.path_params["id"]
        try:
            resp = await storage_call("DELETE", "/objects/{id}", f"/objects/{object_id}")
        except StorageError as exc:
            return storage_failed(exc)
        if resp.status_code == 404:
            return JSONResponse({"error": "not found"}, status_code=404)
        if resp.status_code != 204:
            return storage_failed(StorageError(f"storage answered HTTP {resp.status_code}"))
        return Response(status_code=204)

    async def runbook(request: Request) -> Response:
        name = request.path_params["alertname"]
        if name not in RUNBOOKS:
            return _page("No such runbook", f"<p>No runbook for {html.escape(name)}.</p>", 404)
        what, todo = RUNBOOKS[name]
        return _page(f"Runbook: {name}", f"<h2>What it means</h2><p>{html.escape(what)}</p>"
                                         f"<h2>What to do</h2><p>{html.escape(todo)}</p>")

    settings = frontend_settings(config)
    bundle: dict[str, bytes] = {}

    async def frontend(request: Request) -> Response:
        return frontend_page(settings)

    async def frontend_js(request: Request) -> Response:
        if "js" not in bundle:
            try:
                bundle["js"] = FRONTEND_BUNDLE.read_bytes()
            except OSError as exc:
                telemetry.log.error("frontend bundle missing", extra={"fields": {
                    "path": str(FRONTEND_BUNDLE), "error.type": type(exc).__name__}})
                return Response("frontend bundle missing: run scripts/build-demo-frontend.sh",
                                status_code=503, media_type="text/plain")
        return Response(bundle["js"], media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    async def index(request: Request) -> Response:
        return RedirectResponse("/upload", status_code=303)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient() as http_client:
            state["client"] = http_client
            telemetry.log.info("web started")
            if "leak_password_startup" in sabotage:
                # Deliberate defect: a config dump at start-up, before any gate runs.
                telemetry.log.info("web config", extra={"fields": {
                    "storage_url": config.storage_url, "user": config.user,
                    "password": config.password}})
            yield
            telemetry.log.info("web stopping")
        telemetry.shutdown()

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/live", health_live, methods=["GET"]),
        Route("/health/ready", health_ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/upload", upload_page, methods=["GET"]),
        Route("/upload", upload_submit, methods=["POST"]),
        Route("/api/login", api_login, methods=["POST"]),
        Route("/api/uploads", api_upload, methods=["POST"]),
        Route("/api/uploads/{id}", api_get_upload, methods=["GET"]),
        Route("/api/uploads/{id}", api_delete_upload, methods=["DELETE"]),
        Route("/runbooks/{alertname}", runbook, methods=["GET"]),
        Route("/frontend", frontend, methods=["GET"]),
        Route("/static/demo-frontend.js", frontend_js, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(ObservabilityMiddleware, telemetry=telemetry, routes=lambda: routes)])


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m demo.web``."""
    parser = argparse.ArgumentParser(prog="demo.web", description=__doc__)
    parser.add_argument("--storage-url", required=True)
    parser.add_argument("--sink-url", required=True)
    parser.add_argument("--otlp-url", help="where OTLP traces and logs go (default: the sink)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sabotage = sabotage_or_exit(os.environ.get("DEMO_SABOTAGE"), "demo.web")
    password = os.environ.get("DEMO_PASSWORD", "")
    if not password:
        sys.stderr.write("demo.web: DEMO_PASSWORD must be set (the demo user's password)\n")
        sys.exit(3)
    config = WebConfig(storage_url=args.storage_url, sink_url=args.sink_url,
                       user=os.environ.get("DEMO_USER") or "demo", password=password,
                       sabotage=sabotage)
    telemetry = Telemetry("web", args.sink_url, sabotage, otlp_url=args.otlp_url)
    run_asgi(create_app(config, telemetry), args.host, args.port)


if __name__ == "__main__":
    main()
