"""HTTP client options every layer shares: TLS, auth, headers, proxies; URL credentials.

``TlsOptions`` (CA bundle, client certificate and key, skip-verify, SNI name) and
``HttpOptions`` (TLS plus basic / bearer / header auth and proxies from the environment)
are small typed config values; :func:`ssl_context` and :func:`client_kwargs` turn them into
an ``ssl.SSLContext`` (built once per options) and ``httpx.AsyncClient`` arguments.

The default context (no ``ca_file``) trusts certifi's roots, like httpx, but honours
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, as OpenSSL's default context does: httpx
reads them only with ``trust_env=True``, which would also route every request through the
environment's proxies. Proxies from the environment are used only with ``proxy_from_env``.

Credentials in a URL's user-info (``https://user:pass@host``) are secrets: they are
registered for redaction (:func:`secret_values`), shown nowhere (:func:`display_url`) and
sent as basic auth (:func:`split_userinfo`).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
from pydantic import BaseModel, Field, SecretStr, model_validator

from core.config import Loc, Model, error_at
from core.errors import ConfigError
from core.redact import MIN_LEN, too_short

log = logging.getLogger("readygate.tls")

_M = TypeVar("_M", bound=BaseModel)


class TlsOptions(Model):
    """How to trust the server and how to prove who we are (a client certificate)."""

    ca_file: str | None = Field(
        None, description="PEM CA bundle to trust instead of the default roots")
    cert_file: str | None = Field(
        None, description="client certificate, PEM (may hold the key too)")
    key_file: str | None = Field(None, description="the client certificate's key, PEM")
    key_password: SecretStr | None = Field(
        None, description="password of an encrypted key_file; always redacted")
    insecure_skip_verify: bool = Field(
        False, description="do not verify the server's certificate (warned about on every run)")
    server_name: str | None = Field(
        None, description="TLS server name (SNI) the certificate must carry "
                          "(default: the URL's host)")

    @model_validator(mode="after")
    def _pairs(self) -> TlsOptions:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        if self.key_password is not None and self.cert_file is None:
            raise ValueError("key_password needs cert_file")
        return self


class BasicAuth(Model):
    """HTTP basic credentials (the password is a secret)."""

    username: str
    password: SecretStr


class ConnectOptions(Model):
    """How to connect: TLS, and whether to use the environment's proxies."""

    tls: TlsOptions | None = Field(None, description="CA bundle, client certificate, "
                                                     "skip-verify, server name")
    proxy_from_env: bool = Field(
        False, description="use HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment")


class HttpFields(ConnectOptions):
    """TLS, proxies, basic auth and extra headers (the bearer token is named by the owner).

    Credentials in the ``url``'s user-info become ``basic_auth`` and leave the URL.
    """

    basic_auth: BasicAuth | None = Field(None, description="HTTP basic credentials")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra request headers (e.g. X-Scope-OrgID, an API "
                                          "key); values are treated as secrets")

    @model_validator(mode="before")
    @classmethod
    def _userinfo(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        url, auth = split_userinfo(data["url"])
        if auth is None:
            return data
        if data.get("basic_auth") is not None:
            raise ValueError("credentials both in the url and in basic_auth: keep one")
        if not auth[1]:
            raise ValueError("the url's user-info has no password: write user:password, or "
                             "put a token in token")
        return {**data, "url": url, "basic_auth": {"username": auth[0], "password": auth[1]}}

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpFields:
        if self.basic_auth is not None and any(k.lower() == "authorization"
                                               for k in self.headers):
            raise ValueError("basic_auth and an Authorization header: keep one")
        if self.basic_auth is not None and len(self.basic_auth.password.get_secret_value()) < 4:
            # core.redact cannot mask shorter values without masking ordinary words
            raise ValueError("basic_auth.password is shorter than 4 characters: too short to "
                             "be masked in output")
        return self


class HttpOptions(HttpFields):
    """Everything an HTTP client of readygate can be told: TLS, proxies, auth, headers."""

    bearer_token: SecretStr | None = Field(None, description="sent as Authorization: Bearer")

    @model_validator(mode="after")
    def _one_scheme(self) -> HttpOptions:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("a bearer token and basic_auth: keep one")
        return self


# -- URL user-info ----------------------------------------------------------------------

_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$", re.DOTALL)


def _userinfo_parts(url: str) -> tuple[str, str, str] | None:
    """(scheme://, user-info, host[:port] + rest) of a URL with user-info, else None."""
    if "@" not in url:  # the common case, on every probe step: no regex
        return None
    m = _URL_RE.match(url)
    if m is None or "@" not in m.group(2):
        return None
    userinfo, _, hostport = m.group(2).rpartition("@")
    return m.group(1), userinfo, hostport + m.group(3)


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without user-info, and its (username, password), percent-decoded."""
    parts = _userinfo_parts(url)
    if parts is None:
        return url, None
    scheme, info, rest = parts
    user, _, password = info.partition(":")
    return scheme + rest, (unquote(user), unquote(password))


def userinfo(url: str) -> str | None:
    """The raw user-info of ``url`` (``user:pass``, as written), or None."""
    parts = _userinfo_parts(url)
    return None if parts is None else parts[1]


def display_url(url: str) -> str:
    """``url`` as it may be shown: without user-info."""
    parts = _userinfo_parts(url)
    return url if parts is None else parts[0] + parts[2]


def url_secrets(url: str) -> list[str]:
    """The secrets in a URL's user-info: the password and the whole user:password.

    A user-info with no password is a token (``https://TOKEN@host``) and is a secret itself.
    """
    parts = _userinfo_parts(url)
    if parts is None:
        return []
    info = parts[1]
    user, _, password = info.partition(":")
    if not password:
        return [v for v in {user, unquote(user)} if v]
    return [v for v in {info, f"{unquote(user)}:{unquote(password)}", password,
                        unquote(password)} if v]


def secret_values(*models: BaseModel | None) -> list[str]:
    """Every ``SecretStr`` inside ``models``, and the credentials in any URL's user-info."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, str):
            if "@" in value and "://" in value:
                out.extend(url_secrets(value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for model in models:
        walk(model)
    return list(dict.fromkeys(out))


def check_secret_lengths(model: BaseModel, path: str, lines: Mapping[Loc, int],
                         at: Loc = ()) -> None:
    """Refuse any secret too short to be masked in output (``core.redact.MIN_LEN``): a
    ``SecretStr`` or a URL's password. The error names the key; an empty value is no secret.

    Such a value would never be registered for redaction, so a report claiming it was
    masked would be a lie; and masking 3 characters would mask ordinary words.
    """
    def walk(value: Any, loc: Loc) -> None:
        if isinstance(value, SecretStr):
            if too_short(value.get_secret_value()):
                raise error_at(f"secret is shorter than {MIN_LEN} characters: too short to be "
                               "masked in output (use a longer one)", path, loc, lines)
        elif isinstance(value, str):
            credentials = split_userinfo(value)[1] if "://" in value else None
            if credentials is not None and too_short(credentials[1]):
                raise error_at(f"the password in the URL is shorter than {MIN_LEN} characters: "
                               "too short to be masked in output", path, loc, lines)
        elif isinstance(value, BaseModel):
            for name, info in type(value).model_fields.items():
                walk(getattr(value, name), (*loc, info.alias or name))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, (*loc, str(key)))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, (*loc, i))

    walk(model, at)


# -- SSL contexts -----------------------------------------------------------------------

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(tls: TlsOptions | None, *, key: str = "tls") -> ssl.SSLContext:
    """The SSL context for ``tls`` (the default one for None), built once per options.

    A file that is missing or does not load is a one-line :class:`ConfigError` naming
    ``key.<field>``.
    """
    tls = tls or TlsOptions()
    env: tuple[str | None, str | None] = (None, None)
    if tls.ca_file is None and not tls.insecure_skip_verify:
        env = (os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)
    password = tls.key_password.get_secret_value() if tls.key_password is not None else None
    cache_key = (tls.ca_file, tls.cert_file, tls.key_file, password, tls.insecure_skip_verify,
                 env)
    with _contexts_lock:
        ctx = _contexts.get(cache_key)
    if ctx is None:
        ctx = _build_context(tls, env, key)
        with _contexts_lock:
            ctx = _contexts.setdefault(cache_key, ctx)
    return ctx


def _build_context(tls: TlsOptions, env: tuple[str | None, str | None],
                   key: str) -> ssl.SSLContext:
    if tls.insecure_skip_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.ca_file is not None:
        ctx = _load(lambda: ssl.create_default_context(cafile=tls.ca_file), tls.ca_file,
                    f"{key}.ca_file", "CA bundle")
    elif env != (None, None):
        # OpenSSL's default context reads these; httpx only with trust_env (and proxies).
        where = "SSL_CERT_FILE" if env[0] else "SSL_CERT_DIR"
        ctx = _load(lambda: ssl.create_default_context(cafile=env[0], capath=env[1]),
                    env[0] or env[1] or "", where, f"CA bundle ({where})")
    else:
        ctx = httpx.create_ssl_context(trust_env=False)  # certifi's roots, as httpx does
    if tls.cert_file is not None:
        cert_file = tls.cert_file
        _readable(cert_file, f"{key}.cert_file", "client certificate")
        if tls.key_file is not None:
            _readable(tls.key_file, f"{key}.key_file", "client key")
        password = tls.key_password.get_secret_value() if tls.key_password else None

        def no_password() -> str:
            # Without this OpenSSL would prompt on the terminal and hang a CI run.
            raise ConfigError("the key is encrypted: set key_password",
                              key=f"{key}.key_file")

        def load() -> None:
            ctx.load_cert_chain(cert_file, tls.key_file,
                                password=password if password is not None else no_password)

        _load(load, tls.key_file or cert_file, f"{key}.key_file" if tls.key_file
              else f"{key}.cert_file", "client certificate and key")
    return ctx


def _readable(path: str, key: str, what: str) -> None:
    if not Path(path).is_file():
        raise ConfigError(f"{what} {path!r} not found", key=key)


_T = TypeVar("_T")


def _load(fn: Callable[[], _T], path: str, key: str, what: str) -> _T:
    try:
        return fn()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path!r} not found", key=key) from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConfigError(f"cannot load {what} from {path!r}: {reason}", key=key) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror or exc}",
                          key=key) from None


_warned: set[str] = set()


def warn_insecure(tls: TlsOptions | None, name: str) -> None:
    """One loud warning per process and ``name`` when ``tls`` skips verification."""
    if tls is None or not tls.insecure_skip_verify or name in _warned:
        return
    _warned.add(name)
    log.warning("readygate: WARNING: TLS certificate verification is OFF for %s "
                "(insecure_skip_verify: true): anyone on the path can read and change this "
                "traffic; use tls.ca_file instead", name)


# -- httpx clients ----------------------------------------------------------------------

def _sni_hook(server_name: str) -> Callable[[httpx.Request], Awaitable[None]]:
    async def hook(request: httpx.Request) -> None:
        # httpcore's per-request extension: SNI and the name the certificate is checked for.
        if request.url.scheme == "https":
            request.extensions["sni_hostname"] = server_name
    return hook


def client_kwargs(options: ConnectOptions | None, *, name: str) -> dict[str, Any]:
    """``httpx.AsyncClient`` keyword arguments for ``options`` (``name`` for messages).

    verify is the SSL context; ``trust_env`` only with ``proxy_from_env``; basic auth,
    bearer token and headers for :class:`HttpOptions`; the server name as httpcore's
    ``sni_hostname`` extension on every https request.
    """
    options = options or ConnectOptions()
    warn_insecure(options.tls, name)
    kwargs: dict[str, Any] = {"verify": ssl_context(options.tls, key=f"{name}.tls"),
                              "trust_env": options.proxy_from_env}
    if options.tls is not None and options.tls.server_name:
        kwargs["event_hooks"] = {"request": [_sni_hook(options.tls.server_name)]}
    if isinstance(options, HttpFields):
        headers = {k: v.get_secret_value() for k, v in options.headers.items()}
        if options.basic_auth is not None:
            kwargs["auth"] = httpx.BasicAuth(options.basic_auth.username,
                                             options.basic_auth.password.get_secret_value())
        if isinstance(options, HttpOptions) and options.bearer_token is not None:
            headers["Authorization"] = f"Bearer {options.bearer_token.get_secret_value()}"
        if headers:
            kwargs["headers"] = headers
    return kwargs


def needs_own_client(options: ConnectOptions | None) -> bool:
    """Whether ``options`` ask for anything a shared default client does not do."""
    if options is None:
        return False
    if options.tls is not None or options.proxy_from_env:
        return True
    return isinstance(options, HttpFields) and (options.basic_auth is not None
                                                or bool(options.headers))


# -- what went wrong --------------------------------------------------------------------

_HINTS = (
    ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not trusted: set tls.ca_file "
                                  "to the CA that signed it (or SSL_CERT_FILE)"),
    ("CERTIFICATE_REQUIRED", "the server wants a client certificate: set tls.cert_file and "
                             "tls.key_file"),
    ("HANDSHAKE_FAILURE", "TLS handshake refused (a client certificate the server does not "
                          "accept?)"),
    ("UNKNOWN_CA", "the server does not trust our client certificate's CA"),
    ("BAD_CERTIFICATE", "the server refused our client certificate"),
)


def describe(exc: BaseException) -> str:
    """``Type: message`` of a failed request, the TLS reason and a hint when there is one.

    httpx often says only ``ReadError``; the reason is deeper in the exception chain.
    """
    message = ""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 8:
        text = str(seen).strip()
        if text:
            message = text
            break
        seen = seen.__cause__ or seen.__context__
        depth += 1
    head = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    for code, hint in _HINTS:
        if code in message:
            return f"{head} ({hint})"
    return head


# What to catch around a request: httpx's errors, and ssl.SSLError, which anyio's TLS stream
# lets out of a read (the server's "certificate required" alert under TLS 1.3) past httpx's
# exception mapping (measured: 13 of 60 requests without a client certificate).
REQUEST_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, ssl.SSLError)


# -- relative paths ---------------------------------------------------------------------

def resolve_tls_files(model: _M, base: Path, *, path: str, lines: Mapping[Loc, int],
                      loc: Loc = ()) -> _M:
    """``model`` with every ``TlsOptions``' files relative to ``base`` and checked to load.

    Errors are one line naming the file, line and key (``backends.prometheus.tls.ca_file``).
    """
    out = _resolve(model, base, path, lines, loc)
    assert isinstance(out, type(model))
    return out


def _resolve(value: Any, base: Path, path: str, lines: Mapping[Loc, int], loc: Loc) -> Any:
    if isinstance(value, TlsOptions):
        update = {}
        for name in ("ca_file", "cert_file", "key_file"):
            given = getattr(value, name)
            if given is not None:
                p = Path(given).expanduser()
                resolved = str(p if p.is_absolute() else base / p)
                if resolved != given:
                    update[name] = resolved
        tls = value.model_copy(update=update) if update else value
        try:
            ssl_context(tls, key="tls")
        except ConfigError as exc:
            field = (exc.key or "tls").rpartition(".")[2]
            where = (*loc, field) if field != "tls" and not (exc.key or "").startswith("SSL_")\
                else loc
            raise error_at(exc.detail, path, where, lines) from None
        return tls
    if isinstance(value, BaseModel):
        update = {}
        for name in type(value).model_fields:
            current = getattr(value, name)
            new = _resolve(current, base, path, lines, (*loc, name))
            if new is not current:
                update[name] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, dict):
        changed = {k: _resolve(v, base, path, lines, (*loc, k)) for k, v in value.items()}
        return changed if any(changed[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        items = [_resolve(v, base, path, lines, (*loc, i)) for i, v in enumerate(value)]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
