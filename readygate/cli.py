"""The `readygate` command. Exit codes: 0 ready, 1 not ready, 2 inconclusive, 3 bad input."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core import __version__, redact
from core.errors import (
    EXIT_BAD_INPUT,
    ConfigError,
    EnvironmentProblem,
    ReadygateError,
    StackError,
)
from readygate.config import Config, default_config_path, load_config

if TYPE_CHECKING:
    from readygate.runner import RunOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="readygate",
        description="Prove that a service is observable before it ships: probes, chaos, "
                    "and checks that logs, traces, metrics and alerts really appear.",
        epilog="exit codes: 0 ready, 1 not ready, 2 inconclusive, 3 bad usage or config")
    p.add_argument("--version", action="version", version=f"readygate {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", "-c", metavar="FILE",
                        help="config file (default: ./readygate.yaml, else the bundled demo)")

    def report_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--previous", metavar="FILE",
                        help="compare with this earlier report.json of the same gate")
        sp.add_argument("--history", metavar="DIR",
                        help="keep every report.json here and compare with the last one")
        sp.add_argument("--no-notify", action="store_true",
                        help="do not send the Slack/webhook summary configured in notify:")

    demo = sub.add_parser("demo", help="start the bundled demo system and run its release gate")
    config_arg(demo)
    demo.add_argument("--out", default="out/demo", metavar="DIR",
                      help="where the report goes (default: out/demo)")
    demo.add_argument("--gate", help="gate to run (default: demo.gate in the config)")
    demo.add_argument("--sabotage", action="append", default=None, metavar="KNOB",
                      help="break the demo's observability on purpose (repeatable), e.g. "
                           "no_propagation")
    demo.add_argument("--rules", metavar="FILE", help="alert rules to load instead of the "
                      "demo's own")
    demo.add_argument("--backends", choices=["sink", "real"], default="sink",
                      help="sink (default): the embedded sink holds traces and logs; real: "
                           "an OpenTelemetry Collector fans them out to Jaeger and "
                           "VictoriaLogs (built by scripts/install-peers.sh)")
    report_args(demo)

    run = sub.add_parser("run", help="run a gate against the configured target")
    run.add_argument("gate", help="gate name from the config, else from gates/library")
    config_arg(run)
    run.add_argument("--out", default="out/run", metavar="DIR")
    run.add_argument("--allow-production", action="store_true",
                     help="allow chaos on a target whose environment is production")
    report_args(run)

    drill = sub.add_parser("drill", help="run an incident drill: a scenario file with a "
                           "timeline of detection, notification and recovery")
    drill.add_argument("scenario", help="a bundled scenario (error-rate, latency, "
                       "dependency-down) or a path to a scenario YAML file")
    config_arg(drill)
    drill.add_argument("--demo", action="store_true",
                       help="start the bundled demo stack and drill it (stopped afterwards)")
    drill.add_argument("--out", default=None, metavar="DIR",
                       help="where the report goes (default: out/drill/SCENARIO)")
    drill.add_argument("--allow-production", action="store_true",
                       help="allow chaos on a target whose environment is production")
    report_args(drill)

    selftest = sub.add_parser("selftest", help="run the demo gate against deliberately broken "
                              "setups: every defect must end NOT READY, the healthy one READY")
    config_arg(selftest)
    selftest.add_argument("--gate", help="gate to run (default: demo.gate in the config)")
    selftest.add_argument("--out", default="out/selftest", metavar="DIR",
                          help="one report per run goes to DIR/<variant>/")
    selftest.add_argument("--healthy-runs", type=int, default=10, metavar="N",
                          help="how many times the healthy setup must end READY (default 10)")
    selftest.add_argument("--fast", action="store_true",
                          help="shorter phases and deadlines (CI); the table says so")
    selftest.add_argument("--parallel", type=int, default=2, metavar="K",
                          help="demo stacks side by side (default 2; runs mostly wait)")
    selftest.add_argument("--only", action="append", default=None, metavar="DEFECT",
                          help="run only this defect (repeatable)")
    selftest.add_argument("--write-docs", metavar="FILE",
                          help="write the Markdown table of what was tried to FILE")

    validate = sub.add_parser("validate", help="check a config file and exit")
    config_arg(validate)

    schema = sub.add_parser("schema", help="print the JSON Schema of readygate.yaml, of a "
                            "journeys file or of a scenario file")
    schema.add_argument("kind", nargs="?", default="config",
                        choices=["config", "journeys", "scenario"])

    from readygate.probe_cli import add_arguments as probe_arguments

    probe = sub.add_parser("probe", help="run journeys once (probe run) or on their intervals "
                                         "with Prometheus metrics (probe serve)")
    probe_arguments(probe, config_arg)

    from readygate.stack_cli import add_arguments as stack_arguments

    stack_arguments(sub, run, config_arg, report_args)  # `stack GATE|up`, `run --stack`

    from sink.cli import add_arguments as sink_arguments

    sink = sub.add_parser("sink", help="receive OTLP (HTTP and gRPC), Sentry events and "
                                       "Alertmanager webhooks; query them over HTTP")
    sink_arguments(sink)
    return p


def _load(path: str | None) -> tuple[Config, Path]:
    config_path = Path(path) if path else default_config_path()
    return load_config(config_path), config_path


def _refuse_nothing_to_run(config: Config, path: Path) -> None:
    """An empty config (no gates, journeys, services, backends or stack) is refused: it
    would "validate" and "run" while judging nothing."""
    backends = config.backends
    if config.gates or config.catalog.names or config.target.services or config.stack \
            or backends.prometheus or backends.alertmanager or backends.sink \
            or backends.by_signal():
        return
    raise ConfigError("nothing to run: the config defines no gates, journeys, target services "
                      "or backends (docs/config.md; `readygate demo` runs the bundled demo)",
                      path=str(path))


def _gate(config: Config, name: str, path: Path) -> tuple[Config, str]:
    """The config holding gate ``name``: the config's own gate wins over gates/library."""
    from scenarios.library import resolve_gate

    return resolve_gate(config, name, path), name


def _report_options(args: argparse.Namespace, options: RunOptions) -> RunOptions:
    """--previous / --history / --no-notify; a previous report that is not one is exit 3."""
    from reports.history import read_report

    if args.previous:
        read_report(args.previous)  # fail before the run, not after it
        options.previous = Path(args.previous)
    if args.history:
        options.history_dir = Path(args.history)
    options.notify = not args.no_notify
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ConfigError, EnvironmentProblem) as exc:
        print(f"readygate: {redact.scrub(str(exc).splitlines()[0])}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StackError as exc:
        print(f"readygate: the stack failed: {redact.scrub(str(exc))}", file=sys.stderr)
        return 2
    except ReadygateError as exc:
        print(f"readygate: {redact.scrub(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("readygate: interrupted", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sink":  # before the runner import: the sink needs none of it
        from sink.cli import main as sink_main

        return sink_main(args)
    from readygate.runner import RunOptions, run_configured, run_demo

    if args.command == "stack" or getattr(args, "stack", False):
        from readygate.stack_cli import stack_command

        config, path = _load(args.config)
        return stack_command(args, config, path, _report_options)
    if args.command == "schema":
        from readygate.schemas import schema_text

        sys.stdout.write(schema_text(args.kind))
        return 0
    if args.command == "probe":
        from readygate.probe_cli import probe_run, probe_serve

        if args.probe_command not in ("run", "serve"):
            _parser().parse_args(["probe", "--help"])
        config, path = _load(args.config)
        return (probe_run if args.probe_command == "run" else probe_serve)(args, config, path)
    if args.command == "validate":
        config, path = _load(args.config)
        _refuse_nothing_to_run(config, path)
        gates = ", ".join(sorted(config.gates)) or "no gates"
        print(f"{path}: ok ({gates}; target {config.target.name}, "
              # distinct values: one password in a URL and in basic auth is one secret
              f"{len({s for s in config.secrets() if s})} secret(s) redacted)")
        return 0
    if args.command == "demo":
        config, path = _load(args.config)
        config, gate = _gate(config, args.gate or config.demo.gate, path)
        rules_text = None
        if args.rules:
            from demo.stack import read_rules

            rules_text = read_rules(args.rules)
        if args.backends == "real":
            from demo.real_backends import require_peers

            require_peers()  # before anything starts: exit 3 naming install-peers.sh
        options = _report_options(args, RunOptions(out_dir=Path(args.out)))
        return asyncio.run(run_demo(config, options, gate=gate, sabotage=args.sabotage,
                                    rules_text=rules_text, backends=args.backends))
    if args.command == "selftest":
        from readygate.selftest import selftest_command

        config, path = _load(args.config)
        config, gate = _gate(config, args.gate or config.demo.gate, path)
        return selftest_command(args, config, gate)
    if args.command == "drill":
        from readygate.runner import run_drill

        config, path = _load(args.config)
        out = args.out or f"out/drill/{Path(args.scenario).stem}"
        options = _report_options(args, RunOptions(out_dir=Path(out),
                                                   allow_production=args.allow_production))
        return asyncio.run(run_drill(config, args.scenario, options, demo=args.demo))
    if args.command == "run":
        config, path = _load(args.config)
        _refuse_nothing_to_run(config, path)
        config, gate = _gate(config, args.gate, path)
        options = _report_options(args, RunOptions(out_dir=Path(args.out),
                                                   allow_production=args.allow_production))
        return asyncio.run(run_configured(config, gate, options))
    _parser().print_help()
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
