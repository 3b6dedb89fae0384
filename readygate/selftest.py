"""`readygate selftest`: prove the demo gate can fail. Each known defect must end NOT READY.

One demo stack serves every variant: between runs web and storage restart on their own
ports with new sabotage knobs and Prometheus / Alertmanager hot-reload their rules and
config (:meth:`demo.stack.DemoStack.reconfigure`), which waits until no alert from the
previous run is pending or firing. Each variant runs the configured gate unchanged (or,
with ``fast``, with shorter phases and deadlines); a defect counts as caught only when the
verdict is NOT READY *and* the expected check failed with a message naming the defect.
The healthy setup must end READY every time. The Markdown table is what docs/selftest.md
holds (``readygate selftest --write-docs docs/selftest.md``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import redact
from probes.spec import BrowserJourney
from readygate.config import Config

HEALTHY = "healthy"

FAST: dict[str, float] = {"baseline": 3, "alert": 8, "resolved": 15, "other": 6,
                          "browser": 15, "phase": 45}
"""Shortened timings (seconds) for ``--fast``. Observed on the demo: alert 2-3 s, resolved
notification about 8 s after the fault ends (a 10 s rate window must empty first), every
other signal under 2 s; but a check following a browser journey counts from the run's
start, which launches Chromium (3-7 s with three demo stacks on two cores, over 20 s when
other test workers share the cores too; the run's start is now its first step, once
Chromium is up, but a busy Chromium still takes seconds to load the page and click).
``phase`` bounds each phase: a phase ends as soon as its checks settle, so the bound costs a
healthy run nothing (30 s was too short for a browser-following check in a rehearsal of CI
with three test workers and two demo stacks on two cores)."""


def _without_rule(alertname: str) -> Callable[[str], str]:
    def edit(rules: str) -> str:
        data = yaml.safe_load(rules)
        for group in data["groups"]:
            group["rules"] = [r for r in group["rules"] if r.get("alert") != alertname]
        return str(yaml.safe_dump(data, sort_keys=False))
    return edit


def _unreachable_threshold(rules: str) -> str:
    # HighErrorRate compares a ratio of 5xx to all answers: it can never exceed 1.
    if "> 0.05" not in rules:
        raise ValueError("the demo rules changed: HighErrorRate's '> 0.05' threshold is gone")
    return rules.replace("> 0.05", "> 1.5")


SABOTAGE_DIR = Path(__file__).resolve().parents[1] / "demo" / "rules" / "sabotage"
"""Rules and Alertmanager configs made broken on purpose (each file says how it is caught)."""

LEAK_PASSWORD = 'Sélf "test" p&ss+%20 \\ wörd'
"""The base of the secret-leak runs' passwords: URL-, JSON-, base64- and HTML-encoded it
differs from itself, so a raw substring search would miss every encoded leak. Registered for
redaction before any run, like a configured secret."""


def _leak(knob: str) -> str:
    # Each leak run has a password of its own: the scan covers the logs of the last hour
    # (lookback_s), so an earlier run's leak must neither catch this run's defect for it nor
    # fail a later healthy run, which looks for the configured password only.
    return f"{LEAK_PASSWORD} {knob.removeprefix('leak_password').strip('_') or 'raw'}"


def _sabotage_file(name: str) -> Callable[..., str]:
    """A rules file (called with the demo's rules) or Alertmanager config (no argument)."""
    def text(*_ignored: str) -> str:
        return (SABOTAGE_DIR / name).read_text(encoding="utf-8")
    return text


def _routing_to_nowhere() -> str:
    # A receiver without integrations: Alertmanager accepts the alert and tells nobody.
    return str(yaml.safe_dump({
        "route": {"receiver": "nowhere", "group_by": ["alertname", "service"],
                  "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "nowhere"}]}, sort_keys=False))


@dataclass(frozen=True)
class Variant:
    """One deliberately broken (or healthy) setup and how readygate must judge it."""

    key: str
    defect: str
    expect_signal: str | None = None  # the check that must fail (None: healthy, READY)
    expect_text: str = ""             # and the words in its message that name the defect
    sabotage: tuple[str, ...] = ()
    rules: Callable[[str], str] | None = None
    alertmanager: Callable[[], str] | None = None
    how: str = ""                     # how the defect is made, for the table
    silence: str | None = None        # an alertname silenced in Alertmanager during the run
    password: str | None = None       # web's and the journeys' password for this run


DEFECTS: tuple[Variant, ...] = (
    Variant("alert_rule_missing", "alert rule missing", "alert",
            "no alerting rule named HighErrorRate is loaded",
            rules=_without_rule("HighErrorRate"), how="rules without HighErrorRate"),
    Variant("threshold_never_triggers", "alert threshold that can never trigger", "alert",
            "its condition never held", rules=_unreachable_threshold,
            how="HighErrorRate ratio `> 1.5`"),
    Variant("routing_to_nowhere", "Alertmanager routes to nowhere", "notification",
            "which has no integration", alertmanager=_routing_to_nowhere,
            how="receiver without integrations"),
    Variant("already_firing", "alert already firing before the fault", "alert",
            "already firing before fault_start (active since",
            rules=_sabotage_file("already-firing.yml"),
            how="`demo/rules/sabotage/already-firing.yml` (fires on any traffic)"),
    Variant("severity_downgraded", "alert severity downgraded critical → info", "alert_rule",
            "severity=info, expected severity=critical",
            rules=_sabotage_file("severity-downgraded.yml"),
            how="`demo/rules/sabotage/severity-downgraded.yml`"),
    Variant("no_resolved_notification", "Alertmanager never sends resolved", "notification",
            "does not send resolved notifications",
            alertmanager=_sabotage_file("alertmanager-no-resolved.yml"),
            how="`demo/rules/sabotage/alertmanager-no-resolved.yml` (`send_resolved: false`)"),
    Variant("alert_never_resolves", "alert never resolves", "alert_resolves",
            "keep_firing_for: 1h keeps it firing", rules=_sabotage_file("keep-firing.yml"),
            how="`demo/rules/sabotage/keep-firing.yml` (`keep_firing_for: 1h`)"),
    Variant("pending_in_baseline", "critical alert pending on the healthy system", "no_alert",
            "was pending", rules=_sabotage_file("pending-in-baseline.yml"),
            how="`demo/rules/sabotage/pending-in-baseline.yml` (`for: 1m` hides it)"),
    Variant("alert_inhibited", "alert inhibited by another alert", "notification",
            "is inhibited by ServerErrorsSeen{", rules=_sabotage_file("inhibiting.yml"),
            alertmanager=_sabotage_file("alertmanager-inhibited.yml"),
            how="`demo/rules/sabotage/inhibiting.yml` + `alertmanager-inhibited.yml`"),
    Variant("alert_silenced", "alert silenced in Alertmanager", "notification",
            "is silenced by silence", silence="HighErrorRate",
            how="a silence on `alertname=HighErrorRate` for the run"),
    Variant("no_propagation", "trace context not propagated web → storage", "trace",
            "missing storage", sabotage=("no_propagation",)),
    Variant("no_trace_ids_in_logs", "logs without trace ids", "logs", "trace id",
            sabotage=("no_trace_ids_in_logs",)),
    Variant("errors_at_info", "errors logged at INFO", "log_levels", "not logged at ERROR",
            sabotage=("errors_at_info",)),
    Variant("drop_route_label", "required metric label missing", "metric_contract",
            "lack label 'route'", sabotage=("drop_route_label",)),
    Variant("leak_password", "demo password leaks into the logs", "secret_leak",
            "secret leaked into the logs", sabotage=("leak_password",),
            password=_leak("leak_password")),
    Variant("leak_password_url", "password logged URL-encoded (form body, query string)",
            "secret_leak", "(url-encoded)", sabotage=("leak_password_url",),
            password=_leak("leak_password_url")),
    Variant("leak_password_basic", "password logged in a Basic Authorization header",
            "secret_leak", "(base64)", sabotage=("leak_password_basic",),
            password=_leak("leak_password_basic")),
    Variant("leak_password_json", "password logged in an escaped JSON body", "secret_leak",
            "(escaped)", sabotage=("leak_password_json",), password=_leak("leak_password_json")),
    Variant("leak_password_split", "password logged split over two fields", "secret_leak",
            "pw_head", sabotage=("leak_password_split",),
            password=_leak("leak_password_split")),
    Variant("leak_password_startup", "password in a config dump at start-up", "secret_leak",
            "web config", sabotage=("leak_password_startup",),
            password=_leak("leak_password_startup")),
    Variant("ready_always_200", "readiness endpoint always says 200", "health",
            "/health/ready answers 200", sabotage=("ready_always_200",)),
    Variant("no_error_reporting", "error reporting switched off", "error_event", "error event",
            sabotage=("no_error_reporting",)),
    Variant("health_ignores_storage", "storage down while /health stays green", "health",
            "/health answers 200", sabotage=("health_ignores_storage",)),
    Variant("no_frontend_error_reporting", "browser SDKs drop the page's error reports",
            "error_event", "no error event", sabotage=("no_frontend_error_reporting",)),
)
"""Every defect the demo's release gate must catch."""


@dataclass
class Outcome:
    """How one variant ended."""

    variant: Variant
    verdict: str
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (signal, name, message)
    wall_s: float = 0.0
    problem: str | None = None  # the run itself broke (stack, reconfigure)

    @property
    def expected(self) -> tuple[str, str, str] | None:
        """The failed check that names the defect (None if none does)."""
        v = self.variant
        return next((f for f in self.failed
                     if f[0] == v.expect_signal and v.expect_text in f[2]), None)

    @property
    def ok(self) -> bool:
        """Judged as it must be: healthy READY; a defect NOT READY by the expected check."""
        if self.problem is not None:
            return False
        if self.variant.expect_signal is None:
            return self.verdict == "ready"
        return self.verdict == "not_ready" and self.expected is not None


def _follows_browser(config: Config, journey: Any) -> bool:
    defined = config.catalog.journeys.get(str(journey)) if journey else None
    return defined is not None and isinstance(defined.spec, BrowserJourney)


def selftest_config(config: Config, gate: str, *, fast: bool) -> Config:
    """The config whose ``gate`` the selftest runs; ``fast`` shortens phases and deadlines."""
    if not fast:
        return config
    data = config.gates[gate].model_dump(mode="python")
    scenario = data["scenario"]
    scenario["baseline"] = {"min_duration_s": FAST["baseline"],
                            "max_duration_s": FAST["phase"]}
    scenario["fault_phase"] = {"max_duration_s": FAST["phase"]}
    scenario["recovery"] = {"max_duration_s": FAST["phase"]}
    for check in data["checks"]:
        if check["signal"] == "no_alert":
            check["window_s"] = FAST["baseline"]
        elif check["signal"] in ("alert", "notification"):
            check["deadline_s"] = FAST["resolved" if check.get("status") == "resolved"
                                       else "alert"]
        elif check["signal"] == "alert_resolves":
            # the alert resolves with the resolved notification: the rate window must empty
            check["deadline_s"] = FAST["resolved"]
        elif _follows_browser(config, check.get("journey")):
            check["deadline_s"] = min(check["deadline_s"], FAST["browser"])
        else:
            check["deadline_s"] = min(check["deadline_s"], FAST["other"])
    gates = {**config.gates, gate: type(config.gates[gate]).model_validate(data)}
    return config.model_copy(update={"gates": gates})


def plan(healthy_runs: int) -> list[Variant]:
    """Defects with the healthy runs spread between them (proves no state bleeds over)."""
    healthy = Variant(HEALTHY, "healthy demo (no defect)")
    out: list[Variant] = []
    left = healthy_runs
    step = max(1, math.ceil(len(DEFECTS) / max(healthy_runs, 1)))
    for i, defect in enumerate(DEFECTS):
        if left and i % step == 0:
            out.append(healthy)
            left -= 1
        out.append(defect)
    out.extend([healthy] * left)
    return out


async def run_selftest(config: Config, gate: str, out_dir: Path, *, healthy_runs: int = 10,
                       fast: bool = False, only: list[str] | None = None, parallel: int = 1,
                       progress: Callable[[str], None] = lambda _m: None) -> list[Outcome]:
    """Run every variant on ``parallel`` demo stacks; stop everything on every path out.

    Stacks mostly wait on deadlines (a run uses about a quarter of a core), so two of them
    side by side halve the wall time without stretching any latency near its deadline.
    """
    import asyncio

    from core.scratch import sweep_stale

    # a SIGKILLed selftest's stack directory (unscrubbed logs, the sink's database) goes now
    sweep_stale()
    # registered before any run, so every report and copied log masks it in every encoding
    redact.register(*{d.password for d in DEFECTS if d.password})
    config = selftest_config(config, gate, fast=fast)
    variants = [v for v in plan(healthy_runs) if not only or v.key in (*only, HEALTHY)]
    names: list[str] = []
    for variant in variants:
        seen = sum(n.startswith(variant.key) for n in names)
        names.append(variant.key if variant.key != HEALTHY else f"{HEALTHY}-{seen + 1}")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(variants)):
        queue.put_nowait(index)
    outcomes: dict[int, Outcome] = {}
    workers = [asyncio.create_task(_worker(config, gate, out_dir, variants, names, queue,
                                           outcomes, progress))
               for _ in range(max(1, min(parallel, len(variants))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return [outcomes[i] for i in sorted(outcomes)]


async def _worker(config: Config, gate: str, out_dir: Path, variants: list[Variant],
                  names: list[str], queue: Any, outcomes: dict[int, Outcome],
                  progress: Callable[[str], None]) -> None:
    """One demo stack running variants off the queue until it is empty."""
    import shutil

    import httpx
    from pydantic import SecretStr

    from core.events import EventBus
    from core.scratch import scratch_dir
    from demo.stack import DemoStack, StackOptions, default_rules_text
    from readygate.runner import RunOptions, run_gate, with_stack
    from reports.writer import write_reports, write_text_artifact

    configured = config.target.credentials.password
    password = configured.get_secret_value() if configured else ""
    workdir = scratch_dir("readygate-selftest-")
    stack = DemoStack(StackOptions(password=password), workdir)
    try:
        urls = await stack.start()
        filled = with_stack(config, urls)
        while not queue.empty():
            index = queue.get_nowait()
            variant, name = variants[index], names[index]
            label = f"[{index + 1}/{len(variants)}] {variant.defect}"
            started = time.monotonic()
            try:
                await stack.reconfigure(
                    sabotage=variant.sabotage,
                    rules_text=variant.rules(default_rules_text()) if variant.rules else None,
                    alertmanager_config_text=variant.alertmanager()
                    if variant.alertmanager else None,
                    password=variant.password or password)
                silence = await _silence(urls.alertmanager, variant.silence) \
                    if variant.silence else None
            except Exception as exc:  # the table says so; the other variants still run
                why = f"{type(exc).__name__}: {exc}".rstrip(": ")  # a timeout's str is empty
                outcomes[index] = Outcome(variant, "error", problem=f"reconfigure: {why}")
                progress(f"{label}: reconfigure: {why}")
                continue
            run_config = filled
            if variant.password:
                credentials = filled.target.credentials.model_copy(
                    update={"password": SecretStr(variant.password)})
                run_config = filled.model_copy(update={"target": filled.target.model_copy(
                    update={"credentials": credentials})})
            run_started = time.monotonic()
            try:
                report = await run_gate(run_config, gate, RunOptions(out_dir=out_dir / name),
                                        bus=EventBus())
            finally:
                if silence is not None:
                    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
                        await client.delete(f"{urls.alertmanager}/api/v2/silence/{silence}")
            write_reports(report, out_dir / name)
            for log in ("web", "storage"):  # the writer scrubs secrets on the way out
                path = stack.log_dir / f"{log}.log"
                if path.exists():
                    write_text_artifact(out_dir / name / "logs", f"{log}.log",
                                        path.read_text(encoding="utf-8", errors="replace"))
            failed = [(c.signal, c.name, c.message) for c in report.checks
                      if c.status in ("fail", "error")]
            outcome = Outcome(variant, report.verdict, failed,
                              wall_s=time.monotonic() - run_started)
            outcomes[index] = outcome
            progress(f"{label}: {report.verdict.upper().replace('_', ' ')} "
                     f"{'as expected' if outcome.ok else 'UNEXPECTED'} "
                     f"({outcome.wall_s:.1f}s gate, {run_started - started:.1f}s reconfigure)"
                     + (f" — {outcome.expected[1]}: {outcome.expected[2]}"
                        if outcome.expected else
                        "".join(f"; {f[1]}: {f[2]}" for f in outcome.failed)))
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _silence(alertmanager: str, alertname: str) -> str:
    """Silence ``alertname`` in Alertmanager for an hour (deleted after the run); its id."""
    import datetime as dt

    import httpx

    now = dt.datetime.now(dt.UTC)
    body = {"matchers": [{"name": "alertname", "value": alertname, "isRegex": False,
                          "isEqual": True}],
            "startsAt": now.isoformat(), "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
            "createdBy": "readygate selftest", "comment": "selftest: a silenced alert"}
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        resp = await client.post(alertmanager + "/api/v2/silences", json=body)
        resp.raise_for_status()
        return str(resp.json()["silenceID"])


def _cell(text: str, limit: int = 420) -> str:
    text = " ".join(redact.scrub(text).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("|", "\\|")


def render_table(outcomes: list[Outcome], *, gate: str, fast: bool, wall_s: float,
                 command: str) -> str:
    """The Markdown page: what was tried, what readygate said, and how to rerun it."""
    defects = [o for o in outcomes if o.variant.key != HEALTHY]
    healthy = [o for o in outcomes if o.variant.key == HEALTHY]
    caught = sum(o.ok for o in defects)
    ready = sum(o.ok for o in healthy)
    lines = [
        "# Selftest: does the release gate fail when it should?",
        "",
        "<!-- generated by `" + command + "`; do not edit by hand -->",
        "",
        "A gate that cannot fail is worse than none. `readygate selftest` runs the demo's "
        f"`{gate}` gate against deliberately broken setups of the demo system: each defect must "
        "end **NOT READY**, with the check that names it; the healthy setup must end **READY** "
        "every time. One demo stack serves every run: web and storage restart with the "
        "sabotage knobs, Prometheus and Alertmanager hot-reload rules and config (Prometheus "
        "first with no rules, so no alert state carries over), and the next run starts only "
        "when no alert is pending or firing in Prometheus nor active in Alertmanager. Each "
        "secret-leak run uses a password of its own with `\"`, `\\`, non-ASCII, `&`, `%`, "
        "`+` and spaces, so its encoded forms differ from the raw text and an earlier run's "
        "leak (the scan looks an hour back) cannot catch the defect for it.",
        "",
        f"Ran: {len(defects)} defects, {caught} caught; healthy setup READY {ready} of "
        f"{len(healthy)}; gate timings: "
        + (f"**shortened** (`--fast`: baseline {FAST['baseline']:g} s, "
           f"phases ≤ {FAST['phase']:g} s, alert/notification deadlines {FAST['alert']:g} s, "
           f"resolved {FAST['resolved']:g} s, "
           f"other deadlines ≤ {FAST['other']:g} s)" if fast else "as in readygate.yaml")
        + f"; wall time {wall_s:.0f} s.",
        "",
        "| # | defect | how it is made | expected failing check | verdict | caught | "
        "check that failed: message |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, o in enumerate(defects, 1):
        v = o.variant
        how = v.how or (f"`DEMO_SABOTAGE={','.join(v.sabotage)}`" if v.sabotage else "")
        hit = o.expected
        if o.problem:
            shown = _cell(o.problem)
        elif hit:
            shown = f"**{_cell(hit[1], 80)}**: {_cell(hit[2], 640)}"
        else:
            shown = "; ".join(f"{_cell(f[1], 60)}: {_cell(f[2], 120)}" for f in o.failed) \
                or "nothing failed"
        lines.append(f"| {i} | {v.defect} | {how} | `{v.expect_signal}` | "
                     f"{o.verdict.upper().replace('_', ' ')} | {'yes' if o.ok else '**NO**'} "
                     f"| {shown} |")
    others = {o.variant.key: [f[1] for f in o.failed if f != o.expected] for o in defects}
    lines += ["", "Other checks that failed in the same runs (a defect often shows twice):", ""]
    lines += [f"- {k}: {', '.join(v)}" for k, v in others.items() if v] or ["- none"]
    walls = sorted(o.wall_s for o in healthy)
    lines += [
        "",
        f"Healthy setup: READY in {ready} of {len(healthy)} runs"
        + (f" (gate wall time {walls[0]:.1f}–{walls[-1]:.1f} s)" if walls else "")
        + "." + "".join(f" Run {i}: {o.verdict}, failed: "
                        f"{'; '.join(_cell(f[2], 120) for f in o.failed)}."
                        for i, o in enumerate(healthy, 1) if not o.ok),
        "",
        "## Rerun",
        "",
        "```",
        "readygate selftest --write-docs docs/selftest.md        # this page: 10 healthy runs",
        "readygate selftest --fast --healthy-runs 2 --parallel 3 --out out/selftest  # quick",
        "readygate selftest --only leak_password --healthy-runs 0       # one defect",
        "```",
        "",
        "Each run's report.json / report.md / junit.xml and the demo services' logs (secrets "
        "scrubbed) land in `--out` (default `out/selftest/<variant>/`). Exit code 0 when every "
        "defect was caught and every healthy run was READY, else 1. CI runs "
        "`tests/selftest/test_selftest.py` (marked slow): one defect per catching check, "
        "`--fast`, 2 healthy runs, and a scan of every artifact for the passwords in every "
        "encoding.",
        "",
    ]
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts for the console and the tests."""
    return {"defects": sum(o.variant.key != HEALTHY for o in outcomes),
            "caught": sum(o.ok for o in outcomes if o.variant.key != HEALTHY),
            "healthy": sum(o.variant.key == HEALTHY for o in outcomes),
            "ready": sum(o.ok for o in outcomes if o.variant.key == HEALTHY)}


def selftest_command(args: Any, config: Config, gate: str) -> int:
    """`readygate selftest`: run the matrix, print one line per run, maybe write the docs."""
    import asyncio
    import shlex
    import sys

    from core.errors import ConfigError

    known = {d.key for d in DEFECTS}
    unknown = sorted(set(args.only or []) - known)
    if unknown:
        raise ConfigError(f"unknown defect(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}", key="--only")
    if args.healthy_runs < 0:
        raise ConfigError("must be >= 0", key="--healthy-runs")

    def say(message: str) -> None:
        sys.stderr.write(redact.scrub(message) + "\n")
        sys.stderr.flush()

    started = time.monotonic()
    outcomes = asyncio.run(run_selftest(config, gate, Path(args.out),
                                        healthy_runs=args.healthy_runs, fast=args.fast,
                                        only=args.only, parallel=args.parallel,
                                        progress=say))
    wall = time.monotonic() - started
    counts = summary(outcomes)
    ok = all(o.ok for o in outcomes)
    print(f"selftest {gate}: {counts['caught']} of {counts['defects']} defects caught, "
          f"healthy READY {counts['ready']} of {counts['healthy']}, {wall:.0f}s: "
          f"{'OK' if ok else 'FAILED'}")
    if args.write_docs:
        command = "readygate selftest " + " ".join(
            shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["selftest"] \
            else "readygate selftest --write-docs " + args.write_docs
        from reports.writer import write_text_artifact
        target = Path(args.write_docs)
        write_text_artifact(target.parent, target.name,
                            render_table(outcomes, gate=gate, fast=args.fast, wall_s=wall,
                                         command=command))
        print(f"table written to {target}")
    return 0 if ok else 1
