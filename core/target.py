"""The system under test: its services, the journey user, and what chaos may touch.

Every layer speaks of the target (probes call its services, chaos touches only what it
names, gate suites get it as a fixture), so its model sits on the ground floor.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, model_validator

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


class Target(Model):
    """The system under test."""

    name: str = "demo"
    environment: str = Field(
        "staging", description="'production' is refused unless --allow-production")
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
