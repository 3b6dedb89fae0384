"""Wiring for one gate run: build clients from config, run, write the report, exit code.

This is the only module that knows about every layer; the CLI calls it. Signals: the
first SIGINT/SIGTERM cancels the run (faults are rolled back, processes stopped, a
partial report written); later ones only say that cleanup is under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from chaos.injector import build_injector
from core import redact
from core.errors import ConfigError
from core.events import EventBus, Note
from core.http import client_kwargs
from core.scratch import scratch_dir, sweep_stale
from gates.backends.config import Backend
from gates.backends.registry import build_all
from gates.config import HygieneCheck
from gates.context import Anchors, CheckContext
from readygate.config import Config
from reports.console import ConsoleProgress
from reports.grafana import TimelineAnnotations, publish
from reports.model import Report
from reports.render import render_console
from reports.writer import archive_report, scrubbed, write_reports, write_text_artifact
from scenarios.runner import RunEnv, ScenarioRunner, expected_results


@dataclass
class RunOptions:
    """How to run: where to write, whether chaos may touch production, where to print."""

    out_dir: Path
    allow_production: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    poll_interval_s: float = 0.1
    previous: Path | None = None  # compare with this report.json (--previous)
    history_dir: Path | None = None  # archive reports here and compare with the last one
    notify: bool = True  # send the config's notify: section (Slack, webhook)


FIRST_PROBE_WAIT_S = 20.0
"""Live probes: a check following a journey waits this much longer than its deadline for the
journey's first run in the phase (the deadline counts from that run; a browser journey's
first run launches Chromium). The phase's max duration still bounds it."""

def build_context(config: Config, client: httpx.AsyncClient,
                  poll_interval_s: float) -> CheckContext:
    """Backend clients for the configured backends (gates.backends.registry picks by kind)."""
    b = build_all(config.backends, client)
    links = {"prometheus": config.backends.prometheus.url} if config.backends.prometheus else {}
    return CheckContext(prometheus=b.prometheus, sink=b.sink, anchors=Anchors(),
                        probe_results=[], poll_interval_s=poll_interval_s, links=links,
                        first_probe_wait_s=FIRST_PROBE_WAIT_S,
                        alertmanager=b.alertmanager, metrics=b.metrics, logs=b.logs,
                        traces=b.traces, errors=b.errors, notifications=b.notifications,
                        alerts=b.alerts, dashboards=b.dashboards, http=client,
                        services=dict(config.target.services),
                        secrets=config.secrets(), scrape_http=b.scrape,
                        backend_clients=b.clients)


class Interrupted:
    """Turns the first SIGINT/SIGTERM into a cancellation of the run task."""

    def __init__(self, task: asyncio.Task[Any], bus: EventBus) -> None:
        self.task = task
        self.bus = bus
        self.signal_name: str | None = None

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            self.bus.emit(Note(time.time(), f"{name}: rolling back faults, stopping processes, "
                                            "writing a partial report", "warning"))
            self.task.cancel()
        else:
            self.bus.emit(Note(time.time(), f"{name} again: cleanup is under way", "warning"))

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self, sig)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_gate(config: Config, gate: str, options: RunOptions, *,
                   bus: EventBus | None = None, stack_info: dict[str, Any] | None = None) -> Report:
    """Run ``gate`` against the configured target; always returns a report (partial if cut)."""
    started = time.time()
    bus = bus or EventBus()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    # No environment proxies (a backend asks with proxy_from_env); the default SSL context
    # honours SSL_CERT_FILE / SSL_CERT_DIR (core.http).
    async with httpx.AsyncClient(limits=limits, follow_redirects=False,
                                 **client_kwargs(None, name="backends")) as client, \
            contextlib.AsyncExitStack() as owned:
        context = build_context(config, client, options.poll_interval_s)
        owned.push_async_callback(context.aclose)  # backends' own clients (TLS, auth)
        injector = build_injector(config.target, client, log_dir=options.out_dir / "chaos")
        env = RunEnv(config=config, gate_name=gate, client=client, context=context,
                     injector=injector, allow_production=options.allow_production,
                     stack_info=stack_info or {}, workdir=options.out_dir)
        runner = ScenarioRunner(env, bus)
        grafana = config.reports.grafana_annotations
        timeline = TimelineAnnotations(grafana.tags) if grafana is not None else None
        if timeline is not None:
            bus.subscribe(timeline)
        task = asyncio.current_task()
        assert task is not None
        skewed = await skewed_clocks(config, context)
        if skewed:
            # Before anything is injected: an old signal stamped by a clock running ahead
            # would pass as new, so no verdict of this run could be trusted.
            reason = (f"backends.max_clock_skew_s is {config.backends.max_clock_skew_s:g}s: "
                      + "; ".join(skewed) + "; anchored checks cannot tell a new signal "
                      "from an old one. Fix the clock (NTP), or raise the limit")
            report = empty_report(config, gate, started, reason)
            warn(report, bus, reason)
            report.stack = stack_info or {}
            return report
        try:
            report = await runner.run()
        except asyncio.CancelledError:
            # Interrupted: the runner already rolled back; keep what was judged.
            if task.cancelling():
                task.uncancel()
            return runner.report(partial=True, reason="interrupted by a signal")
        dead = await dead_backends(context)
        if dead:
            # Evidence was lost: a fail may be the outage's doing as much as a pass would be.
            report.verdict = "inconclusive"
            report.reason = ("evidence backend(s) went away during the run: " + "; ".join(dead)
                             + "; the checks cannot be trusted")
            bus.emit(Note(time.time(), report.reason, "warning"))
        if timeline is not None:
            await write_annotations(config, timeline, report, bus)
        return report


async def write_annotations(config: Config, timeline: TimelineAnnotations, report: Report,
                            bus: EventBus) -> None:
    """The run's timeline as Grafana annotations; what failed is a warning in the report."""
    from gates.backends.grafana import grafana_api

    spec = config.reports.grafana_annotations
    assert spec is not None
    api = grafana_api(spec.url, token=spec.token.get_secret_value() if spec.token else None,
                      org_id=spec.org_id, timeout_s=spec.timeout_s, http=spec,
                      name="reports.grafana_annotations")
    for line in await asyncio.to_thread(publish, api, timeline.annotations(report),
                                        spec.dashboard_uids):
        warn(report, bus, line)


def warn(report: Report, bus: EventBus, message: str) -> None:
    """A warning on the console now and in the report's timeline (after the run's own)."""
    note = Note(time.time(), message, "warning")
    bus.emit(note)
    report.timeline.append({"type": "Note", "at": note.at, "message": message,
                            "level": "warning"})


_CLOCKED = ("prometheus", "alertmanager", "sink", "metrics", "logs", "traces", "errors",
            "notifications", "alerts", "dashboards")


async def skewed_clocks(config: Config, context: CheckContext) -> list[str]:
    """The HTTP backends whose clock is off by more than ``backends.max_clock_skew_s``."""
    from gates.backends.clock import read_clocks

    limit = config.backends.max_clock_skew_s
    if limit is None:
        return []
    readings = await read_clocks((name, getattr(context, name)) for name in _CLOCKED)
    return [r.describe() for r in readings if r.beyond(limit)]


async def dead_backends(context: CheckContext) -> list[str]:
    """The evidence backends of ``context`` that no longer answer at all (name, URL, why)."""
    from gates.backends.base import HttpBackend

    backends: dict[str, HttpBackend] = {}
    for name in ("prometheus", "alertmanager", "sink"):
        backend = getattr(context, name)
        if isinstance(backend, HttpBackend):
            backends[name] = backend

    async def answers(backend: HttpBackend) -> str | None:
        try:  # any HTTP answer means the process is there; only silence counts
            await backend.client.get(backend.base_url + "/", timeout=3.0)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None

    why = await asyncio.gather(*(answers(b) for b in backends.values()))
    return [f"{name} at {b.base_url} ({w})" for (name, b), w in zip(backends.items(), why,
                                                                    strict=True) if w]


def finish(report: Report, options: RunOptions, config: Config | None = None) -> int:
    """Write the report files, the console summary and the notifications; the exit code."""
    from reports.history import compare_for
    from reports.notify import notify

    if config is not None:
        report.links = {k: v for k, v in config.links.model_dump().items() if v}
    if options.previous is not None or options.history_dir is not None:
        try:
            report.comparison = compare_for(report, previous=options.previous,
                                            history_dir=options.history_dir)
        except ConfigError as exc:  # the CLI checked it; a file gone since must not lose the run
            options.stderr.write(redact.scrub(f"readygate: no comparison: {exc}\n"))
    report = scrubbed(report)  # secrets masked in the values before anything renders them
    write_reports(report, options.out_dir)
    if options.history_dir is not None:
        archive_report(report, options.history_dir)
    options.stdout.write(redact.scrub(render_console(report, str(options.out_dir))))
    if report.drill is not None:
        from scenarios.drill import render_drill
        options.stdout.write(redact.scrub(render_drill(report.drill, scenario=report.gate)))
    options.stdout.flush()
    if config is not None and options.notify:
        for line in notify(report, config.notify, config.links.report_url):
            options.stderr.write(redact.scrub(f"readygate: {line}\n"))
    return report.exit_code


async def run_configured(config: Config, gate: str, options: RunOptions) -> int:
    """`readygate run GATE`: the target and backends come from the config."""
    bus = EventBus([ConsoleProgress(options.stderr,
                                    total_checks=expected_results(config.gates[gate]))])
    task = asyncio.current_task()
    assert task is not None
    interrupt = Interrupted(task, bus)
    interrupt.install()
    try:
        report = await run_gate(config, gate, options, bus=bus)
    finally:
        interrupt.remove()
    if interrupt.signal_name and report.partial:
        # a signal after the gate finished changes nothing: the report is complete
        report.reason = f"interrupted by {interrupt.signal_name}"
    return finish(report, options, config)


async def run_drill(config: Config, scenario: str, options: RunOptions, *,
                    demo: bool = False) -> int:
    """`readygate drill SCENARIO`: a scenario file as a gate, on the target or the demo stack."""
    from scenarios.files import load_scenario

    name, config = load_scenario(scenario, config)
    if demo:
        return await run_demo(config, options, gate=name)
    return await run_configured(config, name, options)


async def run_demo(config: Config, options: RunOptions, *, gate: str | None = None,
                   sabotage: list[str] | None = None, rules_text: str | None = None,
                   backends: str = "sink") -> int:
    """`readygate demo`: start the bundled demo stack, run the gate on it, stop everything.

    ``backends="real"``: the services' traces and logs go through a real OpenTelemetry
    Collector to real Jaeger and VictoriaLogs, which the gate reads (demo.real_backends).
    """
    from demo.real_backends import RealBackendsStack  # optional for `run`
    from demo.stack import DemoStack, StackOptions, read_rules

    gate = gate or config.demo.gate
    bus = EventBus([ConsoleProgress(options.stderr,
                                    total_checks=expected_results(config.gates[gate]))])
    task = asyncio.current_task()
    assert task is not None
    interrupt = Interrupted(task, bus)
    interrupt.install()
    password = config.target.credentials.password
    if rules_text is None and config.demo.rules_file:
        rules_text = read_rules(config.demo.rules_file)
    stack_options = StackOptions(
        password=password.get_secret_value() if password else "",
        sabotage=tuple(sabotage if sabotage is not None else config.demo.sabotage),
        rules_text=rules_text)
    report: Report | None = None
    # a SIGKILLed run's directory (unscrubbed logs, the sink's database) goes at this start;
    # ours is marked with this PID and start time, so a later run leaves it while we live
    sweep_stale()
    workdir = scratch_dir("readygate-demo-")
    stack = (RealBackendsStack if backends == "real" else DemoStack)(
        stack_options, workdir, progress=lambda msg: bus.emit(Note(time.time(), msg)))
    t0 = time.time()
    try:
        bus.emit(Note(t0, f"starting the demo stack: {stack.description}"))
        urls = await start_stack(stack, task)
        if urls is None:
            report = empty_report(config, gate, t0, f"interrupted by "
                                   f"{interrupt.signal_name or 'a signal'} while the stack "
                                   "was starting")
            return finish(report, options, config)
        filled = with_stack_files(with_stack(config, urls, stack.signal_backends()),
                                  rules=[stack.rules_path],
                                  alertmanager_config=stack.alertmanager_config_path)
        info: dict[str, Any] = {
            "components": dict(urls.__dict__),
            "start_timings_s": {k: round(v, 3) for k, v in stack.timings.items()}}
        report = await run_gate(filled, gate, options, bus=bus, stack_info=info)
        stores = {f"{urls.sink}/api/traces/": f"{urls.sink}/api/traces/"}
        jaeger = stack.signal_backends().get("traces")
        if jaeger is not None and jaeger.kind == "jaeger" and jaeger.url:
            stores[f"{jaeger.url}/trace/"] = f"{jaeger.url}/api/traces/"
        await keep_traces(report, stores, options.out_dir,
                          stopped=[*urls.__dict__.values(),
                                   *(b.url for b in stack.signal_backends().values())])
    finally:
        interrupt.remove()
        stack.stop()
        if report is not None:
            report.stack["pids"] = stack.pids()
        for name, path in stack.log_paths().items():
            if path.exists():
                write_text_artifact(options.out_dir / "logs", f"{name}.log",
                                    path.read_text(encoding="utf-8", errors="replace"))
        remove_tree(workdir)
    if interrupt.signal_name and report.partial:
        # a signal after the gate finished changes nothing: the report is complete
        report.reason = f"interrupted by {interrupt.signal_name}"
    return finish(report, options, config)


_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


async def keep_traces(report: Report, stores: dict[str, str], out_dir: Path, *,
                      stopped: Iterable[str | None] = ()) -> None:
    """Save the traces the evidence links to in the run's own trace stores, beside the report.

    The stack's sink (and the real-backends demo's Jaeger) stop with the run, so a link into
    them would be dead in the saved report. ``stores`` maps a link prefix (``.../trace/``) to
    the store's JSON API prefix (``.../api/traces/``). Each linked trace is fetched while the
    store still runs and written to ``traces/<trace id>.json`` with secrets scrubbed; the
    evidence links there instead. Any other link into a component that stops with the run
    (``stopped``: their base URLs) would be dead too: it moves to ``link_at_run``, kept as
    text, and the report offers no link that cannot open.
    """
    wanted: dict[str, tuple[str, str]] = {}  # trace id -> (link, API URL)
    for check in report.checks:
        link = check.evidence.get("link")
        for prefix, api in stores.items():
            if isinstance(link, str) and link.startswith(prefix) \
                    and _TRACE_ID.fullmatch(link[len(prefix):]):
                wanted[link[len(prefix):]] = (link, api + link[len(prefix):])
    saved: dict[str, str] = {}
    if wanted:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            for trace_id, (link, url) in wanted.items():
                try:
                    resp = await client.get(url)
                    resp.raise_for_status()
                    body = resp.json()
                except (httpx.HTTPError, ValueError):
                    continue
                write_text_artifact(out_dir / "traces", f"{trace_id}.json",
                                    json.dumps(body, indent=1, sort_keys=True) + "\n")
                saved[link] = f"traces/{trace_id}.json"
    bases = [b.rstrip("/") for b in stopped if isinstance(b, str) and b]

    def relinked(evidence: dict[str, Any]) -> dict[str, Any]:
        link = evidence.get("link")
        if not isinstance(link, str):
            return evidence
        if link in saved:
            return {**evidence, "link": saved[link]}
        if any(link == b or link.startswith(b + "/") for b in bases):
            rest = {k: v for k, v in evidence.items() if k != "link"}
            return {**rest, "link_at_run": link}
        return evidence

    report.checks = [dataclasses.replace(c, evidence=relinked(c.evidence))
                     for c in report.checks]


def with_stack(config: Config, urls: Any, signal_backends: dict[str, Any] | None = None) -> Config:
    """The config with the demo stack's URLs (and its per-signal backends) filled in."""
    target = config.target.model_copy(update={
        "services": {"web": urls.web, "storage": urls.storage},
        "fault_proxies": {"storage": urls.proxy}})
    backends = config.backends.model_copy(update={
        "prometheus": Backend(url=urls.prometheus),
        "alertmanager": Backend(url=urls.alertmanager),
        "sink": Backend(url=urls.sink), **(signal_backends or {})})
    return config.model_copy(update={"target": target, "backends": backends})


async def start_stack(stack: Any, task: asyncio.Task[Any]) -> Any:
    """``await stack.start()``, or None when a signal cancelled it (the caller reports that)."""
    try:
        return await stack.start()
    except asyncio.CancelledError:
        if task.cancelling():
            task.uncancel()
        return None


def empty_report(config: Config, gate: str, started: float, reason: str) -> Report:
    from reports.model import CheckResult
    checks = [CheckResult(name=c.display_name(), signal=c.signal, status="skipped",
                          message=f"not judged: {reason}", severity=c.severity, phase=c.phase,
                          deadline_s=c.deadline_s, anchor=c.anchor)
              for c in config.gates[gate].checks]
    return Report(gate=gate, target=config.target.name, started_at=started,
                  finished_at=time.time(), verdict="inconclusive", checks=checks, partial=True,
                  reason=reason)


def remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def with_stack_files(config: Config, *, rules: list[Path], alertmanager_config: Path) -> Config:
    """The config with hygiene checks that name no files pointed at the demo stack's files."""
    gates = {}
    for name, gate in config.gates.items():
        checks = [c.model_copy(update={
                      "rules": c.rules or [str(p) for p in rules],
                      "alertmanager_config": c.alertmanager_config or str(alertmanager_config)})
                  if isinstance(c, HygieneCheck) else c for c in gate.checks]
        gates[name] = gate.model_copy(update={"checks": checks})
    return config.model_copy(update={"gates": gates})
