"""Wiring for one gate run: build clients from config, run, write the report, exit code.

This is the only module that knows about every layer; the CLI calls it. Signals: the
first SIGINT/SIGTERM cancels the run (faults are rolled back, processes stopped, a
partial report written); later ones only say that cleanup is under way.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from chaos.injector import ProxyFaultInjector
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from gates.context import Anchors, CheckContext
from readygate import redact
from readygate.config import Backend, Config
from readygate.events import EventBus, Note
from reports.console import ConsoleProgress
from reports.model import Report
from reports.render import render_console
from reports.writer import write_reports, write_text_artifact
from scenarios.runner import RunEnv, ScenarioRunner


@dataclass
class RunOptions:
    """How to run: where to write, whether chaos may touch production, where to print."""

    out_dir: Path
    allow_production: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    poll_interval_s: float = 0.1


def _token(backend: Backend) -> str | None:
    return backend.token.get_secret_value() if backend.token else None


def build_context(config: Config, client: httpx.AsyncClient,
                  poll_interval_s: float) -> CheckContext:
    """Backend clients for the configured backends."""
    b = config.backends
    prom = PrometheusClient(b.prometheus.url, client, token=_token(b.prometheus),
                            timeout_s=b.prometheus.timeout_s) if b.prometheus else None
    sink = SinkClient(b.sink.url, client, token=_token(b.sink),
                      timeout_s=b.sink.timeout_s) if b.sink else None
    links = {"prometheus": b.prometheus.url} if b.prometheus else {}
    return CheckContext(prometheus=prom, sink=sink, anchors=Anchors(), probe_results=[],
                        poll_interval_s=poll_interval_s, links=links)


class _Interrupt:
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
    bus = bus or EventBus()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
        context = build_context(config, client, options.poll_interval_s)
        injector = ProxyFaultInjector(config.target.fault_proxies, client) \
            if config.target.fault_proxies else None
        env = RunEnv(config=config, gate_name=gate, client=client, context=context,
                     injector=injector, allow_production=options.allow_production,
                     stack_info=stack_info or {})
        runner = ScenarioRunner(env, bus)
        task = asyncio.current_task()
        assert task is not None
        try:
            return await runner.run()
        except asyncio.CancelledError:
            # Interrupted: the runner already rolled back; keep what was judged.
            if task.cancelling():
                task.uncancel()
            return runner.report(partial=True, reason="interrupted by a signal")


def finish(report: Report, options: RunOptions) -> int:
    """Write the report files and the console summary; return the exit code."""
    write_reports(report, options.out_dir)
    options.stdout.write(redact.scrub(render_console(report, str(options.out_dir))))
    options.stdout.flush()
    return report.exit_code


async def run_configured(config: Config, gate: str, options: RunOptions) -> int:
    """`readygate run GATE`: the target and backends come from the config."""
    bus = EventBus([ConsoleProgress(options.stderr)])
    task = asyncio.current_task()
    assert task is not None
    interrupt = _Interrupt(task, bus)
    interrupt.install()
    try:
        report = await run_gate(config, gate, options, bus=bus)
    finally:
        interrupt.remove()
    if interrupt.signal_name:
        report.reason = f"interrupted by {interrupt.signal_name}"
    return finish(report, options)


async def run_demo(config: Config, options: RunOptions, *, gate: str | None = None,
                   sabotage: list[str] | None = None, rules_text: str | None = None) -> int:
    """`readygate demo`: start the bundled demo stack, run the gate on it, stop everything."""
    from demo.stack import DemoStack, StackOptions  # the demo is optional for `run`

    gate = gate or config.demo.gate
    bus = EventBus([ConsoleProgress(options.stderr)])
    task = asyncio.current_task()
    assert task is not None
    interrupt = _Interrupt(task, bus)
    interrupt.install()
    password = config.target.credentials.password
    if rules_text is None and config.demo.rules_file:
        rules_text = Path(config.demo.rules_file).read_text(encoding="utf-8")
    stack_options = StackOptions(
        password=password.get_secret_value() if password else "",
        sabotage=tuple(sabotage if sabotage is not None else config.demo.sabotage),
        rules_text=rules_text)
    report: Report | None = None
    workdir = Path(tempfile.mkdtemp(prefix="readygate-demo-"))
    stack = DemoStack(stack_options, workdir,
                      progress=lambda msg: bus.emit(Note(time.time(), msg)))
    t0 = time.time()
    try:
        bus.emit(Note(t0, "starting the demo stack: sink, storage, fault proxy, web, "
                          "Alertmanager, Prometheus"))
        try:
            urls = await stack.start()
        except asyncio.CancelledError:
            if task.cancelling():
                task.uncancel()
            report = _empty_report(config, gate, t0, "interrupted while the stack was starting")
            return finish(report, options)
        filled = with_stack(config, urls)
        info: dict[str, Any] = {
            "components": dict(urls.__dict__),
            "start_timings_s": {k: round(v, 3) for k, v in stack.timings.items()}}
        report = await run_gate(filled, gate, options, bus=bus, stack_info=info)
    finally:
        interrupt.remove()
        stack.stop()
        if report is not None:
            report.stack["pids"] = stack.pids()
        for name, path in stack.log_paths().items():
            if path.exists():
                write_text_artifact(options.out_dir / "logs", f"{name}.log",
                                    path.read_text(encoding="utf-8", errors="replace"))
        _remove_tree(workdir)
    if interrupt.signal_name:
        report.reason = f"interrupted by {interrupt.signal_name}"
    return finish(report, options)


def with_stack(config: Config, urls: Any) -> Config:
    """The config with the demo stack's URLs filled in."""
    target = config.target.model_copy(update={
        "services": {"web": urls.web, "storage": urls.storage},
        "fault_proxies": {"storage": urls.proxy}})
    backends = config.backends.model_copy(update={
        "prometheus": Backend(url=urls.prometheus),
        "alertmanager": Backend(url=urls.alertmanager),
        "sink": Backend(url=urls.sink)})
    return config.model_copy(update={"target": target, "backends": backends})


def _empty_report(config: Config, gate: str, started: float, reason: str) -> Report:
    from reports.model import CheckResult
    checks = [CheckResult(name=c.display_name(), signal=c.signal, status="skipped",
                          message=f"not judged: {reason}", severity=c.severity, phase=c.phase,
                          deadline_s=c.deadline_s, anchor=c.anchor)
              for c in config.gates[gate].checks]
    return Report(gate=gate, target=config.target.name, started_at=started,
                  finished_at=time.time(), verdict="inconclusive", checks=checks, partial=True,
                  reason=reason)


def _remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
