"""Start and stop the whole demo system: sink, storage, fault proxy, web, Alertmanager, Prometheus.

Start order follows the data dependencies: the sink first (everything reports to it),
then storage, the fault proxy in front of storage, and web (whose storage URL is the
proxy, so faults can be injected between web and storage). Alertmanager starts as soon
as the sink is up. Prometheus starts at once, in parallel with everything else: its
scrape targets and its Alertmanager come from ``file_sd`` files written as soon as the
ports are known, because Prometheus 2.42 only applies service discovery on a 5 s tick
(FIELD-NOTES) and that wait is best overlapped with the Python services' start.

Every file lives under ``workdir``: generated configs, data directories and one log per
component in ``workdir/logs/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from core.errors import ConfigError, EnvironmentProblem, StackError
from core.procs import ManagedProcess, ProcessSet, start_python_service

RULES_PATH = Path(__file__).parent / "rules" / "alerts.yml"
"""The demo's shipped alert rules."""

WEB_URL_PLACEHOLDER = "http://web.readygate.invalid"
"""Base URL in rules and Alertmanager config texts that is replaced by the web service's URL."""

SINK_URL_PLACEHOLDER = "http://sink.readygate.invalid"
"""Base URL in rules and Alertmanager config texts that is replaced by the sink's URL."""

SINK_WEBHOOK_PATH = "/alertmanager/webhook"
RECEIVER_NAME = "readygate-sink"

# (binary, Debian package) for every external tool the stack runs.
_BINARIES: dict[str, str] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}

PYTHON_SERVICE_TIMEOUT_S = 30.0
BINARY_READY_TIMEOUT_S = 20.0
# Prometheus applies discovery on a 5 s tick; a slow machine can miss the first one.
DISCOVERY_TIMEOUT_S = 30.0
# After a reconfigure: the previous run's alerts resolve within a rate window or two.
QUIET_TIMEOUT_S = 60.0
POLL_S = 0.05


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
    """Base URLs of every component of a started stack."""

    web: str
    storage: str
    proxy: str
    sink: str
    prometheus: str
    alertmanager: str


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration string: ``1s``, ``250ms``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def default_rules_text() -> str:
    """The shipped alert rules, placeholders included."""
    return RULES_PATH.read_text(encoding="utf-8")


def fill_placeholders(text: str, *, web_url: str, sink_url: str) -> str:
    """Replace the placeholder base URLs in a rules or Alertmanager config text."""
    return (text.replace(WEB_URL_PLACEHOLDER, web_url.rstrip("/"))
            .replace(SINK_URL_PLACEHOLDER, sink_url.rstrip("/")))


def alertmanager_config_text(*, group_interval_s: float = 1.0,
                             webhook_url: str = SINK_URL_PLACEHOLDER + SINK_WEBHOOK_PATH) -> str:
    """Alertmanager config: every alert to one webhook receiver, grouped by alertname+service."""
    config = {
        "route": {
            "receiver": RECEIVER_NAME,
            "group_by": ["alertname", "service"],
            # group_wait 0s: the first notification of a group leaves at once.
            "group_wait": "0s",
            "group_interval": duration(group_interval_s),
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": RECEIVER_NAME,
            "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
        }],
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_config_text(*, scrape_interval_s: float = 1.0,
                           evaluation_interval_s: float = 1.0,
                           rules_file: str = "rules/alerts.yml",
                           targets_dir: str = "targets") -> str:
    """Prometheus config: jobs ``web`` and ``storage`` and the Alertmanager, all via file_sd.

    Relative paths are relative to the config file, as Prometheus resolves them.
    """
    interval = duration(scrape_interval_s)

    def file_sd(name: str) -> list[dict[str, Any]]:
        return [{"files": [f"{targets_dir}/{name}.json"]}]

    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": duration(evaluation_interval_s),
        },
        "rule_files": [rules_file],
        "alerting": {"alertmanagers": [{
            "api_version": "v2", "timeout": "2s", "file_sd_configs": file_sd("alertmanager"),
        }]},
        "scrape_configs": [
            {"job_name": job, "file_sd_configs": file_sd(job)} for job in ("web", "storage")
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def file_sd_targets(url: str, labels: dict[str, str] | None = None) -> str:
    """A file_sd JSON document with one target (host:port of ``url``)."""
    return json.dumps([{"targets": [urlsplit(url).netloc], "labels": labels or {}}])


def free_port() -> int:
    """A loopback port that was free a moment ago (for binaries that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    """Path of an external tool, or ``EnvironmentProblem`` saying which package to install."""
    path = shutil.which(name)
    if path is None:
        package = _BINARIES.get(name, name)
        raise EnvironmentProblem(f"{name} not found: install it with: apt-get install {package}")
    return path


def first_error_line(output: str) -> str:
    """The first error of promtool/amtool output: the text after ``FAILED:``, or the next line."""
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if "FAILED:" in line:
            rest = line.split("FAILED:", 1)[1].strip()
            if rest:
                return rest
            following = [nxt for nxt in lines[i + 1:] if nxt]
            if following:
                return following[0]
    meaningful = [line for line in lines if line and not line.startswith("Checking ")]
    return meaningful[0] if meaningful else "unknown error"


async def run_check(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run a config checker; return its exit code and stderr followed by stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    return proc.returncode or 0, err.decode(errors="replace") + out.decode(errors="replace")


async def _run_all(*coros: Coroutine[Any, Any, None]) -> None:
    """Run coroutines concurrently; on the first failure cancel the rest and raise that error."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class DemoStack:
    """The demo system as child processes of this one: start, wait until really ready, stop."""

    def __init__(self, options: StackOptions, workdir: Path,
                 progress: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.workdir = Path(workdir)
        self.progress = progress or (lambda _msg: None)
        self.urls: StackUrls | None = None
        self.timings: dict[str, float] = {}
        """Seconds each start step took (steps overlap; ``total`` is wall time)."""
        self.ready_at: dict[str, float] = {}
        """Seconds after ``start()`` at which each component was ready."""
        self._procs = ProcessSet()
        self._stopped_pids: list[int] = []
        self._t0 = 0.0

    # -- public ------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Where each component's log goes: ``<log_dir>/<name>.log``."""
        return self.workdir / "logs"

    def log_paths(self) -> dict[str, Path]:
        """Log file of every component (the files outlive ``stop()``)."""
        names = ("sink", "storage", "proxy", "web", "alertmanager", "prometheus")
        return {name: self.log_dir / f"{name}.log" for name in names}

    @property
    def rules_path(self) -> Path:
        """The alert rules Prometheus loads (runbook links filled in once web is up)."""
        return self.workdir / "prometheus" / "rules" / "alerts.yml"

    @property
    def alertmanager_config_path(self) -> Path:
        """The Alertmanager config the stack runs with (for alert-hygiene checks)."""
        return self.workdir / "alertmanager" / "alertmanager.yml"

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a component's log ('' if it has none)."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace")
                         .splitlines()[-lines:])

    def pids(self) -> list[int]:
        """PIDs of every process this stack started, stopped ones included (for leak checks)."""
        return sorted(set(self._stopped_pids) | set(self._procs.pids()))

    async def start(self) -> StackUrls:
        """Start everything and wait until it is really ready; on any failure stop it all."""
        # Ready means Prometheus scrapes every target and knows the Alertmanager. A failure
        # includes cancellation (CancelledError, KeyboardInterrupt): nothing is left behind.
        if self.urls is not None:
            return self.urls
        self.timings.clear()
        self.ready_at.clear()
        self._t0 = time.monotonic()
        try:
            urls = await self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - self._t0
        self.urls = urls
        self.progress(f"demo stack ready in {self.timings['total']:.1f}s")
        return urls

    def stop(self) -> None:
        """Stop everything this stack started, by PID; safe to call any number of times."""
        procs = list(self._procs.procs)
        self._stopped_pids.extend(self._procs.pids())
        self._procs.procs.clear()
        self.urls = None
        # Everything but the sink at once (each waits out its own shutdown), then the sink,
        # so the services' last logs, spans and errors still have somewhere to go.
        first = [p for p in procs if p.name != "sink"]
        failures: list[str] = []
        for wave in (first, [p for p in procs if p.name == "sink"]):
            for proc in wave:
                if proc.alive() and proc.proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.proc.terminate()
            for proc in wave:
                try:
                    proc.stop()
                except Exception as exc:  # keep stopping the others before reporting it
                    failures.append(f"{proc.name} (pid {proc.pid}): {exc}")
        if failures:
            raise StackError("could not stop " + "; ".join(failures))

    def kill_component(self, name: str) -> int:
        """SIGKILL one running component (a backend dying mid-run, for tests); its PID."""
        proc = next((p for p in self._procs.procs if p.name == name and p.alive()), None)
        if proc is None or proc.proc is None:
            raise StackError(f"no running component named {name!r}")
        proc.proc.kill()
        proc.proc.wait(5)
        return proc.proc.pid

    async def reconfigure(self, *, sabotage: tuple[str, ...] = (), rules_text: str | None = None,
                          alertmanager_config_text: str | None = None,
                          quiet_timeout_s: float = QUIET_TIMEOUT_S) -> None:
        """Swap sabotage knobs, alert rules and Alertmanager config on the running stack.

        web and storage restart on their own ports with the new knobs (so Prometheus, the
        proxy and the runbook links need no rediscovery); the rules and the Alertmanager
        config are hot-reloaded. ``None`` means the demo's own. Returns once Prometheus
        scrapes both services again and no alert is pending or firing, so the next gate
        starts from a clean state (bounded by ``quiet_timeout_s``).
        """
        urls = self.urls
        if urls is None:
            raise StackError("reconfigure needs a started stack")
        self.options = replace(self.options, sabotage=tuple(sabotage), rules_text=rules_text,
                               alertmanager_config_text=alertmanager_config_text)
        self._check_sabotage()
        rules = rules_text if rules_text is not None else default_rules_text()
        am = alertmanager_config_text if alertmanager_config_text is not None else \
            _default_alertmanager_config(self.options.group_interval_s)
        prom_dir, am_dir = self.workdir / "prometheus", self.workdir / "alertmanager"
        binaries = {name: require_binary(name) for name in _BINARIES}
        # Validate before touching anything: a rejected config must not half-apply.
        (prom_dir / "rules" / "alerts.yml").write_text(rules, encoding="utf-8")
        (am_dir / "alertmanager.yml").write_text(am, encoding="utf-8")
        await self._validate(binaries, prom_dir, am_dir)
        (prom_dir / "rules" / "alerts.yml").write_text(
            fill_placeholders(rules, web_url=urls.web, sink_url=urls.sink), encoding="utf-8")
        (am_dir / "alertmanager.yml").write_text(
            fill_placeholders(am, web_url=urls.web, sink_url=urls.sink), encoding="utf-8")

        knobs = ",".join(self.options.sabotage)
        for name in ("web", "storage"):
            old = next(p for p in self._procs.procs if p.name == name)
            old.stop()
            self._stopped_pids.extend([old.pid] if old.pid is not None else [])
            self._procs.procs.remove(old)
        port = {name: str(urlsplit(getattr(urls, name)).port) for name in ("web", "storage")}
        storage, web = await asyncio.gather(
            start_python_service(self._procs, "storage", "demo.storage",
                                 ["--sink-url", urls.sink, "--port", port["storage"]],
                                 env={"DEMO_SABOTAGE": knobs}, log_dir=self.log_dir,
                                 timeout=PYTHON_SERVICE_TIMEOUT_S),
            start_python_service(self._procs, "web", "demo.web",
                                 ["--storage-url", urls.proxy, "--sink-url", urls.sink,
                                  "--port", port["web"]],
                                 env={"DEMO_PASSWORD": self.options.password,
                                      "DEMO_SABOTAGE": knobs},
                                 log_dir=self.log_dir, timeout=PYTHON_SERVICE_TIMEOUT_S))
        restarted_at = time.time()
        if (web.url, storage.url) != (urls.web, urls.storage):
            raise StackError(f"web/storage came back on other ports ({web.url}, {storage.url})")
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            for name, url in (("prometheus", urls.prometheus), ("alertmanager",
                                                                urls.alertmanager)):
                resp = await client.post(url + "/-/reload")
                if resp.status_code != 200:
                    raise StackError(f"{name} rejected the reload: {resp.text.strip()[:200]}")
            # Scrapes from before the restart still show the old process as "up": wait for
            # one of the new processes, or a check may judge the old series.
            await self.wait_quiet(client, quiet_timeout_s, scraped_after=restarted_at)
        self.progress(f"stack reconfigured: sabotage {knobs or 'none'}")

    async def wait_quiet(self, client: httpx.AsyncClient, timeout_s: float = QUIET_TIMEOUT_S,
                         *, scraped_after: float = 0.0) -> None:
        """Wait until Prometheus scraped web and storage (after ``scraped_after``, wall clock)
        and no alert is pending or firing."""
        urls = self.urls
        assert urls is not None
        deadline = time.monotonic() + timeout_s
        problem = "no answer yet"
        while time.monotonic() < deadline:
            self._ensure_alive()
            problem = await self._discovery_problem(client, urls.prometheus, urls.alertmanager)
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
                    return
            await asyncio.sleep(POLL_S * 4)
        raise StackError(f"the stack did not settle within {timeout_s:.0f}s: {problem}")

    async def __aenter__(self) -> StackUrls:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------

    def _mark(self, step: str, started: float) -> None:
        now = time.monotonic()
        self.timings[step] = now - started
        self.ready_at[step] = now - self._t0

    async def _start(self) -> StackUrls:
        binaries = {name: require_binary(name) for name in _BINARIES}
        self._check_sabotage()
        for sub in ("logs", "prometheus/rules", "prometheus/targets", "prometheus/data",
                    "alertmanager/data", "sink"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

        rules_template = (self.options.rules_text if self.options.rules_text is not None
                          else default_rules_text())
        am_template = (self.options.alertmanager_config_text
                       if self.options.alertmanager_config_text is not None
                       else alertmanager_config_text(
                           group_interval_s=self.options.group_interval_s))
        prom_dir = self.workdir / "prometheus"
        am_dir = self.workdir / "alertmanager"
        started = time.monotonic()
        self._write_configs(prom_dir, am_dir, rules_template, am_template)
        await self._validate(binaries, prom_dir, am_dir)
        self._mark("validate", started)

        sink_url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        web_url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        am_url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        urls: dict[str, str] = {}

        async def services() -> None:
            urls.update(await self._start_services(sink_url, web_url))

        async def alertmanager() -> None:
            sink = await sink_url
            (am_dir / "alertmanager.yml").write_text(
                fill_placeholders(am_template, web_url=WEB_URL_PLACEHOLDER, sink_url=sink),
                encoding="utf-8")
            url = await self._start_alertmanager(binaries["prometheus-alertmanager"], am_dir)
            urls["alertmanager"] = url
            am_url.set_result(url)

        async def prometheus() -> None:
            urls["prometheus"] = await self._start_prometheus(
                binaries["prometheus"], prom_dir, rules_template, web_url, am_url, urls)

        await _run_all(services(), alertmanager(), prometheus())
        return StackUrls(web=urls["web"], storage=urls["storage"], proxy=urls["proxy"],
                         sink=urls["sink"], prometheus=urls["prometheus"],
                         alertmanager=urls["alertmanager"])

    def _check_sabotage(self) -> None:
        if not self.options.sabotage:
            return
        # Imported here: demo.telemetry pulls in OpenTelemetry and Sentry.
        from demo.telemetry import SabotageError, parse_sabotage
        try:
            parse_sabotage(",".join(self.options.sabotage))
        except SabotageError as exc:
            raise ConfigError(str(exc), key="sabotage") from None

    def _write_configs(self, prom_dir: Path, am_dir: Path, rules_template: str,
                       am_template: str) -> None:
        (prom_dir / "prometheus.yml").write_text(prometheus_config_text(
            scrape_interval_s=self.options.scrape_interval_s,
            evaluation_interval_s=self.options.evaluation_interval_s), encoding="utf-8")
        # The placeholders are valid URLs, so the templates validate as they are.
        (prom_dir / "rules" / "alerts.yml").write_text(rules_template, encoding="utf-8")
        for name in ("web", "storage", "alertmanager"):
            _write_atomic(prom_dir / "targets" / f"{name}.json", "[]")
        (am_dir / "alertmanager.yml").write_text(am_template, encoding="utf-8")

    async def _validate(self, binaries: dict[str, str], prom_dir: Path, am_dir: Path) -> None:
        promtool, amtool = binaries["promtool"], binaries["amtool"]
        # Relative paths, so that errors name "rules/alerts.yml: 5:15: ..." and not workdir.
        rules, config, am = await asyncio.gather(
            run_check([promtool, "check", "rules", "rules/alerts.yml"], prom_dir),
            run_check([promtool, "check", "config", "prometheus.yml"], prom_dir),
            run_check([amtool, "check-config", "alertmanager.yml"], am_dir))
        for (code, output), what in ((rules, "alert rules"), (config, "Prometheus config"),
                                     (am, "Alertmanager config")):
            if code != 0:
                raise ConfigError(f"{what} rejected: {first_error_line(output)}")

    async def _start_services(self, sink_url: asyncio.Future[str],
                              web_url: asyncio.Future[str]) -> dict[str, str]:
        sabotage = ",".join(self.options.sabotage)
        urls: dict[str, str] = {}

        async def service(name: str, module: str, args: list[str],
                          env: dict[str, str] | None = None) -> str:
            started = time.monotonic()
            managed = await start_python_service(self._procs, name, module, args, env=env,
                                                 log_dir=self.log_dir,
                                                 timeout=PYTHON_SERVICE_TIMEOUT_S)
            assert managed.url is not None
            self._mark(name, started)
            self.progress(f"{name} ready at {managed.url} ({self.timings[name]:.1f}s)")
            return managed.url

        urls["sink"] = await service("sink", "sink.server",
                                     ["--db", str(self.workdir / "sink" / "sink.db")])
        sink_url.set_result(urls["sink"])
        urls["storage"] = await service("storage", "demo.storage",
                                        ["--sink-url", urls["sink"]],
                                        {"DEMO_SABOTAGE": sabotage})
        urls["proxy"] = await service("proxy", "chaos.proxy", ["--upstream", urls["storage"]])
        # The password travels in the environment only: argv is visible to every user.
        urls["web"] = await service("web", "demo.web",
                                    ["--storage-url", urls["proxy"], "--sink-url", urls["sink"]],
                                    {"DEMO_PASSWORD": self.options.password,
                                     "DEMO_SABOTAGE": sabotage})
        web_url.set_result(urls["web"])
        return urls

    async def _start_binary(self, name: str, argv_for_port: Callable[[int], list[str]],
                            ready_path: str) -> str:
        """Start a binary on a picked free port; retry once if the port got taken meanwhile."""
        started = time.monotonic()
        for attempt in (1, 2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = self._procs.add(ManagedProcess(name, argv_for_port(port),
                                                  log_path=self.log_dir / f"{name}.log"))
            proc.start()
            try:
                await proc.wait_http(url + ready_path, timeout=BINARY_READY_TIMEOUT_S,
                                     ok=lambda r: r.status_code == 200)
            except StackError:
                in_use = "address already in use" in proc.log_tail(40).lower()
                if attempt == 2 or not in_use:
                    raise
                self.progress(f"{name}: port {port} was taken meanwhile, retrying")
                proc.stop()
                self._stopped_pids.extend(p.pid for p in [proc] if p.pid is not None)
                self._procs.procs.remove(proc)
                continue
            proc.url = url
            self._mark(name, started)
            self.progress(f"{name} ready at {url} ({self.timings[name]:.1f}s)")
            return url
        raise AssertionError("unreachable")

    async def _start_alertmanager(self, binary: str, am_dir: Path) -> str:
        def argv(port: int) -> list[str]:
            return [binary, f"--config.file={am_dir / 'alertmanager.yml'}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=", f"--data.retention={self.options.retention}"]
        return await self._start_binary("alertmanager", argv, "/-/ready")

    async def _start_prometheus(self, binary: str, prom_dir: Path, rules_template: str,
                                web_url: asyncio.Future[str], am_url: asyncio.Future[str],
                                urls: dict[str, str]) -> str:
        def argv(port: int) -> list[str]:
            return [binary, f"--config.file={prom_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={prom_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                    f"--storage.tsdb.retention.time={self.options.retention}",
                    # Console templates are not shipped in our workdir; avoid the lookups.
                    "--web.console.templates=", "--web.console.libraries="]
        url = await self._start_binary("prometheus", argv, "/-/ready")

        web, alertmanager = await web_url, await am_url
        started = time.monotonic()
        targets = prom_dir / "targets"
        # file_sd notices these on its own (inotify); discovery applies them on its next tick.
        _write_atomic(targets / "alertmanager.json", file_sd_targets(alertmanager))
        for name in ("web", "storage"):
            _write_atomic(targets / f"{name}.json",
                          file_sd_targets(urls[name], {"service": name}))
        # Rules need the web URL for runbook links, so they are final only now: reload.
        sink = urls["sink"]
        (prom_dir / "rules" / "alerts.yml").write_text(
            fill_placeholders(rules_template, web_url=web, sink_url=sink), encoding="utf-8")
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            resp = await client.post(url + "/-/reload")
            if resp.status_code != 200:
                raise StackError(f"prometheus rejected the reload: {resp.text.strip()}"
                                 f"{self._tail('prometheus')}")
            self._mark("prometheus_reload", started)
            started = time.monotonic()
            await self._wait_discovery(client, url, alertmanager)
        self._mark("prometheus_discovery", started)
        self.progress(f"prometheus scrapes web and storage and knows alertmanager"
                      f" ({self.timings['prometheus_discovery']:.1f}s after reload)")
        return url

    async def _wait_discovery(self, client: httpx.AsyncClient, url: str,
                              alertmanager: str) -> None:
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        problem = "no answer yet"
        while True:
            self._ensure_alive()
            problem = await self._discovery_problem(client, url, alertmanager)
            if not problem:
                return
            if time.monotonic() > deadline:
                raise StackError(f"prometheus not ready within {DISCOVERY_TIMEOUT_S:.0f}s:"
                                 f" {problem}{self._tail('prometheus')}")
            await asyncio.sleep(POLL_S)

    async def _discovery_problem(self, client: httpx.AsyncClient, url: str,
                                 alertmanager: str) -> str:
        """What still keeps Prometheus from being ready, or '' when nothing does."""
        try:
            targets = (await client.get(url + "/api/v1/targets",
                                        params={"state": "active"})).json()["data"]
            managers = (await client.get(url + "/api/v1/alertmanagers")).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return f"API not answering ({exc!r})"
        health = {t["labels"].get("job"): t for t in targets.get("activeTargets", [])}
        for job in ("web", "storage"):
            target = health.get(job)
            if target is None:
                return f"target {job} not discovered yet"
            if target.get("health") != "up":
                error = target.get("lastError") or target.get("health")
                return f"target {job} is {target.get('health')} ({error}){self._tail(job)}"
        active = [a.get("url", "") for a in managers.get("activeAlertmanagers", [])]
        if not any(u.startswith(alertmanager) for u in active):
            return f"alertmanager {alertmanager} not discovered yet (active: {active})"
        return ""

    def _ensure_alive(self) -> None:
        for proc in self._procs.procs:
            name = proc.name
            if not proc.alive() and proc.proc is not None:
                code = proc.proc.poll() if proc.proc else None
                raise StackError(f"{name} exited (code {code}){self._tail(name)}")

    def _tail(self, name: str) -> str:
        tail = self.log_tail(name, 8)
        return f"; last lines of {name}'s log:\n{tail}" if tail else ""


def _write_atomic(path: Path, text: str) -> None:
    """Write via rename, so file_sd never reads a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _default_alertmanager_config(group_interval_s: float) -> str:
    # reconfigure()'s keyword argument shadows the module-level function's name
    return alertmanager_config_text(group_interval_s=group_interval_s)


async def _stale_scrape(client: httpx.AsyncClient, prometheus: str, after: float) -> str:
    """Which of web and storage Prometheus has not scraped since ``after`` ('' if none)."""
    try:
        targets = (await client.get(prometheus + "/api/v1/targets",
                                    params={"state": "active"})).json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"targets API not answering ({exc!r})"
    for target in targets:
        job = target.get("labels", {}).get("job")
        if job not in ("web", "storage"):
            continue
        try:
            last = datetime.fromisoformat(str(target.get("lastScrape")).replace("Z", "+00:00"))
        except ValueError:
            return f"target {job}: no scrape yet"
        # the scrape's start time: it must begin after the restart to see the new process
        if last.timestamp() <= after or target.get("health") != "up":
            return f"target {job} not scraped since the restart"
    return ""
