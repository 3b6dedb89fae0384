"""``kind: gcloud`` in readygate.yaml: valid for every signal, did-you-mean for the names
users reach for, one-line errors for what cannot work; and credentials: a service-account
key file (loaded with google-auth, also as Application Default Credentials) whose secrets
never reach a message, even when the token endpoint echoes them."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import redact
from core.errors import BackendError, ConfigError
from gates.backends.gcloud import (
    GcloudAlerts,
    GcloudErrors,
    GcloudLogs,
    GcloudPrometheus,
    GcloudTraces,
)
from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.registry import build_all
from readygate.config import load_config
from tests.fakes.gcloud import PROJECT, FakeGoogleApis
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def write(tmp_path: Path, backends: str) -> Path:
    path = tmp_path / "readygate.yaml"
    path.write_text("version: 1\ntarget: {name: t}\nbackends:\n" + backends + "gates: {}\n")
    return path


def key_file(tmp_path: Path, token_uri: str) -> tuple[Path, dict[str, Any]]:
    """A service-account key file (a fresh RSA key) whose token endpoint is ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": PROJECT,
            "private_key_id": "5f2c0a9e1b7d4c3a8e6f0b1d2c3e4f5a6b7c8d9e", "private_key": pem,
            "client_email": "readygate@acme-prod.iam.gserviceaccount.com",
            "client_id": "104842376913840983321", "token_uri": token_uri}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return path, info


def test_every_signal_takes_kind_gcloud_and_builds_its_backend(tmp_path: Path) -> None:
    cred, _ = key_file(tmp_path, "http://127.0.0.1:9/token")
    config = load_config(str(write(tmp_path, (
        "  sink: {url: 'http://127.0.0.1:9'}\n"
        f"  logs: {{kind: gcloud, credentials_file: '{cred}', "
        "query: 'resource.type=\"cloud_run_revision\"'}\n"
        f"  traces: {{kind: gcloud, project_id: {PROJECT}}}\n"
        "  metrics: {kind: gcloud, token: ya29.a0-static-token, project_id: acme-prod}\n"
        "  errors: {kind: gcloud}\n"
        "  alerts: {kind: gcloud}\n"))))

    async def build() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            built = build_all(config.backends, http)
            out = {name: getattr(built, name) for name in
                   ("logs", "traces", "metrics", "errors", "alerts")}
            await built.aclose()
            return out

    built = asyncio.run(build())
    assert isinstance(built["logs"], GcloudLogs)
    assert built["logs"].log_filter == 'resource.type="cloud_run_revision"'
    assert isinstance(built["traces"], GcloudTraces)
    assert isinstance(built["metrics"], GcloudPrometheus)
    assert isinstance(built["errors"], GcloudErrors)
    assert isinstance(built["alerts"], GcloudAlerts)


@pytest.mark.parametrize("kind", ["gcp", "google_cloud", "stackdriver", "cloud_logging",
                                  "gclod"])
def test_names_users_reach_for_get_a_did_you_mean(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError, match="did you mean 'gcloud'") as err:
        load_config(str(write(tmp_path, f"  logs: {{kind: {kind}}}\n")))
    assert "readygate.yaml:4 backends.logs.kind:" in str(err.value)


@pytest.mark.parametrize(("backend", "message", "key"), [
    ("{kind: gcloud, token: ya29.a0-tok, project_id: p, credentials_file: sa.json}",
     "token and credentials_file both authenticate", "backends.logs.token"),
    ("{kind: gcloud, credentials_file: /nonexistent/sa.json}",
     "credentials_file /nonexistent/sa.json does not exist", "backends.logs.credentials_file"),
    ("{kind: gcloud, token: ya29.a0-tok}", "needs 'project_id'", "backends.logs"),
    ("{kind: gcloud, tls: {insecure_skip_verify: true}}", "'tls' does not apply",
     "backends.logs.tls"),
    ("{kind: gcloud, basic_auth: {username: u, password: pass1234}}", "not basic_auth",
     "backends.logs.basic_auth"),
])
def test_what_cannot_work_is_a_one_line_error(tmp_path: Path, backend: str, message: str,
                                              key: str) -> None:
    (tmp_path / "sa.json").write_text("{}")
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(write(tmp_path, f"  logs: {backend}\n")))
    assert key in str(err.value) and "\n" not in str(err.value)


def test_a_query_on_a_signal_other_than_logs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="applies to gcloud logs, not traces"):
        load_config(str(write(tmp_path, "  traces: {kind: gcloud, query: 'severity>=ERROR'}\n")))


def test_gcloud_alerts_without_a_sink_cannot_be_built(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, "  alerts: {kind: gcloud}\n")))
    client = httpx.AsyncClient()
    try:
        with pytest.raises(ConfigError, match=r"webhooks/gcloud: set backends\.sink\.url"):
            build_all(config.backends, client)
    finally:
        asyncio.run(client.aclose())


# -- a service-account key file -------------------------------------------------------------

def echoing_token_endpoint(info: dict[str, Any]) -> Starlette:
    """An OAuth token endpoint that refuses and echoes the key's secrets in its error (a
    hostile or broken proxy): readygate must still print none of them."""
    body64 = "".join(info["private_key"].splitlines()[1:-1])

    async def token(request: Request) -> Response:
        return JSONResponse({"error": "invalid_grant", "error_description":
                             f"bad key {info['private_key_id']} {body64} "
                             f"{info['private_key']}"}, status_code=400)
    return Starlette(routes=[Route("/token", token, methods=["POST"])])


def leaks(text: str, info: dict[str, Any]) -> list[str]:
    body64 = "".join(info["private_key"].splitlines()[1:-1])
    return redact.find_leaks(text, [info["private_key"], info["private_key_id"], body64])


def test_a_key_files_secrets_never_reach_a_check_result(tmp_path: Path) -> None:
    fake = FakeGoogleApis()
    fake.log(text="hello", trace_id=TRACE)
    path, info = key_file(tmp_path, "")
    with serve(fake.app()) as api, serve(echoing_token_endpoint(info)) as token_url:
        info["token_uri"] = f"{token_url}/token"
        path.write_text(json.dumps(info))
        r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.5},
                       phase="baseline", probes=[make_probe(trace_id=TRACE)],
                       logs=lambda http: GcloudLogs(GcloudAuth(credentials_file=str(path)),
                                                    url=api))
    assert r.status == "error" and "could not refresh the credentials" in r.message
    shown = json.dumps({"message": r.message, "evidence": r.evidence}, default=str)
    assert "bad key ***" in r.message  # the endpoint's words arrive, its secrets masked
    assert leaks(shown, info) == []
    assert info["private_key"] in redact.registered()


def test_application_default_credentials_read_the_key_and_its_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, info = key_file(tmp_path, "http://127.0.0.1:9/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    creds, project = GcloudAuth().load()
    assert project == PROJECT
    assert creds.service_account_email == info["client_email"]  # type: ignore[attr-defined]


def test_a_malformed_key_file_is_an_error_that_shows_no_key(tmp_path: Path) -> None:
    pem = ("-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(b"k" * 120).decode()
           + "\n-----END PRIVATE KEY-----\n")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": pem,
                                "private_key_id": "0123456789abcdef0123"}))
    with pytest.raises(BackendError) as err:
        GcloudAuth(credentials_file=str(path)).load()
    assert "Google credentials" in str(err.value)
    assert redact.find_leaks(str(err.value), [pem, "0123456789abcdef0123"]) == []
    path.write_text("not json")
    with pytest.raises(BackendError, match="is not readable JSON"):
        GcloudAuth(credentials_file=str(path)).load()


def test_no_project_anywhere_is_an_error_naming_the_key() -> None:
    with pytest.raises(BackendError, match="set project_id"):
        GcloudAuth(token="ya29.a0-static").load()
