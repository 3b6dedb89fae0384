"""``readygate stack GATE`` (= ``readygate run GATE --stack``) and ``readygate stack up``.

``stack GATE`` starts Prometheus, Alertmanager and the sink from the config's ``stack:``
section around the user's already-running service, points ``backends.prometheus``,
``backends.alertmanager`` and ``backends.sink`` at them, runs the gate with the usual
reports and exit codes, and stops the stack on every path out (Ctrl-C included).
``stack up`` starts the same stack, prints its URLs and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core import redact
from core.errors import ConfigError, StackError
from readygate.config import Config

# The rest is imported when a stack command runs: registering the subcommand must not
# cost every `readygate` command the runner's imports.
if TYPE_CHECKING:
    from core.events import EventBus
    from readygate.runner import RunOptions
    from stack.config import StackSettings
    from stack.stack import ObservabilityStack, StackUrls

UP = "up"
"""``readygate stack up``: the stack alone, until Ctrl-C."""

# Checks that judge what Prometheus' rules and Alertmanager make: without rules they
# could only ever see nothing, and "nothing fired" proves nothing.
_ALERT_SIGNALS = {"alert", "notification", "no_alert", "alert_rule", "alert_resolves",
                  "alert_not_silenced"}

EXIT_STACK_FAILED = 2


def add_arguments(sub: Any, run: argparse.ArgumentParser,
                  config_arg: Callable[[argparse.ArgumentParser], None],
                  report_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``readygate stack`` on ``sub`` and ``--stack`` on the ``run`` parser."""
    run.add_argument("--stack", action="store_true",
                     help="start Prometheus, Alertmanager and the sink from the config's "
                          "stack: section around the target first (= readygate stack GATE)")
    stack = sub.add_parser(
        "stack", help="start Prometheus, Alertmanager and the sink from stack: around your "
                      "running service, run a gate, stop them all (docs/stack.md)")
    stack.add_argument("gate", metavar="GATE", help="gate to run; `up` instead starts the "
                       "stack alone, prints its URLs and waits for Ctrl-C")
    config_arg(stack)
    stack.add_argument("--out", default="out/stack", metavar="DIR",
                       help="where the report goes (default: out/stack)")
    stack.add_argument("--allow-production", action="store_true",
                       help="allow chaos on a target whose environment is production")
    report_args(stack)


def stack_command(args: argparse.Namespace, config: Config, path: Path,
                  report_options: Callable[[argparse.Namespace, RunOptions], RunOptions]) -> int:
    """Run ``readygate stack GATE|up`` or ``readygate run GATE --stack``; the exit code."""
    from readygate.runner import RunOptions
    from scenarios.library import resolve_gate

    settings = stack_settings(config, path)
    try:
        if args.command == "stack" and args.gate == UP:
            return asyncio.run(stack_up(settings))
        config = resolve_gate(config, args.gate, path)
        check_gate_needs(config, args.gate, settings, path)
        options = report_options(args, RunOptions(out_dir=Path(args.out),
                                                  allow_production=args.allow_production))
        return asyncio.run(run_on_stack(config, args.gate, options))
    except StackError as exc:
        print(f"readygate: the stack failed: {redact.scrub(str(exc))}", file=sys.stderr)
        return EXIT_STACK_FAILED


def stack_settings(config: Config, path: Path) -> StackSettings:
    """The config's ``stack:`` section, or a ConfigError saying it is needed."""
    if config.stack is None:
        raise ConfigError("no stack: section: `readygate stack` needs at least "
                          "stack.scrape and stack.rules (docs/stack.md)", path=str(path))
    return config.stack


def check_gate_needs(config: Config, gate: str, settings: StackSettings, path: Path) -> None:
    """A gate with alert checks needs rules: without them nothing can ever fire."""
    alerting = sorted({c.signal for c in config.gates[gate].checks
                       if c.signal in _ALERT_SIGNALS})
    if alerting and not settings.rules:
        raise ConfigError(f"gate {gate!r} has {', '.join(alerting)} checks but stack.rules "
                          "names no alert rules", path=str(path), key="stack.rules")


def with_stack_backends(config: Config, urls: StackUrls) -> Config:
    """The config with backends.prometheus, .alertmanager and .sink pointing at the stack.

    The target stays the user's; backends configured per signal (``metrics:``,
    ``notifications:``, ...) stay as configured.
    """
    from gates.backends.config import Backend

    backends = config.backends.model_copy(update={
        "prometheus": Backend(url=urls.prometheus),
        "alertmanager": Backend(url=urls.alertmanager),
        "sink": Backend(url=urls.sink)})
    return config.model_copy(update={"backends": backends})


def _progress(bus: EventBus) -> Callable[[str], None]:
    from core.events import Note

    def emit(message: str) -> None:
        warning = message.startswith("warning: ")
        bus.emit(Note(time.time(), message.removeprefix("warning: "),
                      "warning" if warning else "info"))
    return emit


async def run_on_stack(config: Config, gate: str, options: RunOptions) -> int:
    """Start the stack from ``config.stack``, run ``gate`` on it, stop it; the exit code."""
    from core.events import EventBus, Note
    from readygate.runner import (
        Interrupted,
        empty_report,
        finish,
        keep_traces,
        remove_tree,
        run_gate,
        start_stack,
        with_stack_files,
    )
    from reports.console import ConsoleProgress
    from reports.model import Report
    from scenarios.runner import expected_results
    from stack.stack import ObservabilityStack

    settings = config.stack
    assert settings is not None
    bus = EventBus([ConsoleProgress(options.stderr,
                                    total_checks=expected_results(config.gates[gate]))])
    task = asyncio.current_task()
    assert task is not None
    interrupt = Interrupted(task, bus)
    interrupt.install()
    report: Report | None = None
    workdir = Path(tempfile.mkdtemp(prefix="readygate-stack-"))
    stack = ObservabilityStack(settings, workdir, progress=_progress(bus))
    t0 = time.time()
    try:
        await stack.prepare()  # bad rules or Alertmanager config: one line, exit 3
        jobs = ", ".join(job.job for job in settings.scrape) or "nothing"
        bus.emit(Note(t0, f"starting the stack: sink, Alertmanager, Prometheus (scraping "
                          f"{jobs})"))
        urls = await start_stack(stack, task)
        if urls is None:
            report = empty_report(config, gate, t0, f"interrupted by "
                                   f"{interrupt.signal_name or 'a signal'} while the stack "
                                   "was starting")
            return finish(report, options, config)
        filled = with_stack_files(
            with_stack_backends(config, urls), rules=stack.rule_paths,
            alertmanager_config=stack.user_alertmanager_config or stack.alertmanager_config_path)
        info: dict[str, Any] = {
            "components": dataclasses.asdict(urls),
            "start_timings_s": {k: round(v, 3) for k, v in stack.timings.items()},
            "warnings": list(stack.warnings)}
        report = await run_gate(filled, gate, options, bus=bus, stack_info=info)
        await keep_traces(report, {f"{urls.sink}/api/traces/": f"{urls.sink}/api/traces/"},
                          options.out_dir, stopped=dataclasses.asdict(urls).values())
    finally:
        interrupt.remove()
        try:
            stack.stop()
        finally:
            if report is not None:
                report.stack["pids"] = stack.pids()
            _keep_logs(stack, options.out_dir)
            remove_tree(workdir)
    if interrupt.signal_name and report.partial:
        # a signal after the gate finished changes nothing: the report is complete
        report.reason = f"interrupted by {interrupt.signal_name}"
    return finish(report, options, config)


def _keep_logs(stack: ObservabilityStack, out_dir: Path) -> None:
    from reports.writer import write_text_artifact

    for name, path in stack.log_paths().items():
        if path.exists():
            write_text_artifact(out_dir / "logs", f"{name}.log",
                                path.read_text(encoding="utf-8", errors="replace"))


async def stack_up(settings: StackSettings, stdout: TextIO | None = None,
                   stderr: TextIO | None = None) -> int:
    """`readygate stack up`: start the stack, print its URLs, run until SIGINT/SIGTERM."""
    from readygate.runner import remove_tree
    from stack.stack import ObservabilityStack

    out, err = stdout or sys.stdout, stderr or sys.stderr
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    workdir = Path(tempfile.mkdtemp(prefix="readygate-stack-"))

    def progress(message: str) -> None:
        err.write(redact.scrub(f"readygate: {message}\n"))

    stack = ObservabilityStack(settings, workdir, progress=progress)
    try:
        await stack.prepare()
        urls = await stack.start()
        for name, url in dataclasses.asdict(urls).items():
            out.write(f"{name:<13} {url}\n")
        out.write(f"{'logs':<13} {stack.log_dir}\n")
        out.flush()
        err.write("readygate: the stack runs until Ctrl-C (SIGINT) or SIGTERM\n")
        while True:
            stack.ensure_alive()  # a component that died ends `up` with exit code 2
            await asyncio.sleep(0.5)
    except asyncio.CancelledError:
        if task.cancelling():
            task.uncancel()
        err.write("readygate: stopping the stack\n")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        try:
            stack.stop()
        finally:
            remove_tree(workdir)
