"""The demo system: the readygate stack (sink, Alertmanager, Prometheus) plus the demo services.

:class:`stack.base.StackBase` starts the sink, Alertmanager and Prometheus and waits
until Prometheus scrapes every target and knows the Alertmanager; this module adds the
demo's own services and what they need: storage, the fault proxy in front of storage,
and web (whose storage URL is the proxy, so faults can be injected between web and
storage), the demo's alert rules (runbook links point at web, so they are final only
once web is up) and an Alertmanager that sends every alert to the sink. Prometheus
finds web and storage through ``file_sd`` files written as soon as their ports are known.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.config import read_text
from core.errors import ConfigError, StackError
from core.procs import start_python_service
from core.scratch import MARKER, mark_owner
from core.times import rfc3339_seconds
from gates.backends.config import SignalBackend
from stack.base import (
    BINARY_READY_TIMEOUT_S,
    DISCOVERY_TIMEOUT_S,
    POLL_S,
    PYTHON_SERVICE_TIMEOUT_S,
    StackBase,
)
from stack.files import (
    RECEIVER_NAME,
    SINK_URL_PLACEHOLDER,
    SINK_WEBHOOK_PATH,
    sink_alertmanager_config,
)
from stack.files import prometheus_config_text as _prometheus_config_text
from stack.tools import (
    BINARIES,
    duration,
    file_sd_targets,
    first_error_line,
    free_port,
    require_binary,
    run_check,
    write_atomic,
)

__all__ = [
    "BINARY_READY_TIMEOUT_S", "DISCOVERY_TIMEOUT_S", "POLL_S", "PYTHON_SERVICE_TIMEOUT_S",
    "QUIET_TIMEOUT_S", "RECEIVER_NAME", "RULES_PATH", "SINK_URL_PLACEHOLDER",
    "SINK_WEBHOOK_PATH", "WEB_URL_PLACEHOLDER", "DemoStack", "StackOptions", "StackUrls",
    "alertmanager_config_text", "default_rules_text", "duration", "file_sd_targets",
    "fill_placeholders", "first_error_line", "free_port", "prometheus_config_text",
    "require_binary", "run_check",
]

RULES_PATH = Path(__file__).parent / "rules" / "alerts.yml"
"""The demo's shipped alert rules."""

WEB_URL_PLACEHOLDER = "http://web.readygate.invalid"
"""Base URL in rules and Alertmanager config texts that is replaced by the web service's URL."""

# After a reconfigure: the previous run's alerts resolve within a rate window or two.
QUIET_TIMEOUT_S = 60.0
# Prometheus answers /-/reload once the rules are loaded: seconds on a busy machine (a 5 s
# read timeout ended a selftest variant in a CI rehearsal).
RELOAD_TIMEOUT_S = 30.0

_DEMO_JOBS = ("web", "storage")


@dataclass(frozen=True)
class StackOptions:
    """How to run the demo stack; every field has a demo-friendly default but the password."""

    password: str = field(repr=False)
    sabotage: tuple[str, ...] = ()
    rules_text: str | None = None
    alertmanager_config_text: str | None = None
    scrape_interval_s: float = 1.0
    evaluation_interval_s: float = 1.0
    group_interval_s: float = 1.0
    retention: str = "2h"

    def __post_init__(self) -> None:
        if not self.password:
            raise ConfigError("the demo password must not be empty", key="password")
        for name in ("scrape_interval_s", "evaluation_interval_s", "group_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)}", key=name)


@dataclass(frozen=True)
class StackUrls:
    """Base URLs of every component of a started demo stack."""

    web: str
    storage: str
    proxy: str
    sink: str
    prometheus: str
    alertmanager: str


def default_rules_text() -> str:
    """The shipped alert rules, placeholders included."""
    return RULES_PATH.read_text(encoding="utf-8")


def read_rules(path: str | Path) -> str:
    """A rules file of the user's (``--rules``, ``demo.rules_file``): UTF-8 text up to 10 MB,
    else one line naming the file (not found, a directory, binary, too large)."""
    return read_text(path, "rules")


def fill_placeholders(text: str, *, web_url: str, sink_url: str) -> str:
    """Replace the placeholder base URLs in a rules or Alertmanager config text."""
    return (text.replace(WEB_URL_PLACEHOLDER, web_url.rstrip("/"))
            .replace(SINK_URL_PLACEHOLDER, sink_url.rstrip("/")))


def alertmanager_config_text(*, group_interval_s: float = 1.0,
                             webhook_url: str = SINK_URL_PLACEHOLDER + SINK_WEBHOOK_PATH) -> str:
    """Alertmanager config: every alert to one webhook receiver, grouped by alertname+service."""
    return sink_alertmanager_config(group_interval_s=group_interval_s, webhook_url=webhook_url,
                                    group_by=["alertname", "service"])


def prometheus_config_text(*, scrape_interval_s: float = 1.0,
                           evaluation_interval_s: float = 1.0,
                           rules_file: str = "rules/alerts.yml",
                           targets_dir: str = "targets",
                           job_names: tuple[str, ...] = _DEMO_JOBS) -> str:
    """Prometheus config: jobs ``web`` and ``storage`` (or ``job_names``) and the
    Alertmanager, all via file_sd.

    Relative paths are relative to the config file, as Prometheus resolves them.
    """
    jobs: list[dict[str, Any]] = [
        {"job_name": job, "file_sd_configs": [{"files": [f"{targets_dir}/{job}.json"]}]}
        for job in job_names]
    return _prometheus_config_text(
        jobs=jobs, rule_files=[rules_file], scrape_interval_s=scrape_interval_s,
        evaluation_interval_s=evaluation_interval_s,
        alertmanager_sd_file=f"{targets_dir}/alertmanager.json")


class DemoStack(StackBase[StackUrls]):
    """The demo system as child processes of this one: start, wait until really ready, stop."""

    label = "demo stack"
    components: tuple[str, ...] = ("sink", "storage", "proxy", "web", "alertmanager",
                                   "prometheus")
    description = "sink, storage, fault proxy, web, Alertmanager, Prometheus"
    """What the stack runs, for the "starting" message."""

    def __init__(self, options: StackOptions, workdir: Path,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(workdir, progress, retention=options.retention)
        self.options = options
        if self.workdir.is_dir() and not (self.workdir / MARKER).exists():
            # the services' logs and the sink's database land here unscrubbed: marked with
            # this process, a SIGKILLed run's directory is swept at the next start
            mark_owner(self.workdir)
        self._web_url: asyncio.Future[str] | None = None
        self._rules_template = ""

    @property
    def rules_path(self) -> Path:
        """The alert rules Prometheus loads (runbook links filled in once web is up)."""
        return self.prometheus_dir / "rules" / "alerts.yml"

    def scrape_jobs(self) -> Mapping[str, int]:
        """web and storage, one target each."""
        return dict.fromkeys(_DEMO_JOBS, 1)

    def signal_backends(self) -> dict[str, SignalBackend]:
        """Per-signal backends the gate must read instead of the sink (none: the sink)."""
        return {}

    def _telemetry_args(self, sink_url: str) -> list[str]:
        """Where web and storage send their telemetry (all of it to the sink here)."""
        return ["--sink-url", sink_url]

    async def reconfigure(self, *, sabotage: tuple[str, ...] = (), rules_text: str | None = None,
                          alertmanager_config_text: str | None = None,
                          quiet_timeout_s: float = QUIET_TIMEOUT_S,
                          password: str | None = None) -> None:
        """Swap sabotage knobs, alert rules and Alertmanager config on the running stack.

        web and storage restart on their own ports with the new knobs (so Prometheus, the
        proxy and the runbook links need no rediscovery); the rules and the Alertmanager
        config are hot-reloaded. ``None`` means the demo's own (``password``: keep web's).
        Returns once Prometheus scrapes both services again and no alert is pending or
        firing in Prometheus nor active in Alertmanager, so the next gate starts from a clean
        state (bounded by ``quiet_timeout_s``).
        """
        urls = self.urls
        if urls is None:
            raise StackError("reconfigure needs a started stack")
        self.options = replace(self.options, sabotage=tuple(sabotage), rules_text=rules_text,
                               alertmanager_config_text=alertmanager_config_text,
                               password=self.options.password if password is None else password)
        self._check_inputs()
        rules = rules_text if rules_text is not None else default_rules_text()
        am = alertmanager_config_text if alertmanager_config_text is not None else \
            _default_alertmanager_config(self.options.group_interval_s)
        binaries = {name: require_binary(name) for name in BINARIES}
        # Validate before touching anything: a rejected config must not half-apply.
        self.rules_path.write_text(rules, encoding="utf-8")
        self.alertmanager_config_path.write_text(am, encoding="utf-8")
        await self._validate(binaries)
        # Reloading a rule keeps its alerts' state: a HighErrorRate left firing would stay
        # firing under a rule with keep_firing_for. Load no rules first, so every variant's
        # rules start without alerts; Alertmanager expires the dropped ones within seconds
        # (Prometheus sends them valid for 4 evaluations, --rules.alert.resend-delay=1s).
        self.rules_path.write_text("groups: []\n", encoding="utf-8")
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            resp = await client.post(urls.prometheus + "/-/reload", timeout=RELOAD_TIMEOUT_S)
            if resp.status_code != 200:
                raise StackError(f"prometheus rejected the reload: {resp.text.strip()[:200]}")
        self.rules_path.write_text(
            fill_placeholders(rules, web_url=urls.web, sink_url=urls.sink), encoding="utf-8")
        self.alertmanager_config_path.write_text(
            fill_placeholders(am, web_url=urls.web, sink_url=urls.sink), encoding="utf-8")

        knobs = ",".join(self.options.sabotage)
        for name in _DEMO_JOBS:
            old = next(p for p in self._procs.procs if p.name == name)
            old.stop()
            self._stopped_pids.extend([old.pid] if old.pid is not None else [])
            self._procs.procs.remove(old)
        port = {name: str(urlsplit(getattr(urls, name)).port) for name in _DEMO_JOBS}
        storage, web = await asyncio.gather(
            start_python_service(self._procs, "storage", "demo.storage",
                                 [*self._telemetry_args(urls.sink), "--port", port["storage"]],
                                 env={"DEMO_SABOTAGE": knobs}, log_dir=self.log_dir,
                                 timeout=PYTHON_SERVICE_TIMEOUT_S),
            start_python_service(self._procs, "web", "demo.web",
                                 ["--storage-url", urls.proxy,
                                  *self._telemetry_args(urls.sink), "--port", port["web"]],
                                 env={"DEMO_PASSWORD": self.options.password,
                                      "DEMO_SABOTAGE": knobs},
                                 log_dir=self.log_dir, timeout=PYTHON_SERVICE_TIMEOUT_S))
        restarted_at = time.time()
        if (web.url, storage.url) != (urls.web, urls.storage):
            raise StackError(f"web/storage came back on other ports ({web.url}, {storage.url})")
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            # A fresh web answers its first requests slowly (connections to storage, lazy
            # set-up): in a gate's first seconds, with few requests in SlowRequests' 15 s
            # window, one of them is a p95 over 0.5 s. Served before the quiet wait, such a
            # request leaves SlowRequests pending until it ages out, and the wait sees it.
            for path in ("/health/ready", "/health", "/health/live") * 2:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(urls.web + path)
            for name, url in (("prometheus", urls.prometheus), ("alertmanager",
                                                                urls.alertmanager)):
                resp = await client.post(url + "/-/reload", timeout=RELOAD_TIMEOUT_S)
                if resp.status_code != 200:
                    raise StackError(f"{name} rejected the reload: {resp.text.strip()[:200]}")
            # Scrapes from before the restart still show the old process as "up": wait for
            # one of the new processes, or a check may judge the old series.
            await self.wait_quiet(client, quiet_timeout_s, scraped_after=restarted_at)
        self.progress(f"stack reconfigured: sabotage {knobs or 'none'}")

    async def wait_quiet(self, client: httpx.AsyncClient, timeout_s: float = QUIET_TIMEOUT_S,
                         *, scraped_after: float = 0.0) -> None:
        """Wait until Prometheus scraped web and storage (after ``scraped_after``, wall clock),
        no alert is pending or firing and Alertmanager holds no active alert."""
        urls = self.urls
        assert urls is not None
        deadline = time.monotonic() + timeout_s
        problem = "no answer yet"
        # quiet across more than one rule evaluation: an alert pending from the latest
        # scrape shows only after the evaluation that follows it
        hold_s = 1.5 * self.options.evaluation_interval_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            self.ensure_alive()
            blocking, down = await self._discovery(client, urls.prometheus, urls.alertmanager)
            problem = blocking or (down[0] if down else "")
            if not problem:
                problem = await _stale_scrape(client, urls.prometheus, scraped_after)
            if not problem:
                try:
                    alerts = (await client.get(urls.prometheus + "/api/v1/alerts")
                              ).json()["data"]["alerts"]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    alerts, problem = [], f"alerts API not answering ({exc!r})"
                if alerts:
                    problem = "still active: " + ", ".join(
                        f"{a['labels'].get('alertname')} ({a.get('state')})" for a in alerts)
                elif not problem:
                    # A previous run's alert left active in Alertmanager would be notified
                    # again (or counted as already there) during the next run's baseline.
                    problem = await _alertmanager_busy(client, urls.alertmanager)
                if not problem:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= hold_s:
                        return
            if problem:
                quiet_since = None
            await asyncio.sleep(POLL_S * 4)
        raise StackError(f"the stack did not settle within {timeout_s:.0f}s: {problem}")

    # -- the StackBase hooks -------------------------------------------------------------

    def _urls(self, urls: dict[str, str]) -> StackUrls:
        return StackUrls(web=urls["web"], storage=urls["storage"], proxy=urls["proxy"],
                         sink=urls["sink"], prometheus=urls["prometheus"],
                         alertmanager=urls["alertmanager"])

    def _check_inputs(self) -> None:
        if not self.options.sabotage:
            return
        # Imported here: demo.telemetry pulls in OpenTelemetry and Sentry.
        from demo.telemetry import SabotageError, parse_sabotage
        try:
            parse_sabotage(",".join(self.options.sabotage))
        except SabotageError as exc:
            raise ConfigError(str(exc), key="sabotage") from None

    def _write_configs(self) -> str:
        self._web_url = asyncio.get_running_loop().create_future()
        self._rules_template = (self.options.rules_text if self.options.rules_text is not None
                                else default_rules_text())
        am_template = (self.options.alertmanager_config_text
                       if self.options.alertmanager_config_text is not None
                       else alertmanager_config_text(
                           group_interval_s=self.options.group_interval_s))
        prom_dir = self.prometheus_dir
        (prom_dir / "prometheus.yml").write_text(prometheus_config_text(
            scrape_interval_s=self.options.scrape_interval_s,
            evaluation_interval_s=self.options.evaluation_interval_s,
            job_names=tuple(self.scrape_jobs())), encoding="utf-8")
        # The placeholders are valid URLs, so the templates validate as they are.
        self.rules_path.write_text(self._rules_template, encoding="utf-8")
        for name in self.scrape_jobs():
            write_atomic(prom_dir / "targets" / f"{name}.json", "[]")
        self.alertmanager_config_path.write_text(am_template, encoding="utf-8")
        return am_template

    async def _validate(self, binaries: dict[str, str]) -> None:
        promtool, amtool = binaries["promtool"], binaries["amtool"]
        # Relative paths, so that errors name "rules/alerts.yml: 5:15: ..." and not workdir.
        rules, config, am = await asyncio.gather(
            run_check([promtool, "check", "rules", "rules/alerts.yml"], self.prometheus_dir),
            run_check([promtool, "check", "config", "prometheus.yml"], self.prometheus_dir),
            run_check([amtool, "check-config", "alertmanager.yml"], self.alertmanager_dir))
        for (code, output), what in ((rules, "alert rules"), (config, "Prometheus config"),
                                     (am, "Alertmanager config")):
            if code != 0:
                raise ConfigError(f"{what} rejected: {first_error_line(output)}")

    async def _start_services(self, sink_url: asyncio.Future[str]) -> dict[str, str]:
        sabotage = ",".join(self.options.sabotage)
        urls = {"sink": await sink_url}
        urls["storage"] = await self._start_python("storage", "demo.storage",
                                                   self._telemetry_args(urls["sink"]),
                                                   {"DEMO_SABOTAGE": sabotage})
        urls["proxy"] = await self._start_python("proxy", "chaos.proxy",
                                                 ["--upstream", urls["storage"]])
        # The password travels in the environment only: argv is visible to every user.
        urls["web"] = await self._start_python(
            "web", "demo.web", ["--storage-url", urls["proxy"],
                                *self._telemetry_args(urls["sink"])],
            {"DEMO_PASSWORD": self.options.password, "DEMO_SABOTAGE": sabotage})
        assert self._web_url is not None
        self._web_url.set_result(urls["web"])
        del urls["sink"]  # the base started it and owns its URL
        return urls

    async def _services_ready(self) -> None:
        assert self._web_url is not None
        await self._warm_up(await self._web_url)

    async def _warm_up(self, web_url: str) -> None:
        """Serve web's slow first requests (lazy set-up, the first connection to storage, the
        multipart parser) before Prometheus first scrapes it: they stay out of every rate()
        window, so on a busy machine SlowRequests does not go pending in the gate's first
        seconds (reconfigure() does the same for a restarted web)."""
        async with httpx.AsyncClient(base_url=web_url, timeout=5.0, trust_env=False) as client:
            for _ in range(2):
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    for path in ("/health/live", "/health/ready", "/health"):
                        await client.get(path)
                    resp = await client.post("/api/login", json={
                        "username": "demo", "password": self.options.password})
                    await client.post("/api/uploads", files={"file": ("warm-up.bin", b"0" * 64)},
                                      headers={"Authorization": f"Bearer {resp.json()['token']}"})

    def _before_discovery(self, urls: dict[str, str]) -> bool:
        # file_sd notices these on its own (inotify); discovery applies them on its next tick.
        for name in _DEMO_JOBS:
            write_atomic(self.prometheus_dir / "targets" / f"{name}.json",
                         file_sd_targets(urls[name], {"service": name}))
        # Rules need the web URL for runbook links, so they are final only now: reload.
        self.rules_path.write_text(fill_placeholders(
            self._rules_template, web_url=urls["web"], sink_url=urls["sink"]), encoding="utf-8")
        return True


def _default_alertmanager_config(group_interval_s: float) -> str:
    # reconfigure()'s keyword argument shadows the module-level function's name
    return alertmanager_config_text(group_interval_s=group_interval_s)


async def _alertmanager_busy(client: httpx.AsyncClient, alertmanager: str) -> str:
    """Which alerts Alertmanager still holds as active, silenced or inhibited ('' if none)."""
    try:
        alerts = (await client.get(alertmanager + "/api/v2/alerts")).json()
        names = [f"{a['labels'].get('alertname')} ({a['status']['state']})" for a in alerts]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return f"Alertmanager alerts API not answering ({exc!r})"
    return "still in Alertmanager: " + ", ".join(names) if names else ""


async def _stale_scrape(client: httpx.AsyncClient, prometheus: str, after: float) -> str:
    """Which of web and storage Prometheus has not scraped since ``after`` ('' if none)."""
    try:
        targets = (await client.get(prometheus + "/api/v1/targets",
                                    params={"state": "active"})).json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"targets API not answering ({exc!r})"
    for target in targets:
        job = target.get("labels", {}).get("job")
        if job not in _DEMO_JOBS:
            continue
        last = rfc3339_seconds(target.get("lastScrape"))
        if last is None:
            return f"target {job}: no scrape yet"
        # the scrape's start time: it must begin after the restart to see the new process
        if last <= after or target.get("health") != "up":
            return f"target {job} not scraped since the restart"
    return ""
