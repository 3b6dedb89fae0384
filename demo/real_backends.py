"""`readygate demo --backends real`: the demo behind a real OpenTelemetry Collector.

web and storage send OTLP traces and logs to the Collector (built by
``scripts/install-peers.sh`` into ``peers/bin``), which fans them out to a real Jaeger
(traces, in-memory storage) and a real VictoriaLogs (logs, through its OTLP ingestion
``/insert/opentelemetry/v1/logs``). Prometheus and Alertmanager stay as in the embedded
demo (metrics and alerts, plus a scrape of the Collector's own metrics, job ``otelcol``);
Sentry events and notifications stay on the sink. The gate reads traces from Jaeger and
logs from VictoriaLogs (:meth:`RealBackendsStack.signal_backends`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.errors import EnvironmentProblem, StackError
from demo.stack import BINARY_READY_TIMEOUT_S, POLL_S, DemoStack, StackUrls
from gates.backends.config import SignalBackend
from stack.tools import file_sd_targets, free_port, write_atomic

PEERS_BIN = Path(__file__).resolve().parents[1] / "peers" / "bin"
"""Where scripts/install-peers.sh puts the peers (``READYGATE_PEERS_BIN`` overrides it)."""

# peer name (as scripts/install-peers.sh knows it) -> binary in PEERS_BIN
PEERS: Mapping[str, str] = {"otelcol": "otelcol", "jaeger": "jaeger",
                            "victorialogs": "victoria-logs",
                            "victoriametrics": "victoria-metrics"}

BATCH_TIMEOUT = "200ms"
"""The Collector's and Jaeger's batch delay: short, so a span is searchable within a second."""


def peers_bin() -> Path:
    """``READYGATE_PEERS_BIN`` if set, else the checkout's peers/bin."""
    return Path(os.environ.get("READYGATE_PEERS_BIN") or PEERS_BIN)


def missing_peers(bin_dir: Path | None = None) -> list[str]:
    """The peers the real backends need that are not built (in install-peers.sh's names)."""
    bin_dir = bin_dir or peers_bin()
    return [name for name, binary in PEERS.items()
            if not os.access(bin_dir / binary, os.X_OK)]


def require_peers(bin_dir: Path | None = None) -> dict[str, Path]:
    """Each peer's binary, or one-line EnvironmentProblem (exit 3) naming the build command."""
    bin_dir = bin_dir or peers_bin()
    missing = missing_peers(bin_dir)
    if missing:
        raise EnvironmentProblem(
            f"--backends real needs {', '.join(missing)} built in {bin_dir}: run "
            f"`scripts/install-peers.sh {' '.join(PEERS)}` (needs Go 1.26; "
            "`readygate demo` without --backends real needs none)")
    return {name: bin_dir / binary for name, binary in PEERS.items()}


@dataclass(frozen=True)
class RealUrls(StackUrls):
    """The demo stack's URLs plus the Collector and the backends behind it."""

    collector: str          # OTLP/HTTP base URL (the services append /v1/traces, /v1/logs)
    collector_metrics: str  # the Collector's own metrics (Prometheus exposition)
    jaeger: str             # Jaeger's query API and UI
    victorialogs: str
    victoriametrics: str    # the Prometheus query API the gate's metric checks read


def collector_config(*, otlp_port: int, metrics_port: int, jaeger_otlp: str,
                     victorialogs: str) -> dict[str, Any]:
    """The Collector: OTLP/HTTP in; traces to Jaeger, logs to VictoriaLogs; own metrics out.

    No retries and no queue: a span the destination refuses is counted at once in
    ``otelcol_exporter_send_failed_spans`` and refused to the sender, never parked.
    """
    def exporter(**endpoint: str) -> dict[str, Any]:
        return {**endpoint, "retry_on_failure": {"enabled": False},
                "sending_queue": {"enabled": False}}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_port}"}}}},
        "processors": {"batch": {"timeout": BATCH_TIMEOUT}},
        "exporters": {
            "otlp_http/jaeger": exporter(traces_endpoint=f"{jaeger_otlp}/v1/traces"),
            "otlp_http/victorialogs": exporter(
                logs_endpoint=f"{victorialogs}/insert/opentelemetry/v1/logs")},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"],
                           "exporters": ["otlp_http/jaeger"]},
                "logs": {"receivers": ["otlp"], "processors": ["batch"],
                         "exporters": ["otlp_http/victorialogs"]}},
            "telemetry": {
                "logs": {"level": "warn"},
                "metrics": {"level": "normal", "readers": [{"pull": {"exporter": {
                    "prometheus": {"host": "127.0.0.1", "port": metrics_port}}}}]}}},
    }


def jaeger_config(*, otlp_port: int, query_port: int, grpc_port: int) -> dict[str, Any]:
    """Jaeger v2 all-in-one with in-memory storage on loopback ports, no metrics port."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}},
        "extensions": {
            "jaeger_query": {"storage": {"traces": "mem"},
                             "http": {"endpoint": f"127.0.0.1:{query_port}"},
                             "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}},
            "jaeger_storage": {"backends": {"mem": {"memory": {"max_traces": 100000}}}}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_port}"}}}},
        "processors": {"batch": {"timeout": BATCH_TIMEOUT}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "mem"}},
    }


class RealBackendsStack(DemoStack):
    """The demo stack with the Collector, Jaeger and VictoriaLogs in place of the sink's
    traces and logs."""

    components = (*DemoStack.components, "jaeger", "victorialogs", "victoriametrics",
                  "otelcol")
    description = (f"{DemoStack.description}, OpenTelemetry Collector -> Jaeger (traces) and "
                   "VictoriaLogs (logs), VictoriaMetrics scraping what Prometheus scrapes "
                   "(metric checks)")

    def __init__(self, *args: Any, bin_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bin_dir = bin_dir or peers_bin()
        self._peer_urls: dict[str, str] = {}

    def scrape_jobs(self) -> Mapping[str, int]:
        """web, storage and the Collector's own metrics (job ``otelcol``)."""
        return {**super().scrape_jobs(), "otelcol": 1}

    def signal_backends(self) -> dict[str, SignalBackend]:
        """Traces from Jaeger, logs from VictoriaLogs, metric checks from VictoriaMetrics
        (alerts: Prometheus and Alertmanager; errors, notifications: the sink)."""
        urls = self._peer_urls
        return {"traces": SignalBackend(kind="jaeger", url=urls["jaeger"]),
                "logs": SignalBackend(kind="victorialogs", url=urls["victorialogs"]),
                "metrics": SignalBackend(kind="victoriametrics", url=urls["victoriametrics"])}

    def _telemetry_args(self, sink_url: str) -> list[str]:
        return [*super()._telemetry_args(sink_url), "--otlp-url", self._peer_urls["collector"]]

    def _check_inputs(self) -> None:
        require_peers(self.bin_dir)
        super()._check_inputs()

    def _urls(self, urls: dict[str, str]) -> RealUrls:
        base = super()._urls(urls)
        return RealUrls(**base.__dict__, collector=self._peer_urls["collector"],
                        collector_metrics=self._peer_urls["collector_metrics"],
                        jaeger=self._peer_urls["jaeger"],
                        victorialogs=self._peer_urls["victorialogs"],
                        victoriametrics=self._peer_urls["victoriametrics"])

    async def _start_services(self, sink_url: asyncio.Future[str]) -> dict[str, str]:
        # the backends first, then the Collector in front of them, then the services
        await asyncio.gather(self._start_jaeger(), self._start_victorialogs(),
                             self._start_victoriametrics())
        await self._start_collector()
        return await super()._start_services(sink_url)

    def _before_discovery(self, urls: dict[str, str]) -> bool:
        write_atomic(self.prometheus_dir / "targets" / "otelcol.json",
                     file_sd_targets(self._peer_urls["collector_metrics"],
                                     {"service": "otelcol"}))
        return super()._before_discovery(urls)

    async def _start_jaeger(self) -> None:
        config = self.workdir / "jaeger" / "jaeger.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        otlp: list[int] = []

        def argv(query_port: int) -> list[str]:
            otlp[:] = [free_port()]
            config.write_text(yaml.safe_dump(jaeger_config(
                otlp_port=otlp[0], query_port=query_port, grpc_port=free_port())),
                encoding="utf-8")
            return [str(self.bin_dir / PEERS["jaeger"]), "--config", f"file:{config}"]
        self._peer_urls["jaeger"] = await self._start_binary("jaeger", argv, "/api/services")
        self._peer_urls["jaeger_otlp"] = f"http://127.0.0.1:{otlp[0]}"
        await self._wait_listening("jaeger", self._peer_urls["jaeger_otlp"] + "/v1/traces")

    async def _start_victorialogs(self) -> None:
        data = self.workdir / "victorialogs" / "data"
        data.mkdir(parents=True, exist_ok=True)

        def argv(port: int) -> list[str]:
            return [str(self.bin_dir / PEERS["victorialogs"]),
                    f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={data}",
                    "-loggerLevel=WARN"]
        self._peer_urls["victorialogs"] = await self._start_binary("victorialogs", argv,
                                                                   "/health")

    async def _start_victoriametrics(self) -> None:
        # The same file_sd target files Prometheus reads (relative to the config's folder),
        # every scrape job Prometheus has, checked every second (VictoriaMetrics' default
        # is a minute).
        config = self.prometheus_dir / "victoriametrics.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": job,
                                "file_sd_configs": [{"files": [f"targets/{job}.json"]}]}
                               for job in self.scrape_jobs()]}), encoding="utf-8")
        data = self.workdir / "victoriametrics" / "data"
        data.mkdir(parents=True, exist_ok=True)

        def argv(port: int) -> list[str]:
            return [str(self.bin_dir / PEERS["victoriametrics"]),
                    f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={data}",
                    f"-promscrape.config={config}", "-promscrape.fileSDCheckInterval=1s",
                    # it hides the newest 30 s of samples by default; checks poll fresh ones
                    "-search.latencyOffset=0s", "-loggerLevel=WARN"]
        self._peer_urls["victoriametrics"] = await self._start_binary("victoriametrics", argv,
                                                                      "/health")

    async def _start_collector(self) -> None:
        config = self.workdir / "otelcol" / "otelcol.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        otlp: list[int] = []

        def argv(metrics_port: int) -> list[str]:
            otlp[:] = [free_port()]
            config.write_text(yaml.safe_dump(collector_config(
                otlp_port=otlp[0], metrics_port=metrics_port,
                jaeger_otlp=self._peer_urls["jaeger_otlp"],
                victorialogs=self._peer_urls["victorialogs"])), encoding="utf-8")
            return [str(self.bin_dir / PEERS["otelcol"]), "--config", f"file:{config}"]
        metrics = await self._start_binary("otelcol", argv, "/metrics")
        self._peer_urls["collector_metrics"] = metrics + "/metrics"
        self._peer_urls["collector"] = f"http://127.0.0.1:{otlp[0]}"
        # its metrics endpoint starts before the pipelines: wait for the OTLP receiver too
        await self._wait_listening("otelcol", self._peer_urls["collector"] + "/v1/traces")

    async def _wait_listening(self, name: str, url: str) -> None:
        """Until ``url`` answers at all (an OTLP receiver answers GET with 405)."""
        deadline = time.monotonic() + BINARY_READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                self.ensure_alive()
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(url)
                    return
                await asyncio.sleep(POLL_S)
        raise StackError(f"{name} does not listen at {url} within "
                         f"{BINARY_READY_TIMEOUT_S:.0f}s{self._tail(name)}")
