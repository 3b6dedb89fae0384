"""The `readygate` command. Exit codes: 0 ready, 1 not ready, 2 inconclusive, 3 bad input."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from readygate import __version__, redact
from readygate.config import Config, default_config_path, json_schema, load_config
from readygate.errors import ConfigError, EnvironmentProblem, ReadygateError, StackError

EXIT_BAD_INPUT = 3


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

    run = sub.add_parser("run", help="run a gate against the configured target")
    run.add_argument("gate", help="gate name from the config")
    config_arg(run)
    run.add_argument("--out", default="out/run", metavar="DIR")
    run.add_argument("--allow-production", action="store_true",
                     help="allow chaos on a target whose environment is production")

    validate = sub.add_parser("validate", help="check a config file and exit")
    config_arg(validate)

    sub.add_parser("schema", help="print the JSON Schema of the config")
    return p


def _load(path: str | None) -> tuple[Config, Path]:
    config_path = Path(path) if path else default_config_path()
    return load_config(config_path), config_path


def _gate(config: Config, name: str, path: Path) -> str:
    if name in config.gates:
        return name
    close = difflib.get_close_matches(name, list(config.gates), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else \
        f" (defined: {', '.join(sorted(config.gates)) or 'none'})"
    raise ConfigError(f"no gate named '{name}'{hint}", path=str(path), key="gates")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ConfigError, EnvironmentProblem) as exc:
        print(f"readygate: {redact.scrub(str(exc).splitlines()[0])}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StackError as exc:
        print(f"readygate: the demo stack failed: {redact.scrub(str(exc))}", file=sys.stderr)
        return 2
    except ReadygateError as exc:
        print(f"readygate: {redact.scrub(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("readygate: interrupted", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from readygate.runner import RunOptions, run_configured, run_demo

    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.command == "validate":
        config, path = _load(args.config)
        gates = ", ".join(sorted(config.gates)) or "no gates"
        print(f"{path}: ok ({gates}; target {config.target.name}, "
              f"{len(config.secrets())} secret(s) redacted)")
        return 0
    if args.command == "demo":
        config, path = _load(args.config)
        gate = _gate(config, args.gate or config.demo.gate, path)
        rules_text = None
        if args.rules:
            try:
                rules_text = Path(args.rules).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read rules file: {exc.strerror}",
                                  path=args.rules) from None
        options = RunOptions(out_dir=Path(args.out))
        return asyncio.run(run_demo(config, options, gate=gate, sabotage=args.sabotage,
                                    rules_text=rules_text))
    if args.command == "run":
        config, path = _load(args.config)
        gate = _gate(config, args.gate, path)
        options = RunOptions(out_dir=Path(args.out), allow_production=args.allow_production)
        return asyncio.run(run_configured(config, gate, options))
    _parser().print_help()
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
