"""SSL contexts and credential files of blackbox modules, re-read when the files change.

blackbox_exporter builds its HTTP client (and reads CA bundles, client certificates,
password and token files) on every probe, so a rotated certificate is picked up without
a restart. readygate keeps each context and file in memory and rebuilds it when a file's
modification time changes (checked at most once a second), which keeps that behaviour
without reading files on every probe. The default trust is the system's (OpenSSL's
default paths, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), as Go's on Linux.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from core import redact
from core.config import Loc, error_at
from probes.blackbox.config import HTTPProbe, Module, TLSConfig

_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_RECHECK_S = 1.0
_T = TypeVar("_T")


class _Cached:
    """A value built from files, rebuilt when one of their mtimes changes."""

    __slots__ = ("build", "checked", "files", "mtimes", "value")

    def __init__(self, files: tuple[str, ...], build: Callable[[], Any]) -> None:
        self.files = files
        self.build = build
        self.mtimes = self._stat()
        self.value = build()
        self.checked = time.monotonic()

    def _stat(self) -> tuple[float, ...]:
        out = []
        for f in self.files:
            try:
                out.append(os.stat(f).st_mtime)
            except OSError:
                out.append(-1.0)
        return tuple(out)

    def get(self) -> Any:
        now = time.monotonic()
        if self.files and now - self.checked >= _RECHECK_S:
            self.checked = now
            mtimes = self._stat()
            if mtimes != self.mtimes:
                # A file mid-rotation may not load: keep the last good value until it does.
                try:
                    self.value = self.build()
                    self.mtimes = mtimes
                except (OSError, ssl.SSLError, ValueError):
                    pass
        return self.value


_contexts: dict[tuple[TLSConfig, tuple[str, ...]], _Cached] = {}
_files: dict[str, _Cached] = {}


def _build(cfg: TLSConfig, alpn: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ca_file)
    if cfg.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file is not None:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.min_version is not None:
        ctx.minimum_version = _VERSIONS[cfg.min_version]
    if cfg.max_version is not None:
        ctx.maximum_version = _VERSIONS[cfg.max_version]
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def context(cfg: TLSConfig, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The SSL context for a module's ``tls_config`` (built once, rebuilt on file changes)."""
    key = (cfg, alpn)
    cached = _contexts.get(key)
    if cached is None:
        files = tuple(f for f in (cfg.ca_file, cfg.cert_file, cfg.key_file) if f)
        cached = _contexts[key] = _Cached(files, lambda: _build(cfg, alpn))
    ctx: ssl.SSLContext = cached.get()
    return ctx


def secret_file(path: str) -> str:
    """A password or token file's content, whitespace-trimmed (registered as a secret)."""
    cached = _files.get(path)
    if cached is None:
        def read() -> str:
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
            redact.register(value)
            return value
        cached = _files[path] = _Cached((path,), read)
    value: str = cached.get()
    return value


def _check(fn: Callable[[], _T], path: str, lines: Mapping[Loc, int], loc: Loc,
           what: str) -> _T:
    try:
        return fn()
    except ssl.SSLError as exc:
        raise error_at(f"cannot load {what}: {exc.reason or exc}", path, loc, lines) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise error_at(f"cannot read {what}: {reason}", path, loc, lines) from None


def check_module_files(module: Module, path: str, lines: Mapping[Loc, int], at: Loc) -> None:
    """Load every context and credential file a module uses; a bad one is a ConfigError."""
    sections: list[tuple[str, TLSConfig, bool]] = []
    if module.prober == "http":
        sections.append(("http", module.http.tls_config, True))
        _check_credentials(module.http, path, lines, (*at, "http"))
    elif module.prober == "tcp":
        sections.append(("tcp", module.tcp.tls_config, module.tcp.tls or any(
            q.starttls for q in module.tcp.query_response)))
    elif module.prober == "dns" and module.dns is not None:
        sections.append(("dns", module.dns.tls_config, module.dns.dns_over_tls))
    for section, cfg, used in sections:
        if not used:
            continue
        loc = (*at, section, "tls_config")
        if cfg.ca_file is not None:
            _check(partial(ssl.create_default_context, cafile=cfg.ca_file), path, lines,
                   (*loc, "ca_file"), f"CA bundle {cfg.ca_file!r}")
        _check(partial(context, cfg), path, lines,
               (*loc, "cert_file" if cfg.cert_file else "ca_file"),
               "the TLS configuration")


def _check_credentials(http: HTTPProbe, path: str, lines: Mapping[Loc, int], at: Loc) -> None:
    files: list[tuple[str, Loc]] = []
    if http.basic_auth is not None and http.basic_auth.password_file:
        files.append((http.basic_auth.password_file, (*at, "basic_auth", "password_file")))
    if http.authorization is not None and http.authorization.credentials_file:
        files.append((http.authorization.credentials_file,
                      (*at, "authorization", "credentials_file")))
    if http.bearer_token_file:
        files.append((http.bearer_token_file, (*at, "bearer_token_file")))
    for file, loc in files:
        value = _check(partial(secret_file, file), path, lines, loc, f"file {file!r}")
        if 0 < len(value) < redact.MIN_LEN:
            raise error_at(f"the secret in {file!r} is shorter than {redact.MIN_LEN} "
                           "characters: too short to be masked in output", path, loc, lines)


def authorization(http: HTTPProbe) -> str | None:
    """The Authorization header value a module sends, or None."""
    if http.basic_auth is not None:
        import base64

        auth = http.basic_auth
        password = (auth.password.get_secret_value() if auth.password is not None
                    else secret_file(auth.password_file) if auth.password_file else "")
        raw = f"{auth.username}:{password}".encode()
        return "Basic " + base64.b64encode(raw).decode()
    if http.bearer_token is not None:
        return "Bearer " + http.bearer_token.get_secret_value()
    if http.bearer_token_file:
        return "Bearer " + secret_file(http.bearer_token_file)
    if http.authorization is not None:
        a = http.authorization
        credentials = (a.credentials.get_secret_value() if a.credentials is not None
                       else secret_file(a.credentials_file) if a.credentials_file else "")
        return f"{a.type.strip()} {credentials}"
    return None

