"""A user's ``blackbox.yml``, read as blackbox_exporter 0.23 reads it, or refused by line.

Every option of blackbox_exporter's http, tcp, dns and icmp modules that readygate
implements is a typed field here, with blackbox's defaults (``preferred_ip_protocol: ip6``
with fallback, redirects followed, DNS queries of type ANY with recursion desired ...).
An option blackbox knows but readygate does not implement is a one-line error naming the
file, line and key (exit 3), never skipped: a module that silently did less than the user
wrote would pass probes blackbox would fail. Misspelt keys are errors too, as in blackbox
(it decodes with known fields only).

Regular expressions are RE2, compiled with Google's RE2 like Go's ``regexp`` (``$`` is the
end of the text, no lookarounds), so a pattern means the same thing in both exporters.
Relative file paths (CA bundles, certificates, password and token files) are relative to
the blackbox.yml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from core import redact
from core.config import Loc, error_at, load_yaml, read_text
from core.errors import ConfigError
from core.http import check_secret_lengths, secret_values

try:
    import re2

    _RE2_OPTIONS: Any = re2.Options()
    _RE2_OPTIONS.log_errors = False  # a bad pattern is our one-line error, not RE2's log
except ImportError:  # no wheel for this platform (google-re2): Python's re, nearly the same
    re2 = None


def compile_regexp(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (Go's syntax); ValueError saying why it does not compile."""
    if re2 is None:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"could not compile regular expression /{pattern}/: "
                             f"{exc}") from None
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"could not compile regular expression /{pattern}/: {reason}") from None


def _regexp(value: str) -> str:
    compile_regexp(value)
    return value


GoRegexp = Annotated[str, AfterValidator(_regexp)]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(value: Any) -> Any:
    """Go's ``time.ParseDuration`` syntax (``5s``, ``1m30s``, ``500ms``) as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is written like 5s, 1m30s or 500ms")
    if isinstance(value, int | float):
        if value != 0:  # yaml.v3 would read a bare number as nanoseconds: say so instead
            raise ValueError("a duration needs a unit: 5s, 1m30s, 500ms")
        return 0.0
    if not isinstance(value, str):
        raise ValueError("a duration is written like 5s, 1m30s or 500ms")
    text = value.strip()
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (write 5s, 1m30s or 500ms)")
    return total


GoDuration = Annotated[float, BeforeValidator(_go_duration)]

_SIZE = re.compile(r"^(\d+)\s*([KMGTPE]i?B|B)?$")
_SIZE_POWER = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def _base2_bytes(value: Any) -> Any:
    """``units.Base2Bytes`` as blackbox reads it: 512, 10KB, 1MiB (KB = KiB = 1024 bytes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size (write 512, 64KB or 10MiB)")
    unit = (match.group(2) or "B")[0]
    return int(match.group(1)) * 1024 ** _SIZE_POWER[unit]


class BBModel(BaseModel):
    """blackbox.yml sections: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class TLSConfig(BBModel):
    """prometheus/common's ``tls_config``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None

    @model_validator(mode="after")
    def _pairs(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self


class BasicAuth(BBModel):
    """HTTP basic credentials."""

    username: str = ""
    password: SecretStr | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BasicAuth:
        if self.password is not None and self.password_file is not None:
            raise ValueError("at most one of password and password_file")
        return self


class Authorization(BBModel):
    """An ``Authorization: TYPE CREDENTIALS`` header."""

    type: str = "Bearer"
    credentials: SecretStr | None = None
    credentials_file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Authorization:
        if self.credentials is not None and self.credentials_file is not None:
            raise ValueError("at most one of credentials and credentials_file")
        if self.type.strip().lower() == "basic":
            raise ValueError("authorization type Basic: use basic_auth")
        return self


class HeaderMatch(BBModel):
    """``fail_if_header_(not_)matches`` entry."""

    header: str = Field(min_length=1)
    regexp: GoRegexp = Field(min_length=1)
    allow_missing: bool = False


IpProtocol = Literal["ip4", "ip6"]
Compression = Literal["", "identity", "gzip", "deflate", "br"]


class HTTPProbe(BBModel):
    """An http module's ``http:`` section."""

    valid_status_codes: list[int] = Field(default_factory=list)
    valid_http_versions: list[str] = Field(default_factory=list)
    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    skip_resolve_phase_with_proxy: bool = False  # without proxy_url it changes nothing
    no_follow_redirects: bool | None = None
    follow_redirects: bool = True
    enable_http2: bool | None = None
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    fail_if_body_matches_regexp: list[GoRegexp] = Field(default_factory=list)
    fail_if_body_not_matches_regexp: list[GoRegexp] = Field(default_factory=list)
    fail_if_header_matches: list[HeaderMatch] = Field(default_factory=list)
    fail_if_header_not_matches: list[HeaderMatch] = Field(default_factory=list)
    body: str = ""
    compression: Compression = ""
    body_size_limit: Annotated[int, BeforeValidator(_base2_bytes)] = 0
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)

    @model_validator(mode="after")
    def _checks(self) -> HTTPProbe:
        schemes = [n for n in ("basic_auth", "authorization", "bearer_token",
                               "bearer_token_file") if getattr(self, n) is not None]
        if len(schemes) > 1:
            raise ValueError(f"at most one of basic_auth, authorization, bearer_token and "
                             f"bearer_token_file (got {', '.join(schemes)})")
        if not self.method or any(c.isspace() for c in self.method):
            raise ValueError(f"method {self.method!r} is not an HTTP method")
        if self.compression == "br":
            try:
                import brotli  # type: ignore[import-untyped]  # noqa: F401
            except ImportError:
                raise ValueError("compression br needs the brotli package (pip install "
                                 "brotli)") from None
        for name, value in self.headers.items():
            if any(c in name + value for c in "\r\n\0") or not name.strip():
                raise ValueError(f"header {name!r}: names and values are one line each")
            if name.lower() == "accept-encoding" and not accepts(value, self.compression):
                raise ValueError(f'invalid configuration "{name}: {value}", '
                                 f'"compression: {self.compression}"')
        return self

    @property
    def follow(self) -> bool:
        """Whether redirects are followed (``no_follow_redirects`` wins, as in blackbox)."""
        if self.no_follow_redirects is not None:
            return not self.no_follow_redirects
        return self.follow_redirects


def accepts(accept_encoding: str, compression: str) -> bool:
    """Whether an Accept-Encoding header admits ``compression`` (blackbox's rule)."""
    if not compression or not accept_encoding:
        return True
    weighted: list[tuple[str, float]] = []
    for part in accept_encoding.split(","):
        name, _, params = part.partition(";")
        quality = 1.0
        if params:
            try:
                quality = round(float(params.strip().removeprefix("q=")), 3)
            except ValueError:
                quality = 0.0
        weighted.append((name.strip(), quality))
    weighted.sort(key=lambda e: -e[1])
    for name, quality in weighted:
        if name in (compression, "*"):
            return quality > 0
    return False


class QueryResponse(BBModel):
    """One ``query_response`` step of a tcp module."""

    expect: GoRegexp | None = None
    send: str = ""
    starttls: bool = False


class TCPProbe(BBModel):
    """A tcp module's ``tcp:`` section."""

    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None
    query_response: list[QueryResponse] = Field(default_factory=list)
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)


class ICMPProbe(BBModel):
    """An icmp module's ``icmp:`` section."""

    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None
    payload_size: int = Field(0, ge=0, le=65000)
    dont_fragment: bool = False
    ttl: int = Field(64, ge=0, le=255)


class RRValidator(BBModel):
    """Regexes on one section of a DNS answer."""

    fail_if_matches_regexp: list[GoRegexp] = Field(default_factory=list)
    fail_if_all_match_regexp: list[GoRegexp] = Field(default_factory=list)
    fail_if_not_matches_regexp: list[GoRegexp] = Field(default_factory=list)
    fail_if_none_matches_regexp: list[GoRegexp] = Field(default_factory=list)


def _rdata_name(kind: str, value: str) -> str:
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype

    parse = {"type": dns.rdatatype.from_text, "class": dns.rdataclass.from_text,
             "rcode": dns.rcode.from_text}[kind]
    try:
        parse(value)
    except Exception:  # dnspython raises several types for unknown names
        raise ValueError(f"query {kind} {value!r} is not valid" if kind != "rcode"
                         else f"rcode {value!r} is not valid") from None
    return value


class DNSProbe(BBModel):
    """A dns module's ``dns:`` section."""

    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    dns_over_tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    source_ip_address: str | None = None
    transport_protocol: Literal["udp", "tcp"] = "udp"
    query_class: Annotated[str, AfterValidator(lambda v: _rdata_name("class", v))] = "IN"
    query_name: str = Field(min_length=1)
    query_type: Annotated[str, AfterValidator(lambda v: _rdata_name("type", v))] = "ANY"
    recursion_desired: bool = True
    valid_rcodes: list[Annotated[str, AfterValidator(lambda v: _rdata_name("rcode", v))]] = \
        Field(default_factory=lambda: ["NOERROR"])
    validate_answer_rrs: RRValidator = Field(default_factory=RRValidator)
    validate_authority_rrs: RRValidator = Field(default_factory=RRValidator)
    validate_additional_rrs: RRValidator = Field(default_factory=RRValidator)

    @model_validator(mode="after")
    def _dot(self) -> DNSProbe:
        if self.dns_over_tls and self.transport_protocol != "tcp":
            raise ValueError("dns_over_tls needs transport_protocol: tcp")
        return self


class Module(BBModel):
    """One module of blackbox.yml."""

    prober: Literal["http", "tcp", "dns", "icmp"]
    timeout: GoDuration = 0.0
    http: HTTPProbe = Field(default_factory=HTTPProbe)
    tcp: TCPProbe = Field(default_factory=TCPProbe)
    icmp: ICMPProbe = Field(default_factory=ICMPProbe)
    dns: DNSProbe | None = None

    @model_validator(mode="after")
    def _dns(self) -> Module:
        if self.prober == "dns" and self.dns is None:
            raise ValueError("a dns module needs dns.query_name")
        return self


class BlackboxFile(BBModel):
    """The whole blackbox.yml."""

    modules: dict[str, Module] = Field(default_factory=dict)


# Options blackbox_exporter (0.23 and later) or prometheus/common's HTTP client knows that
# readygate does not implement, and why: refused by name rather than silently skipped.
_UNSUPPORTED: dict[str, dict[str, str]] = {
    "http": {
        "proxy_url": "probing through a proxy is not implemented",
        "no_proxy": "probing through a proxy is not implemented",
        "proxy_from_environment": "probing through a proxy is not implemented",
        "proxy_connect_header": "probing through a proxy is not implemented",
        "oauth2": "OAuth 2 client credentials are not implemented",
        "enable_http3": "readygate's probes speak HTTP/1.1",
        "body_file": "not in blackbox_exporter 0.23; use body",
        "fail_if_body_json_matches_cel": "CEL expressions are not implemented",
        "fail_if_body_json_not_matches_cel": "CEL expressions are not implemented",
        "http_headers": "not implemented; use headers",
    },
    "tls_config": {
        "ca": "inline PEM is not implemented; use ca_file",
        "cert": "inline PEM is not implemented; use cert_file",
        "key": "inline PEM is not implemented; use key_file",
        "key_file_password": "not implemented",
    },
    "module": {"grpc": "the grpc prober is not implemented",
               "unix": "the unix prober is not implemented",
               "websocket": "the websocket prober is not implemented"},
}
_PROBERS_NOT_IMPLEMENTED = ("grpc", "unix", "websocket")


def _refuse_unsupported(data: dict[str, Any], path: str, lines: dict[Loc, int]) -> None:
    modules = data.get("modules")
    if not isinstance(modules, dict):
        return

    def refuse(loc: Loc, why: str) -> ConfigError:
        return error_at(f"'{loc[-1]}' is a blackbox_exporter option readygate does not "
                        f"support ({why})", path, loc, lines)

    for name, module in modules.items():
        if not isinstance(module, dict):
            continue
        at: Loc = ("modules", name)
        prober = module.get("prober")
        if prober in _PROBERS_NOT_IMPLEMENTED:
            raise error_at(f"prober {prober!r} is not supported by readygate (http, tcp, dns "
                           "and icmp are)", path, (*at, "prober"), lines)
        for key, why in _UNSUPPORTED["module"].items():
            if key in module:
                raise refuse((*at, key), why)
        for section in ("http", "tcp", "dns"):
            body = module.get(section)
            if not isinstance(body, dict):
                continue
            if section == "http":
                for key, why in _UNSUPPORTED["http"].items():
                    if key in body:
                        raise refuse((*at, section, key), why)
                if body.get("enable_http2") is True:
                    raise refuse((*at, section, "enable_http2"),
                                 "readygate's probes speak HTTP/1.1; remove it or set false")
                versions = body.get("valid_http_versions")
                if isinstance(versions, list) and versions and not any(
                        v in ("HTTP/1.1", "HTTP/1.0") for v in versions):
                    raise error_at(f"readygate's probes speak HTTP/1.1, so {versions} could "
                                   "never match", path, (*at, section, "valid_http_versions"),
                                   lines)
            tls = body.get("tls_config")
            if isinstance(tls, dict):
                for key, why in _UNSUPPORTED["tls_config"].items():
                    if key in tls:
                        raise refuse((*at, section, "tls_config", key), why)


_FILE_KEYS = ("ca_file", "cert_file", "key_file", "password_file", "credentials_file",
              "bearer_token_file")


def _resolve_files(value: Any, base: Path, path: str, lines: dict[Loc, int], loc: Loc) -> Any:
    """Relative file paths made absolute against the config's directory; missing ones refused."""
    if isinstance(value, BaseModel):
        update: dict[str, Any] = {}
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name in _FILE_KEYS and isinstance(item, str):
                p = Path(item) if Path(item).is_absolute() else base / item
                if not p.is_file():
                    raise error_at(f"file {item!r} not found (relative paths are relative to "
                                   "the blackbox.yml)", path, (*loc, name), lines)
                update[name] = str(p)
            else:
                resolved = _resolve_files(item, base, path, lines, (*loc, name))
                if resolved is not item:
                    update[name] = resolved
        return value.model_copy(update=update) if update else value
    if isinstance(value, dict):
        out = {k: _resolve_files(v, base, path, lines, (*loc, k)) for k, v in value.items()}
        return out if any(out[k] is not value[k] for k in value) else value
    return value


def parse_blackbox(text: str, path: str = "blackbox.yml") -> dict[str, Module]:
    """Parse blackbox.yml text; raise :class:`ConfigError` naming file:line and key."""
    from pydantic import ValidationError

    from core.config import format_validation

    data, lines = load_yaml(text, path)
    _refuse_unsupported(data, path, lines)
    try:
        parsed = BlackboxFile.model_validate(data)
    except ValidationError as exc:
        raise format_validation(exc, data, lines, path, BlackboxFile) from None
    check_secret_lengths(parsed, path, lines)
    base = Path(path).resolve().parent if Path(path).is_file() else Path.cwd()
    parsed = _resolve_files(parsed, base, path, lines, ())
    redact.register(*secret_values(parsed))
    # Contexts and credential files load now, so a bad file is a start-up error by line.
    from probes.blackbox.tls import check_module_files

    for name, module in parsed.modules.items():
        check_module_files(module, path, lines, ("modules", name))
    return dict(parsed.modules)


def load_blackbox(path: str | Path) -> dict[str, Module]:
    """Read and validate a blackbox.yml: its modules by name."""
    return parse_blackbox(read_text(path, "blackbox config"), str(path))
