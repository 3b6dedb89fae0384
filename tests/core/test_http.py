"""core.http: TLS contexts from typed options, URL credentials as secrets, httpx arguments."""

from __future__ import annotations

import asyncio
import http.server
import logging
import ssl
import threading
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from core import redact
from core.errors import ConfigError
from core.http import (
    ConnectOptions,
    HttpOptions,
    TlsOptions,
    client_kwargs,
    describe,
    display_url,
    secret_values,
    split_userinfo,
    ssl_context,
    url_secrets,
)
from probes.clients import probe_client
from probes.transport import lean_client
from readygate.config import parse_config
from tests.fixtures.tls import Pki, https_server, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with client:
            return await client.get(url)
    return asyncio.run(go())


# -- URL user-info ----------------------------------------------------------------------

def test_user_info_is_split_into_basic_auth_and_never_displayed() -> None:
    url = "https://scraper:p%40ss:w0rd@metrics.internal:9100/metrics?x=1"
    assert split_userinfo(url) == ("https://metrics.internal:9100/metrics?x=1",
                                   ("scraper", "p@ss:w0rd"))
    assert display_url(url) == "https://metrics.internal:9100/metrics?x=1"
    assert set(url_secrets(url)) == {"scraper:p%40ss:w0rd", "scraper:p@ss:w0rd",
                                     "p%40ss:w0rd", "p@ss:w0rd"}
    plain = "https://metrics.internal/a@b"  # an @ in the path is not user-info
    assert split_userinfo(plain) == (plain, None) and url_secrets(plain) == []


def test_a_token_as_user_info_is_a_secret_itself() -> None:
    assert url_secrets("https://ghp_abcdef123@host/") == ["ghp_abcdef123"]


def test_secret_values_walks_models_for_secrets_and_url_credentials() -> None:
    options = HttpOptions(tls=TlsOptions(cert_file="c.pem", key_password="keypw-1"),
                          headers={"X-Api-Key": "api-key-1"}, bearer_token="bearer-1")
    found = secret_values(options, ConnectOptions())
    assert set(found) == {"keypw-1", "api-key-1", "bearer-1"}


def test_a_password_too_short_to_mask_and_two_sets_of_credentials_are_refused() -> None:
    with pytest.raises(ValidationError, match="shorter than 4 characters"):
        HttpOptions.model_validate({"basic_auth": {"username": "u", "password": "abc"}})
    with pytest.raises(ValidationError, match="a bearer token and basic_auth"):
        HttpOptions.model_validate({"basic_auth": {"username": "u", "password": "abcd"},
                                    "bearer_token": "t0ken"})
    with pytest.raises(ValidationError, match="key_file needs cert_file"):
        TlsOptions(key_file="k.pem")


# -- SSL contexts -----------------------------------------------------------------------

def test_contexts_are_built_once_per_options(pki: Pki) -> None:
    a = ssl_context(TlsOptions(ca_file=str(pki.ca)))
    assert ssl_context(TlsOptions(ca_file=str(pki.ca))) is a
    assert ssl_context(TlsOptions(ca_file=str(pki.other_ca))) is not a
    assert ssl_context(None) is ssl_context(None)


def test_missing_or_broken_files_are_one_line_config_errors_naming_the_key(
        pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        ssl_context(TlsOptions(ca_file=str(tmp_path / "nope.pem")), key="backends.loki.tls")
    assert str(err.value) == (f"backends.loki.tls.ca_file: CA bundle "
                              f"'{tmp_path / 'nope.pem'}' not found")
    with pytest.raises(ConfigError, match=r"^x.tls.ca_file: cannot load CA bundle .*"
                                          r"NO_CERTIFICATE_OR_CRL_FOUND"):
        ssl_context(TlsOptions(ca_file=str(pki.server_key)), key="x.tls")
    with pytest.raises(ConfigError, match=r"^x.tls.key_file: cannot load client certificate "
                                          r"and key .*KEY_VALUES_MISMATCH"):
        ssl_context(TlsOptions(cert_file=str(pki.client_cert), key_file=str(pki.server_key)),
                    key="x.tls")
    with pytest.raises(ConfigError, match=r"^x.tls.cert_file: client certificate .* not found"):
        ssl_context(TlsOptions(cert_file=str(tmp_path / "c.pem")), key="x.tls")


def test_an_encrypted_key_needs_its_password_and_never_prompts(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, key_password=b"key-pass-1")
    tls = TlsOptions(cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    # without the callback OpenSSL would read a password from the terminal and hang
    with pytest.raises(ConfigError, match=r"x.tls.key_file: the key is encrypted: set "
                                          r"key_password"):
        ssl_context(tls, key="x.tls")
    ok = TlsOptions(cert_file=str(pki.client_cert), key_file=str(pki.client_key),
                    key_password=SecretStr("key-pass-1"))
    assert isinstance(ssl_context(ok), ssl.SSLContext)


def test_the_default_context_honours_ssl_cert_file_without_trust_env(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx with trust_env=False ignores SSL_CERT_FILE; readygate's clients do not."""
    with https_server(pki) as (url, _):
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            get(lean_client(), url)
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
        # what the issue measured: httpx alone still fails ...
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            get(httpx.AsyncClient(trust_env=False), url)
        # ... readygate's probe client and backend clients trust the file
        assert get(lean_client(), url).status_code == 200
        assert get(httpx.AsyncClient(**client_kwargs(None, name="t")), url).status_code == 200


def test_a_missing_ssl_cert_file_is_named(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "gone.pem"))
    with pytest.raises(ConfigError, match=r"^SSL_CERT_FILE: CA bundle \(SSL_CERT_FILE\) .* "
                                          r"not found"):
        ssl_context(None)


def test_server_name_is_sent_as_sni_and_checked(pki: Pki) -> None:
    with https_server(pki) as (url, _):
        good = TlsOptions(ca_file=str(pki.ca), server_name="internal.test")
        assert get(httpx.AsyncClient(**client_kwargs(ConnectOptions(tls=good), name="t")),
                   url).status_code == 200
        bad = good.model_copy(update={"server_name": "wrong.test"})
        with pytest.raises(httpx.ConnectError, match=r"not valid for 'wrong\.test'"):
            get(httpx.AsyncClient(**client_kwargs(ConnectOptions(tls=bad), name="t")), url)


def test_skip_verify_connects_and_warns_once_per_name(
        pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    tls = TlsOptions(insecure_skip_verify=True)
    with https_server(pki) as (url, _), caplog.at_level(logging.WARNING, "readygate.tls"):
        for _ in range(2):
            kwargs = client_kwargs(ConnectOptions(tls=tls), name="backends.test-skip")
            assert get(httpx.AsyncClient(**kwargs), url).status_code == 200
    lines = [r.getMessage() for r in caplog.records if "backends.test-skip" in r.getMessage()]
    assert len(lines) == 1
    assert "TLS certificate verification is OFF for backends.test-skip" in lines[0]


def test_describe_finds_the_tls_reason_and_hints() -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert describe(exc).startswith("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert "set tls.ca_file" in describe(exc)
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise httpx.ReadError("") from inner
    except httpx.ReadError as outer:
        assert describe(outer) == "ReadError: [Errno 104] Connection reset by peer"


# -- readygate.yaml ---------------------------------------------------------------------

def test_tls_files_are_relative_to_the_config_and_errors_name_file_line_key(
        pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())
    config_path = tmp_path / "r.yaml"
    config_path.write_text("backends:\n  prometheus:\n    url: https://prom:9090\n"
                           "    tls: {ca_file: ca.pem}\n")
    config = parse_config(config_path.read_text(), str(config_path))
    assert config.backends.prometheus is not None
    tls = config.backends.prometheus.tls
    assert tls is not None and tls.ca_file == str(tmp_path / "ca.pem")
    config_path.write_text("backends:\n  prometheus:\n    url: https://prom:9090\n"
                           "    tls:\n      ca_file: missing.pem\n")
    with pytest.raises(ConfigError) as err:
        parse_config(config_path.read_text(), str(config_path))
    assert str(err.value) == (f"{config_path}:5 backends.prometheus.tls.ca_file: CA bundle "
                              f"'{tmp_path / 'missing.pem'}' not found")


def test_credentials_in_backend_and_service_urls_are_secrets_never_shown() -> None:
    config = parse_config(
        "target:\n  services: {web: 'https://webuser:web-pass-1@web.internal'}\n"
        "backends:\n  prometheus: {url: 'https://promuser:prom-pass-1@prom.internal:9090'}\n"
        "  scrape: {basic_auth: {username: scraper, password: scrape-pass-1},\n"
        "           headers: {X-Scope-OrgID: tenant-secret-1}}\n", "r.yaml")
    prom = config.backends.prometheus
    assert prom is not None and prom.url == "https://prom.internal:9090"
    assert prom.basic_auth is not None and prom.basic_auth.username == "promuser"
    secrets = set(config.secrets())
    assert {"prom-pass-1", "webuser:web-pass-1", "web-pass-1", "scrape-pass-1",
            "tenant-secret-1"} <= secrets
    assert {"prom-pass-1", "webuser:web-pass-1", "scrape-pass-1"} <= redact.registered()
    assert redact.scrub("GET https://webuser:web-pass-1@web.internal/") == \
        "GET https://***@web.internal/"


@pytest.mark.parametrize(("yaml", "message"), [
    ("backends:\n  prometheus:\n    url: https://u:pass1@p\n"
     "    basic_auth: {username: v, password: pass2}\n",
     "credentials both in the url and in basic_auth"),
    ("backends:\n  prometheus:\n    url: https://p\n    token: tok-1\n"
     "    basic_auth: {username: v, password: pass2}\n",
     "r.yaml:2 backends.prometheus: token and basic_auth (or credentials in the url) both "
     "authenticate: keep one"),
    ("backends:\n  logs:\n    kind: jsonl\n    path: x.jsonl\n    tls: {}\n",
     "r.yaml:5 backends.logs.tls: kind 'jsonl' reads files: 'tls' does not apply"),
    ("target:\n  services: {web: 'https://u:abc@web'}\n",
     "services.web: the password in the URL is shorter than 4 characters"),
])
def test_conflicting_http_options_are_one_line_config_errors(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml, "r.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself and remembers what it was asked."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"proxied")

    def log_message(self, *args: object) -> None:
        pass


def test_environment_proxies_are_used_only_with_proxy_from_env(
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        target = "http://127.0.0.1:9/metrics"  # discard port: nothing listens
        on = [httpx.AsyncClient(**client_kwargs(ConnectOptions(proxy_from_env=True),
                                                name="t")),
              probe_client(ConnectOptions(proxy_from_env=True), name="t")]
        for client in on:
            assert get(client, target).text == "proxied"
        assert _Proxy.seen == [target, target]
        for client in (httpx.AsyncClient(**client_kwargs(None, name="t")),
                       probe_client(None, name="t")):
            with pytest.raises(httpx.ConnectError):  # straight to the closed port
                get(client, target)
        assert len(_Proxy.seen) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
