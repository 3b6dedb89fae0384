"""A stack of child processes around Prometheus, Alertmanager and the sink: start, wait, stop.

:class:`StackBase` owns what every stack does: the start order (the sink first, then
Alertmanager, whose webhook needs the sink's URL; Prometheus at once, in parallel, because
Prometheus 2.42 applies service discovery only on a 5 s tick, FIELD-NOTES), the port
retry for binaries that cannot bind port 0, the wait on ``/api/v1/targets`` and
``/api/v1/alertmanagers`` (``/-/ready`` says nothing about either), and stopping every
child by PID on every path out, cancellation included. Subclasses say what to scrape,
which rules and Alertmanager config to run, and which services to start beside
(``stack.stack.ObservabilityStack`` for the user's stack, ``demo.stack.DemoStack``).

Every file lives under ``workdir``: generated configs, data directories and one log per
component in ``workdir/logs/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from core.errors import StackError
from core.procs import ManagedProcess, ProcessSet, start_python_service
from stack import tools
from stack.files import fill_sink_url
from stack.tools import BINARIES, require_binary, run_all, write_atomic

PYTHON_SERVICE_TIMEOUT_S = 30.0
BINARY_READY_TIMEOUT_S = 20.0
# Prometheus applies discovery on a 5 s tick; a slow machine can miss the first one.
DISCOVERY_TIMEOUT_S = 30.0
POLL_S = 0.05

U = TypeVar("U")


class StackBase(Generic[U]):
    """Sink, Alertmanager, Prometheus (and a subclass's services) as children of this process."""

    label = "stack"
    """How progress messages name this stack."""

    components: tuple[str, ...] = ("sink", "alertmanager", "prometheus")
    """Every component with a log file, in start order."""

    require_up = True
    """Whether every scrape target must be up before the stack counts as ready."""

    def __init__(self, workdir: Path, progress: Callable[[str], None] | None = None, *,
                 retention: str = "2h", ready_timeout_s: float = DISCOVERY_TIMEOUT_S) -> None:
        self.workdir = Path(workdir)
        self.progress = progress or (lambda _msg: None)
        self.retention = retention
        self.ready_timeout_s = ready_timeout_s
        self.urls: U | None = None
        self.timings: dict[str, float] = {}
        """Seconds each start step took (steps overlap; ``total`` is wall time)."""
        self.ready_at: dict[str, float] = {}
        """Seconds after ``start()`` at which each component was ready."""
        self.warnings: list[str] = []
        """What the start noticed but did not refuse (e.g. a scrape target that is down)."""
        self._procs = ProcessSet()
        self._stopped_pids: list[int] = []
        self._t0 = 0.0
        self._am_template = ""
        self._prepared: dict[str, str] | None = None
        self._prepare_s = 0.0

    # -- what subclasses say ------------------------------------------------------------

    def scrape_jobs(self) -> Mapping[str, int]:
        """Job name -> how many targets Prometheus must scrape for it."""
        raise NotImplementedError

    def _write_configs(self) -> str:
        """Write prometheus.yml, rules and file_sd stubs; return the Alertmanager config text.

        The text may hold the sink placeholder URL; it is filled in once the sink is up.
        """
        raise NotImplementedError

    async def _validate(self, binaries: dict[str, str]) -> None:
        """Check rules and configs with promtool/amtool; ConfigError on the first complaint."""
        raise NotImplementedError

    def _urls(self, urls: dict[str, str]) -> U:
        """The started stack's URLs as the subclass's type."""
        raise NotImplementedError

    def _check_inputs(self) -> None:
        """Refuse bad input before anything is written or started."""

    def _sink_args(self) -> list[str]:
        """Extra arguments of the sink (where it listens; default: a free loopback port)."""
        return []

    async def _start_services(self, sink_url: asyncio.Future[str]) -> dict[str, str]:
        """Start the subclass's own services (after the sink, if they report to it)."""
        return {}

    async def _services_ready(self) -> None:
        """Wait until the subclass's services run (Prometheus waits for them to scrape them)."""

    def _before_discovery(self, urls: dict[str, str]) -> bool:
        """Once everything runs: write the final targets and rules; True if Prometheus must
        reload its rules."""
        return False

    # -- public ------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Where each component's log goes: ``<log_dir>/<name>.log``."""
        return self.workdir / "logs"

    @property
    def prometheus_dir(self) -> Path:
        """prometheus.yml, its file_sd targets, rules and data."""
        return self.workdir / "prometheus"

    @property
    def alertmanager_dir(self) -> Path:
        """alertmanager.yml and Alertmanager's data."""
        return self.workdir / "alertmanager"

    @property
    def alertmanager_config_path(self) -> Path:
        """The Alertmanager config the stack runs with."""
        return self.alertmanager_dir / "alertmanager.yml"

    def log_paths(self) -> dict[str, Path]:
        """Log file of every component (the files outlive ``stop()``)."""
        return {name: self.log_dir / f"{name}.log" for name in self.components}

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

    async def prepare(self) -> None:
        """Check the input and write and validate every config, starting nothing.

        Bad input is a one-line ConfigError (exit 3) before any process runs; ``start()``
        prepares by itself when this was not called first.
        """
        started = time.monotonic()
        binaries = {name: require_binary(name) for name in BINARIES}
        self._check_inputs()
        for sub in ("logs", "prometheus/rules", "prometheus/targets", "prometheus/data",
                    "alertmanager/data", "sink"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._am_template = self._write_configs()
        write_atomic(self.prometheus_dir / "targets" / "alertmanager.json", "[]")
        await self._validate(binaries)
        self._prepared, self._prepare_s = binaries, time.monotonic() - started

    async def start(self) -> U:
        """Start everything and wait until it is really ready; on any failure stop it all."""
        # Ready means Prometheus scrapes every target and knows the Alertmanager. A failure
        # includes cancellation (CancelledError, KeyboardInterrupt): nothing is left behind.
        if self.urls is not None:
            return self.urls
        self.timings.clear()
        self.ready_at.clear()
        self.warnings.clear()
        self._t0 = time.monotonic()
        try:
            urls = self._urls(await self._start())
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - self._t0
        self.urls = urls
        self.progress(f"{self.label} ready in {self.timings['total']:.1f}s")
        return urls

    def stop(self) -> None:
        """Stop everything this stack started, by PID; safe to call any number of times."""
        procs = list(self._procs.procs)
        self._stopped_pids.extend(self._procs.pids())
        self._procs.procs.clear()
        self.urls = None
        # Everything but the sink at once (each waits out its own shutdown), then the sink,
        # so the services' last logs, spans, errors and notifications still have somewhere
        # to go.
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

    async def __aenter__(self) -> U:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------

    def _mark(self, step: str, started: float) -> None:
        now = time.monotonic()
        self.timings[step] = now - started
        self.ready_at[step] = now - self._t0

    async def _start(self) -> dict[str, str]:
        if self._prepared is None:
            started = time.monotonic()
            await self.prepare()
            self._mark("validate", started)
        else:
            self.timings["validate"] = self._prepare_s
        binaries, self._prepared = self._prepared, None
        assert binaries is not None

        loop = asyncio.get_running_loop()
        sink_url: asyncio.Future[str] = loop.create_future()
        am_url: asyncio.Future[str] = loop.create_future()
        urls: dict[str, str] = {}

        async def services() -> None:
            urls.update(await self._start_services(sink_url))

        async def sink_and_alertmanager() -> None:
            urls["sink"] = await self._start_python(
                "sink", "sink.server", ["--db", str(self.workdir / "sink" / "sink.db"),
                                        *self._sink_args()])
            sink_url.set_result(urls["sink"])
            self.alertmanager_config_path.write_text(
                fill_sink_url(self._am_template, urls["sink"]), encoding="utf-8")
            urls["alertmanager"] = await self._start_alertmanager(
                binaries["prometheus-alertmanager"])
            am_url.set_result(urls["alertmanager"])

        async def prometheus() -> None:
            urls["prometheus"] = await self._start_prometheus(binaries["prometheus"], am_url,
                                                              urls)

        await run_all(services(), sink_and_alertmanager(), prometheus())
        return urls

    async def _start_python(self, name: str, module: str, args: list[str],
                            env: dict[str, str] | None = None) -> str:
        """``python -m module``, waiting for its READY line; its URL."""
        started = time.monotonic()
        managed = await start_python_service(self._procs, name, module, args, env=env,
                                             log_dir=self.log_dir,
                                             timeout=PYTHON_SERVICE_TIMEOUT_S)
        assert managed.url is not None
        self._mark(name, started)
        self.progress(f"{name} ready at {managed.url} ({self.timings[name]:.1f}s)")
        return managed.url

    async def _start_binary(self, name: str, argv_for_port: Callable[[int], list[str]],
                            ready_path: str) -> str:
        """Start a binary on a picked free port; retry once if the port got taken meanwhile."""
        started = time.monotonic()
        for attempt in (1, 2):
            # looked up at call time, so a test can hand out a taken port
            port = tools.free_port()
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

    async def _start_alertmanager(self, binary: str) -> str:
        am_dir = self.alertmanager_dir

        def argv(port: int) -> list[str]:
            return [binary, f"--config.file={am_dir / 'alertmanager.yml'}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=", f"--data.retention={self.retention}"]
        return await self._start_binary("alertmanager", argv, "/-/ready")

    async def _start_prometheus(self, binary: str, am_url: asyncio.Future[str],
                                urls: dict[str, str]) -> str:
        prom_dir = self.prometheus_dir

        def argv(port: int) -> list[str]:
            return [binary, f"--config.file={prom_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={prom_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                    f"--storage.tsdb.retention.time={self.retention}",
                    # Re-send every active alert each evaluation (default 1m): a resolution
                    # sent while a reload had emptied the Alertmanager list is not lost for
                    # a minute, and a freshly reloaded Alertmanager learns the state at once.
                    "--rules.alert.resend-delay=1s",
                    # Console templates are not shipped in our workdir; avoid the lookups.
                    "--web.console.templates=", "--web.console.libraries="]
        url = await self._start_binary("prometheus", argv, "/-/ready")

        alertmanager = await am_url
        await self._services_ready()
        started = time.monotonic()
        # file_sd notices this on its own (inotify); discovery applies it on its next tick.
        write_atomic(prom_dir / "targets" / "alertmanager.json",
                     tools.file_sd_targets(alertmanager))
        since = "start"
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            if self._before_discovery(urls):
                await self._reload(client, "prometheus", url)
                self._mark("prometheus_reload", started)
                started, since = time.monotonic(), "reload"
            await self._wait_discovery(client, url, alertmanager)
        self._mark("prometheus_discovery", started)
        jobs = list(self.scrape_jobs())
        scraped = " and ".join([", ".join(jobs[:-1]), jobs[-1]] if len(jobs) > 1 else jobs)
        self.progress(f"prometheus scrapes {scraped or 'nothing'} and knows alertmanager"
                      f" ({self.timings['prometheus_discovery']:.1f}s after {since})")
        return url

    async def _reload(self, client: httpx.AsyncClient, name: str, url: str) -> None:
        resp = await client.post(url + "/-/reload")
        if resp.status_code != 200:
            raise StackError(f"{name} rejected the reload: {resp.text.strip()[:200]}"
                             f"{self._tail(name)}")

    async def _wait_discovery(self, client: httpx.AsyncClient, url: str,
                              alertmanager: str) -> None:
        """Until every target is up and the Alertmanager known; see :attr:`require_up`."""
        start = time.monotonic()
        deadline = start + max(DISCOVERY_TIMEOUT_S, self.ready_timeout_s)
        up_deadline = start + self.ready_timeout_s
        while True:
            self.ensure_alive()
            blocking, down = await self._discovery(client, url, alertmanager)
            if not blocking and not down:
                return
            now = time.monotonic()
            if not blocking and not self.require_up and now > up_deadline:
                for problem in down:
                    # the gate's checks judge a service that is down; the stack is ready
                    self.warnings.append(problem)
                    self.progress(f"warning: {problem}")
                return
            if now > deadline:
                problem = blocking or down[0]
                raise StackError(f"prometheus not ready within {deadline - start:.0f}s:"
                                 f" {problem}{self._tail('prometheus')}")
            await asyncio.sleep(POLL_S)

    async def _discovery(self, client: httpx.AsyncClient, url: str,
                         alertmanager: str) -> tuple[str, list[str]]:
        """(what keeps Prometheus from being ready, scrape targets that are down)."""
        try:
            targets = (await client.get(url + "/api/v1/targets",
                                        params={"state": "active"})).json()["data"]
            managers = (await client.get(url + "/api/v1/alertmanagers")).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return f"API not answering ({exc!r})", []
        by_job: dict[str, list[dict[str, Any]]] = {}
        for target in targets.get("activeTargets", []):
            by_job.setdefault(target["labels"].get("job"), []).append(target)
        down: list[str] = []
        for job, expected in self.scrape_jobs().items():
            found = by_job.get(job, [])
            if len(found) < expected:
                return f"target {job} not discovered yet", []
            for target in found:
                health = target.get("health")
                if health == "up":
                    continue
                if health != "down" and not self.require_up:
                    return f"target {job} ({target.get('scrapeUrl')}) not scraped yet", []
                error = target.get("lastError") or health
                where = f" ({target.get('scrapeUrl')})" if expected > 1 or not \
                    self.require_up else ""
                down.append(f"target {job}{where} is {health} ({error}){self._tail(job)}")
        active = [a.get("url", "") for a in managers.get("activeAlertmanagers", [])]
        if not any(u.startswith(alertmanager) for u in active):
            return f"alertmanager {alertmanager} not discovered yet (active: {active})", down
        return "", down

    def ensure_alive(self) -> None:
        """Raise StackError naming the first component that exited (with its log's tail)."""
        for proc in self._procs.procs:
            name = proc.name
            if not proc.alive() and proc.proc is not None:
                code = proc.proc.poll() if proc.proc else None
                raise StackError(f"{name} exited (code {code}){self._tail(name)}")

    def _tail(self, name: str) -> str:
        tail = self.log_tail(name, 8)
        return f"; last lines of {name}'s log:\n{tail}" if tail else ""
