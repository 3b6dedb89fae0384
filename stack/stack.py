"""The user's stack: Prometheus, Alertmanager and the sink around an already-running service.

From ``stack:`` in readygate.yaml: Prometheus scrapes the user's targets and evaluates
the user's alert rules; Alertmanager runs the user's own config (receivers and routes
unchanged) with one more route, first and ``continue: true``, that also delivers every
alert to the sink's webhook, so notification checks see them. Bad input (a rule promtool
rejects, an Alertmanager config amtool rejects) is a one-line ``ConfigError`` naming the
user's file and line before anything starts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core import redact
from core.config import resolve_path
from core.errors import ConfigError
from stack.base import StackBase
from stack.config import StackSettings, rule_files
from stack.files import (
    SINK_WEBHOOK_PLACEHOLDER,
    prometheus_config_text,
    scrape_config,
    sink_alertmanager_config,
    with_sink_route,
)
from stack.tools import first_error_line, run_check, tool_error, write_atomic


@dataclass(frozen=True)
class StackUrls:
    """Base URLs of a started stack."""

    prometheus: str
    alertmanager: str
    sink: str


class ObservabilityStack(StackBase[StackUrls]):
    """Prometheus + Alertmanager + sink from ``stack:``: start, wait until ready, stop."""

    label = "stack"
    # A target that is down when the gate starts is the gate's to judge, not the stack's.
    require_up = False

    def __init__(self, settings: StackSettings, workdir: Path,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(workdir, progress, retention=settings.retention,
                         ready_timeout_s=settings.ready_timeout_s)
        self.settings = settings

    @property
    def rule_paths(self) -> list[Path]:
        """The user's rule files Prometheus loads (globs expanded)."""
        return rule_files(self.settings.rules)

    @property
    def user_alertmanager_config(self) -> Path | None:
        """The user's own alertmanager.yml, if ``stack.alertmanager_config`` names one."""
        path = self.settings.alertmanager_config
        return resolve_path(path) if path is not None else None

    def scrape_jobs(self) -> Mapping[str, int]:
        """Each scrape job and its number of distinct targets."""
        return {job.job: len(set(job.targets)) for job in self.settings.scrape}

    @property
    def webhook_token_path(self) -> Path:
        """The sink's webhook token (0600), which the stack's Alertmanager sends as Bearer."""
        return self.alertmanager_dir / "sink-webhook-token"

    def _webhook_token_file(self) -> Path:
        """A fresh token per start: only the stack's Alertmanager may post notifications to
        its sink (with `sink.listen` on a reachable address, anyone else could fake one)."""
        token = secrets.token_urlsafe(32)
        redact.register(token)
        write_atomic(self.webhook_token_path, token + "\n", mode=0o600)
        return self.webhook_token_path

    def _sink_args(self) -> list[str]:
        # A fixed address lets a service started before the stack send its OTLP there.
        host, port = self.settings.sink.host_port()
        grpc = self.settings.sink.grpc_host_port()
        return ["--host", host, "--port", str(port),
                "--webhook-token-file", str(self.webhook_token_path),
                *(["--grpc-host", grpc[0], "--grpc-port", str(grpc[1])] if grpc else [])]

    def _urls(self, urls: dict[str, str]) -> StackUrls:
        return StackUrls(prometheus=urls["prometheus"], alertmanager=urls["alertmanager"],
                         sink=urls["sink"])

    def _check_inputs(self) -> None:
        for spec in self.settings.rules:
            if not rule_files([spec]):
                raise ConfigError(f"no file matches {spec!r}", key="stack.rules")
        for path in self.rule_paths:
            if not path.is_file():
                raise ConfigError("rules file not found", path=str(path), key="stack.rules")
        am = self.user_alertmanager_config
        if am is not None and not am.is_file():
            raise ConfigError("Alertmanager config file not found", path=str(am),
                              key="stack.alertmanager_config")

    def _write_configs(self) -> str:
        prom_dir = self.prometheus_dir
        jobs = []
        for job in self.settings.scrape:
            config, job_secrets = scrape_config(job)
            jobs.append(config)
            for name, value in job_secrets.items():
                (prom_dir / name).parent.mkdir(mode=0o700, exist_ok=True)
                write_atomic(prom_dir / name, value, mode=0o600)
        (prom_dir / "prometheus.yml").write_text(prometheus_config_text(
            jobs=jobs, rule_files=[str(p.resolve()) for p in self.rule_paths],
            scrape_interval_s=self.settings.scrape_interval_s,
            evaluation_interval_s=self.settings.evaluation_interval_s), encoding="utf-8")
        am = self.user_alertmanager_config
        token_file = str(self._webhook_token_file())
        if am is None:
            text = sink_alertmanager_config(group_interval_s=self.settings.group_interval_s,
                                            token_file=token_file)
        else:
            text = with_sink_route(am.read_text(encoding="utf-8"), str(am),
                                   group_interval_s=self.settings.group_interval_s,
                                   webhook_url=SINK_WEBHOOK_PLACEHOLDER, token_file=token_file)
        # validated as it is (the placeholder is a valid URL); filled once the sink is up
        self.alertmanager_config_path.write_text(text, encoding="utf-8")
        return text

    async def _validate(self, binaries: dict[str, str]) -> None:
        promtool, amtool = binaries["promtool"], binaries["amtool"]
        user_am = self.user_alertmanager_config
        rules = [str(p) for p in self.rule_paths]
        # The user's own files are checked where they are, so errors name them.
        checks = {
            "rules": run_check([promtool, "check", "rules", *rules]) if rules else None,
            "prometheus": run_check([promtool, "check", "config", "prometheus.yml"],
                                    self.prometheus_dir),
            "user_am": run_check([amtool, "check-config", str(user_am)]) if user_am else None,
            "am": run_check([amtool, "check-config", "alertmanager.yml"],
                            self.alertmanager_dir),
        }
        names = [k for k, v in checks.items() if v is not None]
        results = dict(zip(names, await asyncio.gather(
            *(v for v in checks.values() if v is not None)), strict=True))
        code, output = results.get("rules", (0, ""))
        if code != 0:
            raise tool_error(output, "alert rules", rules, key="stack.rules")
        if "user_am" in results and results["user_am"][0] != 0:
            raise tool_error(results["user_am"][1], "Alertmanager config", [str(user_am)],
                             key="stack.alertmanager_config")
        code, output = results["prometheus"]
        if code != 0:  # our own file, made from stack.scrape: name the key, not the file
            raise ConfigError("the Prometheus config made from it was rejected: "
                              f"{first_error_line(output)}", key="stack.scrape")
        code, output = results["am"]
        if code != 0:
            raise ConfigError("Alertmanager config with the sink's route added was rejected: "
                              f"{first_error_line(output)}", path=str(user_am) if user_am
                              else None, key="stack.alertmanager_config")
