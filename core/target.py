"""The system under test: its services, the journey user, and what chaos may touch.

Every layer speaks of the target (probes call its services, chaos touches only what it
names, gate suites get it as a fixture), so its model sits on the ground floor.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from core.config import Model
from core.http import secret_values, split_userinfo


class Credentials(Model):
    """The journey user; the password comes from the environment and is always redacted."""

    username: str | None = None
    password: SecretStr | None = None


class ProcessTarget(Model):
    """A local process chaos may pause or kill: its pidfile and what its command line shows."""

    pidfile: str = Field(description="file holding the process id")
    command_contains: str = Field(
        min_length=1, description="the process's command line must contain this, so a stale "
        "pidfile whose PID was reused by another program is refused")


class ToxiproxyTarget(Model):
    """A Toxiproxy server; chaos touches only the proxies named here."""

    url: str = Field(description="Toxiproxy API, e.g. http://127.0.0.1:8474")
    proxies: dict[str, str] = Field(default_factory=dict,
                                    description="service -> Toxiproxy proxy name")

    @model_validator(mode="after")
    def _url(self) -> ToxiproxyTarget:
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"url: {self.url!r} is not an http(s) URL")
        return self


PROTECTED_ENVIRONMENTS = ("production", "prod", "prd", "live")
"""Environments chaos refuses without ``--allow-production`` (compared case-insensitively)."""

_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$|^[0-9a-f:.]+$")


def url_host(url: str) -> str:
    """The host of a URL, lower case, without user-info, port or IPv6 brackets ('' if none)."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:  # e.g. an unclosed IPv6 bracket: no host we could allow
        return ""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine by itself: ``localhost`` or a loopback address.

    Names are not resolved: a name that resolves to 127.0.0.1 today may not tomorrow.
    """
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class Target(Model):
    """The system under test."""

    name: str = "demo"
    environment: str = Field(
        "staging", description="an environment in protected_environments (e.g. production) "
        "is refused chaos unless --allow-production")
    protected_environments: list[str] = Field(
        default=list(PROTECTED_ENVIRONMENTS),  # pydantic copies it for each instance
        description="environment names chaos refuses without --allow-production, compared "
                    "case-insensitively (docs/chaos.md)")
    chaos_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts other than loopback that faults may act on (fault proxies, "
                    "Toxiproxy, the services a fault names, an experiment's targets), e.g. "
                    "[staging.example.com, '*.staging.example.com']; loopback is always "
                    "allowed (docs/chaos.md)")
    services: dict[str, str] = Field(
        default_factory=dict, description="base URL per service, e.g. {web: https://staging."
        "example.com}; credentials in the URL (https://user:pass@host) are sent as basic "
        "auth and redacted")
    fault_proxies: dict[str, str] = Field(
        default_factory=dict,
        description="readygate fault proxy control URL per service; chaos touches only these")
    credentials: Credentials = Field(default_factory=Credentials)
    processes: dict[str, ProcessTarget] = Field(
        default_factory=dict,
        description="local processes `process` faults may touch, by name (docs/chaos.md)")
    toxiproxy: ToxiproxyTarget | None = Field(
        None, description="a Toxiproxy server and the proxies `toxiproxy` faults may touch")

    @field_validator("protected_environments")
    @classmethod
    def _environments(cls, names: list[str]) -> list[str]:
        if any(not name.strip() for name in names):
            raise ValueError("an environment name must not be empty")
        return names

    @field_validator("chaos_allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST_RE.match(host.lower()):
                shown = url_host(host) if "://" in host else ""
                hint = f" (write {shown!r})" if shown else ""
                raise ValueError(f"{host!r} is not a host name or address{hint}; give the "
                                 "host alone, or *.domain for its subdomains")
        return hosts

    def is_protected(self) -> bool:
        """Whether the environment is protected (case and surrounding spaces ignored)."""
        env = self.environment.strip().casefold()
        return any(env == p.strip().casefold() for p in self.protected_environments)

    def chaos_allows(self, host: str) -> bool:
        """Whether faults may act on ``host``: loopback, or listed in chaos_allowed_hosts."""
        host = host.lower().rstrip(".")
        if is_loopback(host):
            return True
        for allowed in self.chaos_allowed_hosts:
            allowed = allowed.lower().rstrip(".")
            if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return True
        return False

    @model_validator(mode="after")
    def _urls(self) -> Target:
        for kind, mapping in (("services", self.services), ("fault_proxies", self.fault_proxies)):
            for name, url in mapping.items():
                shown, credentials = split_userinfo(url)
                if not re.match(r"^https?://", url):
                    raise ValueError(f"{kind}.{name}: {shown!r} is not an http(s) URL")
                if credentials is not None and 0 < len(credentials[1]) < 4:
                    # core.redact cannot mask shorter values without masking ordinary words
                    raise ValueError(f"{kind}.{name}: the password in the URL is shorter than "
                                     "4 characters: too short to be masked in output")
        return self

    def secrets(self) -> list[str]:
        """The journey user's password and the credentials in any URL's user-info.

        A service URL keeps its user-info (httpx sends it as basic auth); these values are
        registered with :mod:`core.redact`, and URLs are shown without it.
        """
        return secret_values(self)
