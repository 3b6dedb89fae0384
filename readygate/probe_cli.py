"""``readygate probe run`` and ``readygate probe serve``: journeys from the config and files.

The target is the config's ``probes.service`` URL (or ``--target``); credentials come from
``target.credentials``; journeys from ``--journeys-file FILE``, else the config's (its
journeys files and inline journeys): the same journeys a gate runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from core import redact
from core.errors import ConfigError, EnvironmentProblem
from core.http import ConnectOptions
from probes.blackbox.config import Module
from probes.journeys import Catalog, Journey, build_catalog, resolve
from probes.model import ProbeResult
from probes.scheduler import ProbeScheduler
from probes.transport import lean_client
from readygate.config import Config

DEFAULT_LISTEN = "127.0.0.1:9116"  # next to blackbox_exporter's 9115


def add_arguments(probe: argparse.ArgumentParser,
                  config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``probe run`` / ``probe serve`` subcommands; ``config_arg`` adds ``--config``."""
    sub = probe.add_subparsers(dest="probe_command", metavar="SUBCOMMAND")
    run = sub.add_parser("run", help="run journeys once and print a table (exit 0: all pass)")
    run.add_argument("journeys", nargs="*", metavar="JOURNEY",
                     help="journeys to run (default: probes.journeys, else every defined one)")
    run.add_argument("--json", action="store_true", help="print results as JSON")
    serve = sub.add_parser("serve", help="run every journey on its interval and serve "
                                         "Prometheus metrics")
    serve.add_argument("journeys", nargs="*", metavar="JOURNEY")
    serve.add_argument("--listen", default=None, metavar="HOST:PORT",
                       help=f"where to serve /metrics (default {DEFAULT_LISTEN}; port 0: any "
                            "free port, printed as READY <url>)")
    serve.add_argument("--port", type=int, default=None, help="shorthand for --listen "
                                                              "127.0.0.1:PORT")
    serve.add_argument("--location", help="location label (default: probes.location or the "
                                          "host name)")
    serve.add_argument("--max-concurrency", type=int, default=32, metavar="N",
                       help="journeys running at once, at most (default 32)")
    serve.add_argument("--blackbox-config", metavar="FILE",
                       help="a blackbox_exporter blackbox.yml: /probe?module=NAME answers its "
                            "http, tcp, dns and icmp modules as blackbox_exporter does "
                            "(docs/probe-serve.md); journeys then run only when named, "
                            "given with -j or with --config")
    from readygate.probe_serve import add_arguments as fleet_arguments

    fleet_arguments(serve)
    serve.add_argument("--probe-keepalive", action="store_true",
                       help="/probe journeys reuse connections between probes (default: a "
                            "fresh connection per probe, as blackbox_exporter)")
    for sp in (run, serve):
        config_arg(sp)
        sp.add_argument("--journeys-file", "-j", metavar="FILE",
                        help="more journeys YAML, next to the config's own (without JOURNEY "
                             "names, the file's journeys run)")
        sp.add_argument("--target", metavar="URL",
                        help="base URL for journeys without their own (default: the config's "
                             "probes.service)")
        sp.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                        help="interval for journeys without their own (default: "
                             "probes.interval_s)")


def _journeys(args: argparse.Namespace, config: Config, config_path: Path) -> list[Journey]:
    catalog = config.catalog
    names = list(args.journeys) or list(config.probes.journeys)
    if args.journeys_file:
        # the file's journeys join the config's; without names, the file's journeys run
        extra = build_catalog([Path(args.journeys_file)])
        for name, defined in catalog.journeys.items():
            if name in extra.journeys:
                raise ConfigError(f"journey {name!r} is defined twice (also in "
                                  f"{defined.source})", path=args.journeys_file,
                                  key=f"journeys.{name}")
        names = list(args.journeys) or extra.names
        catalog = Catalog({**catalog.journeys, **extra.journeys}, extra.browser)
    target = args.target or config.probes.base_url(config.target.services)
    if args.target and not args.target.startswith(("http://", "https://")):
        raise ConfigError(f"--target {args.target!r} is not an http(s) URL")
    password = config.target.credentials.password
    return resolve(names, catalog, base_url=target,
                   username=config.target.credentials.username,
                   password=password.get_secret_value() if password else None,
                   interval_s=args.interval or config.probes.interval_s,
                   timeout_s=config.probes.timeout_s)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def render_table(results: list[ProbeResult]) -> str:
    """The results as a table: a line per journey, then a line per step with its phases."""
    lines = [f"{'STATUS':<8}{'JOURNEY / STEP':<28}{'HTTP':>5}{'TIME':>10}{'CONNECT':>10}"
             f"{'TLS':>9}{'TTFB':>9}  MESSAGE"]
    for r in results:
        status = ("PASS" if r.success else "FAIL") + ("*" if r.retried else "")
        message = r.error or ("passed after a retry" if r.retried else "")
        lines.append(f"{status:<8}{r.journey:<28}{'':>5}{_ms(r.duration_s):>10}"
                     f"{_ms(r.phases.get('connect')):>10}{_ms(r.phases.get('tls')):>9}"
                     f"{'':>9}  {message}")
        for s in r.steps:
            mark = "skip" if s.skipped else ("ok" if s.ok else "FAIL")
            tries = f" ({s.attempts} attempts)" if s.attempts > 1 else ""
            lines.append(f"  {mark:<6}  {s.name[:24]:<26}{s.status or '—'!s:>5}"
                         f"{_ms(s.duration_s):>10}{_ms(s.phases.get('connect')):>10}"
                         f"{_ms(s.phases.get('tls')):>9}{_ms(s.ttfb_s):>9}  {tries.strip()}")
        if r.tls_cert_expiry is not None:
            days = (r.tls_cert_expiry - time.time()) / 86400
            lines.append(f"  TLS certificate expires in {days:.0f} days")
        for page, vitals in r.web_vitals.items():
            shown = ", ".join(f"{k} {v:.3f}" if k == "cls" else f"{k} {v * 1000:.0f} ms"
                              for k, v in vitals.items())
            lines.append(f"  web vitals {page}: {shown}")
        for artifact in r.artifacts:
            lines.append(f"  artifact: {artifact}")
    passed = sum(r.success for r in results)
    lines.append(f"\n{passed}/{len(results)} journeys passed")
    return "\n".join(lines)


async def run_once(journeys: list[Journey],
                   http: ConnectOptions | None = None) -> list[ProbeResult]:
    """Run every journey once, concurrently, each bounded by its timeout."""
    async with lean_client() as client:
        scheduler = ProbeScheduler(journeys, client, lambda r: None, http=http)
        try:
            return list(await asyncio.gather(*(scheduler.run_once(j) for j in journeys)))
        finally:
            await scheduler.stop()


def probe_run(args: argparse.Namespace, config: Config, config_path: Path,
              out: TextIO = sys.stdout) -> int:
    """``readygate probe run``: exit 0 when every journey passed, 1 otherwise."""
    journeys = _journeys(args, config, config_path)
    if not journeys:  # nothing ran is not "all passed"
        raise ConfigError("no journeys to run: define journeys (or probes.journeys_file) in "
                          "the config, or pass --journeys-file", path=str(config_path))
    results = asyncio.run(run_once(journeys, config.probes.http))
    if args.json:
        text = json.dumps({"results": [r.to_dict() for r in results],
                           "passed": all(r.success for r in results)}, indent=2)
    else:
        text = render_table(results)
    out.write(redact.scrub(text) + "\n")
    return 0 if all(r.success for r in results) else 1


def _listen(args: argparse.Namespace) -> tuple[str, int]:
    if args.port is not None:
        return "127.0.0.1", args.port
    host, sep, port = (args.listen or DEFAULT_LISTEN).rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen {args.listen!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _blackbox_modules(path: str) -> dict[str, Module]:
    """A blackbox.yml's modules; an icmp module this process cannot run is refused now."""
    from probes.blackbox.config import load_blackbox
    from probes.blackbox.icmp import icmp_problem

    modules = load_blackbox(path)
    icmp = [name for name, m in modules.items() if m.prober == "icmp"]
    problem = icmp_problem() if icmp else None
    if problem is not None:
        raise EnvironmentProblem(f"{path} modules.{icmp[0]}: {problem}")
    return modules


def probe_serve(args: argparse.Namespace, config: Config, config_path: Path) -> int:
    """``readygate probe serve``: serve until SIGTERM/SIGINT; exit 0 after a clean stop."""
    from probes.pool import Exposition
    from probes.service import create_app
    from readygate.probe_serve import serve, shard_of, workers_count

    blackbox = None
    journeys: list[Journey] = []
    if args.blackbox_config:
        blackbox = _blackbox_modules(args.blackbox_config)
    if not blackbox or args.journeys or args.journeys_file or args.config:
        journeys = _journeys(args, config, config_path)
    host, port = _listen(args)
    location = args.location or config.probes.location or socket.gethostname()
    if args.max_concurrency < 1:
        raise ConfigError("--max-concurrency must be at least 1")
    workers, shard = workers_count(args.workers), shard_of(args.shard)

    def make_app(scheduled: list[Journey], exposition: Exposition | None) -> object:
        # One per worker (after the fork): `scheduled` is its share, every journey a module.
        return create_app(journeys, location=location, max_concurrency=args.max_concurrency,
                          freeze_gc=True, http=config.probes.http, blackbox=blackbox,
                          probe_keepalive=args.probe_keepalive, scheduled=scheduled,
                          exposition=exposition)

    # Workers, shards, uvloop and the start-up GC freeze: readygate.probe_serve.
    return serve(journeys, make_app, host=host, port=port, location=location,
                 workers=workers, shard=shard)
