"""blackbox_exporter's ``http`` prober: one fresh connection per request, every phase timed.

What it does, in blackbox_exporter 0.23's order: resolve the target's host (preferred IP
family with fallback), connect to that address, TLS for https (SNI and verification for
the URL's host, or ``tls_config.server_name``, or a configured Host header), send the
request with ``Connection: close``, read the response; follow redirects (at most 10, each
on a fresh connection, as Go's client does with keep-alives disabled); then judge it:
status code (``valid_status_codes``, default 2xx), header and body regular expressions,
HTTP version, ``fail_if_ssl`` / ``fail_if_not_ssl``.

Phases are blackbox's, summed over the requests of a probe: ``resolve`` (the name lookup,
and for redirects to other hosts theirs), ``connect`` (TCP), ``tls`` (handshake),
``processing`` (connection ready until the first response byte) and ``transfer`` (first
byte until the body of the final response was read). A connection that never got ready
(refused, TLS failure) adds no connect or tls time, as in blackbox.

The response is parsed by httptools (llhttp, the parser Node.js uses); HTTP/1.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
import zlib
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import httptools

from core import __version__, redact
from probes.blackbox import tls as bbtls
from probes.blackbox.config import HTTPProbe, Module, compile_regexp
from probes.blackbox.exposition import Series, set_tls_series
from probes.blackbox.net import Address, choose, lookup
from probes.model import TlsFacts
from probes.timing import tls_facts

USER_AGENT = f"readygate/{__version__} (blackbox-compatible)"
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY_STATUS = frozenset({204, 304})
_PHASES = ("connect", "processing", "tls", "transfer")
_DURATION = "probe_http_duration_seconds"
_RESOLVE = (("phase", "resolve"),)
_LABELS = {p: (("phase", p),) for p in _PHASES}
_SENSITIVE_ON_NEW_HOST = frozenset({"authorization", "www-authenticate", "cookie", "cookie2"})


class _Decoder:
    """A streaming decoder for the ``compression`` a module expects."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._obj: Any
        if algorithm == "gzip":
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif algorithm == "deflate":  # Go's flate: raw DEFLATE, no zlib header
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        else:
            import brotli  # type: ignore[import-untyped]

            self._obj = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        if self.algorithm == "br":
            out: bytes = self._obj.process(data)
            return out
        out = self._obj.decompress(data)
        return out

    def finish(self) -> None:
        if self.algorithm in ("gzip", "deflate") and not self._obj.eof:
            raise ValueError("compressed body ended early")
        if self.algorithm == "br" and not self._obj.is_finished():
            raise ValueError("compressed body ended early")


class _Exchange(asyncio.Protocol):
    """One request/response on its own connection, parsed as it arrives."""

    __slots__ = ("body", "body_len", "chunked", "content_length", "decoder", "done",
                 "end", "error", "first_byte", "head", "head_only", "headers",
                 "informational", "limit", "parser", "status", "transport", "version")

    def __init__(self, loop: asyncio.AbstractEventLoop, *, head_only: bool, keep_body: bool,
                 limit: int, decoder: _Decoder | None) -> None:
        self.head: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.first_byte = 0.0
        self.end = 0.0
        self.status = 0
        self.version = ""
        self.headers: list[tuple[str, str]] = []
        self.content_length = -1
        self.chunked = False
        self.informational = False
        self.head_only = head_only
        self.body: list[bytes] | None = [] if keep_body else None
        self.body_len = 0
        self.limit = limit
        self.decoder = decoder
        self.error: str | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are alike, not subclasses

    def data_received(self, data: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        if self.done.done():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._complete()
        except httptools.HttpParserError as exc:
            self._fail(f"malformed HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self.head.done() and self.content_length < 0 and not self.chunked:
            self._complete()  # a body delimited by the end of the connection
        elif self.head.done():
            self._fail("the connection closed before the whole body arrived")
        else:
            self._fail("the server closed the connection without a response"
                       if exc is None else f"connection lost: {exc}")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # 100 Continue and friends: the real answer follows
            self.headers = []
            return
        self.status = status
        self.version = self.parser.get_http_version()
        for name, value in self.headers:
            if name == "content-length":
                try:
                    self.content_length = int(value.strip())
                except ValueError:
                    self.content_length = -1
            elif name == "transfer-encoding" and "chunked" in value.lower():
                self.chunked = True
        if self.chunked:
            self.content_length = -1
        if status in _NO_BODY_STATUS:
            self.content_length = 0
        if not self.head.done():
            self.head.set_result(None)
        if self.head_only or status in _NO_BODY_STATUS:
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.feed(body)
            except Exception as exc:  # zlib.error, brotli.error: a corrupt body
                self._fail(f"cannot decode the {self.decoder.algorithm} body: {exc}")
                return
        self.body_len += len(body)
        if self.limit and self.body_len > self.limit:
            self.body_len = self.limit
            self._fail(f"the body is larger than body_size_limit ({self.limit} bytes)")
            return
        if self.body is not None:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if self.decoder is not None:
            try:
                self.decoder.finish()
            except ValueError as exc:
                self._fail(str(exc))
                return
        self._complete()

    # outcomes

    def _complete(self) -> None:
        if not self.done.done():
            self.end = time.perf_counter()
            self.done.set_result(None)

    def _fail(self, message: str) -> None:
        if self.done.done():
            return
        self.error = message
        self.end = time.perf_counter()
        if not self.head.done():
            self.head.set_result(None)
        self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def header(self, name: str) -> list[str]:
        """Every value of a response header (case-insensitive name)."""
        lower = name.lower()
        return [v for k, v in self.headers if k == lower]


class _Trip:
    """Timings of one request (blackbox's roundTripTrace)."""

    __slots__ = ("connect_done", "dns_done", "exchange", "got_conn", "start", "tls",
                 "tls_done", "tls_start")

    def __init__(self, start: float, tls: bool) -> None:
        self.start = start
        self.dns_done = 0.0
        self.connect_done = 0.0
        self.got_conn = 0.0
        self.tls = tls
        self.tls_start = 0.0
        self.tls_done = 0.0
        self.exchange: _Exchange | None = None


class _Target:
    """A URL split the way the request needs it."""

    __slots__ = ("host", "hostport", "password", "port", "request_uri", "scheme", "user")

    def __init__(self, url: str) -> None:
        if any(c < " " or c == "\x7f" for c in url):
            # as Go's url.Parse: a CR/LF in a scrape's target must not become a header
            raise ValueError("invalid control character in URL")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL with a host")
        self.scheme = parts.scheme
        self.host = parts.hostname
        port = parts.port  # ValueError on a bad port
        self.port = port or (443 if parts.scheme == "https" else 80)
        netloc = parts.netloc.rpartition("@")[2]
        self.hostport = netloc
        uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Go escapes what may not appear on the request line (spaces, non-ASCII)
        self.request_uri = quote(uri, safe="/?#[]@!$&'()*+,;=:%~-._")
        self.user = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None


class _State:
    """How far a probe got: the final exchange, its TLS facts, the redirects."""

    __slots__ = ("facts", "final", "redirects", "request_errored")

    def __init__(self) -> None:
        self.final: _Exchange | None = None
        self.facts: TlsFacts | None = None
        self.redirects = 0
        self.request_errored = False


_TARGETS: dict[str, _Target] = {}


def _target(url: str) -> _Target:
    """``url`` split (cached: Prometheus asks for the same targets on every scrape)."""
    found = _TARGETS.get(url)
    if found is None:
        found = _Target(url)
        if len(_TARGETS) >= 4096:
            _TARGETS.clear()
        _TARGETS[url] = found
    return found


def _regexes(patterns: list[str]) -> list[Any]:
    return [compile_regexp(p) for p in patterns]


class HttpProber:
    """The http prober for one module (its regexes compiled once)."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.cfg: HTTPProbe = module.http
        cfg = self.cfg
        self.body_match = _regexes(cfg.fail_if_body_matches_regexp)
        self.body_not_match = _regexes(cfg.fail_if_body_not_matches_regexp)
        self.header_match = [(h, compile_regexp(h.regexp)) for h in cfg.fail_if_header_matches]
        self.header_not_match = [(h, compile_regexp(h.regexp))
                                 for h in cfg.fail_if_header_not_matches]
        self.keep_body = bool(self.body_match or self.body_not_match)
        self.method = cfg.method.upper() if cfg.method else "GET"
        self.host_header = next((v for k, v in cfg.headers.items() if k.lower() == "host"), None)
        extra = "".join(f"{k}: {v}\r\n" for k, v in cfg.headers.items()
                        if k.lower() not in ("host", "content-length"))
        if not any(k.lower() == "user-agent" for k in cfg.headers):
            extra = f"User-Agent: {USER_AGENT}\r\n" + extra
        if not any(k.lower() == "connection" for k in cfg.headers):
            extra += "Connection: close\r\n"
        self.extra_headers = extra
        self.body = cfg.body.encode()

    # the request

    def _request(self, method: str, target: _Target, host: str, body: bytes,
                 cookies: dict[str, str], authorization: str | None, first_host: bool,
                 ) -> bytes:
        head = f"{method} {target.request_uri} HTTP/1.1\r\nHost: {host}\r\n"
        extra = self.extra_headers
        if not first_host:
            # Go drops credentials and cookies on a redirect to another host; so does the
            # module's own authorization here (blackbox would still send it)
            extra = "".join(line + "\r\n" for line in extra.split("\r\n") if line and
                            line.split(":", 1)[0].lower() not in _SENSITIVE_ON_NEW_HOST)
            authorization = None
        head += extra
        if authorization is None and target.user is not None:
            raw = f"{target.user}:{target.password or ''}".encode()
            authorization = "Basic " + base64.b64encode(raw).decode()
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        if cookies:
            head += "Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()) + "\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        return (head + "\r\n").encode("latin-1", "replace") + body

    async def _connect(self, loop: asyncio.AbstractEventLoop, ex: _Exchange, trip: _Trip,
                       address: Address, target: _Target, sni: str | None) -> None:
        await loop.create_connection(lambda: ex, address.ip, target.port)
        trip.connect_done = time.perf_counter()
        if trip.tls:
            ctx = bbtls.context(self.cfg.tls_config, ("http/1.1",))
            trip.tls_start = time.perf_counter()
            assert ex.transport is not None
            new = await loop.start_tls(ex.transport, ex, ctx, server_hostname=sni)
            trip.tls_done = time.perf_counter()
            if new is None:
                raise ConnectionError("TLS handshake did not complete")
            ex.transport = new
        trip.got_conn = time.perf_counter()

    async def probe(self, target_url: str, series: Series, deadline: float,
                    hostname: str | None = None) -> bool:
        """Probe ``target_url`` until ``deadline`` (loop time); set the series; True on success."""
        cfg = self.cfg
        for name in ("probe_http_content_length", "probe_http_uncompressed_body_length",
                     "probe_http_redirects", "probe_http_ssl", "probe_http_status_code",
                     "probe_http_version", "probe_failed_due_to_regex"):
            series.set(name, 0.0)
        series.set(_DURATION, 0.0, _RESOLVE)
        if not target_url.startswith(("http://", "https://")):
            target_url = "http://" + target_url
        try:
            target = _target(target_url)
        except ValueError:
            return False
        if target.password:
            redact.register(target.password)
        trips: list[_Trip] = []
        state = _State()
        try:
            async with asyncio.timeout_at(deadline):
                address, lookup_s, _ = await choose(target.host, cfg.preferred_ip_protocol,
                                                    cfg.ip_protocol_fallback, series)
                series.set(_DURATION, lookup_s, _RESOLVE)
                if address is None:
                    return False
                for phase in _PHASES:
                    series.add(_DURATION, 0.0, _LABELS[phase])
                await self._exchanges(target, target_url, address, hostname, trips, state)
        except (OSError, ValueError, TimeoutError):
            # refused, reset, TLS failure, a bad redirect URL, the deadline: a failed probe
            final = state.final
            if final is not None and not final.status:
                state.final = None
            elif final is not None and not final.end:
                final.end = time.perf_counter()
                if final.error is None:
                    final.error = "timed out"
        finally:
            for trip in trips:
                if trip.exchange is not None and trip.exchange.transport is not None:
                    trip.exchange.transport.close()
        return self._judge(series, trips, state)

    async def _exchanges(self, target: _Target, target_url: str, address: Address,
                         hostname: str | None, trips: list[_Trip], state: _State) -> None:
        """The request and its redirects; ``state`` says how far it got."""
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        host_override = hostname or self.host_header
        sni = cfg.tls_config.server_name or host_override or target.host
        authorization = bbtls.authorization(cfg)
        method, body = self.method, self.body
        first_host = target.hostport
        host_header = host_override or target.hostport
        cookies: dict[str, str] = {}
        trip_start = resolved_at = time.perf_counter()
        current, current_url = target, target_url
        decoder = cfg.compression not in ("", "identity")
        while True:
            trip = _Trip(trip_start, current.scheme == "https")
            trip.dns_done = resolved_at
            trips.append(trip)
            same_host = current.hostport == first_host
            ex = _Exchange(loop, head_only=method == "HEAD", keep_body=self.keep_body,
                           limit=cfg.body_size_limit,
                           decoder=_Decoder(cfg.compression) if decoder else None)
            trip.exchange = ex
            state.final = ex
            request = self._request(method, current, host_header, body,
                                    cookies if same_host else {}, authorization, same_host)
            await self._connect(loop, ex, trip, address, current,
                                sni if same_host else current.host)
            assert ex.transport is not None
            state.facts = (tls_facts(ex.transport.get_extra_info("ssl_object"))
                           if trip.tls else None)
            ex.transport.write(request)
            await ex.head
            if ex.error is not None:
                if not ex.status:
                    state.final = None
                return
            location = ex.header("location")
            if ex.status in _REDIRECTS and location:
                state.redirects = len(trips)
                if state.redirects > MAX_REDIRECTS or not cfg.follow:
                    # Go's client returns this response with an error: its body is not read
                    state.request_errored = True
                    ex.end = time.perf_counter()
                    return
                for value in ex.header("set-cookie"):
                    name, _, rest = value.partition("=")
                    cookies[name.strip()] = rest.split(";", 1)[0].strip()
                ex.transport.close()
                if ex.status in (301, 302, 303) and method != "HEAD":
                    method, body = "GET", b""
                current_url = urljoin(current_url, location[0])
                current = _Target(current_url)
                if current.hostport != first_host:
                    host_header = current.hostport
                trip_start = time.perf_counter()
                if current.host != target.host:
                    address = (await lookup(current.host))[0]
                resolved_at = time.perf_counter()
                continue
            await ex.done
            if ex.error is not None and not ex.status:
                state.final = None
            return

    def _judge(self, series: Series, trips: list[_Trip], state: _State) -> bool:
        cfg = self.cfg
        final, facts, request_errored = state.final, state.facts, state.request_errored
        for i, trip in enumerate(trips):
            if i:
                series.add(_DURATION, trip.dns_done - trip.start, _RESOLVE)
            if not trip.got_conn:
                continue
            if trip.tls:
                series.add(_DURATION, trip.connect_done - trip.dns_done, _LABELS["connect"])
                series.add(_DURATION, trip.tls_done - trip.tls_start, _LABELS["tls"])
            else:
                series.add(_DURATION, trip.got_conn - trip.dns_done, _LABELS["connect"])
            ex = trip.exchange
            if ex is None or not ex.first_byte:
                continue
            series.add(_DURATION, max(0.0, ex.first_byte - trip.got_conn),
                       _LABELS["processing"])
            if ex is final and final.end:
                series.add(_DURATION, max(0.0, final.end - ex.first_byte), _LABELS["transfer"])
        series.set("probe_http_redirects", float(state.redirects))
        if final is None:
            return False
        success = (final.status in cfg.valid_status_codes if cfg.valid_status_codes
                   else 200 <= final.status < 300)
        if success and (self.header_match or self.header_not_match):
            success = self._headers_ok(final)
            series.set("probe_failed_due_to_regex", 0.0 if success else 1.0)
        if success and self.keep_body:
            text = b"".join(final.body or [])
            success = (not any(r.search(text) for r in self.body_match)
                       and all(r.search(text) for r in self.body_not_match))
            series.set("probe_failed_due_to_regex", 0.0 if success else 1.0)
        if not request_errored:
            if final.error is not None:
                success = False
            series.set("probe_http_uncompressed_body_length", float(final.body_len))
        for value in final.header("last-modified")[:1]:
            try:
                stamp = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
            series.set("probe_http_last_modified_timestamp_seconds", float(int(stamp)))
        try:
            version = float(final.version) if final.version else 0.0
        except ValueError:
            version = 0.0
        series.set("probe_http_version", version)
        if cfg.valid_http_versions and f"HTTP/{final.version}" not in cfg.valid_http_versions:
            success = False
        if trips[-1].tls and facts is not None:
            series.set("probe_http_ssl", 1.0)
            set_tls_series(series, facts)
            if cfg.fail_if_ssl:
                success = False
        elif cfg.fail_if_not_ssl:
            success = False
        series.set("probe_http_status_code", float(final.status))
        series.set("probe_http_content_length", float(final.content_length))
        return success

    def _headers_ok(self, final: _Exchange) -> bool:
        for spec, regexp in self.header_match:
            values = final.header(spec.header)
            if not values and not spec.allow_missing:
                return False
            if any(regexp.search(v) for v in values):
                return False
        for spec, regexp in self.header_not_match:
            values = final.header(spec.header)
            if not values:
                if not spec.allow_missing:
                    return False
                continue
            if not any(regexp.search(v) for v in values):
                return False
        return True

