"""Google Cloud backends (``kind: gcloud``) through Google's own client libraries.

One module per signal: Cloud Logging (:mod:`.logging`), Cloud Trace (:mod:`.trace`),
Cloud Monitoring's PromQL API plus alert policies and time series (:mod:`.monitoring`),
Error Reporting (:mod:`.errors`), and alert state from incident notifications
(:mod:`.alerts`). Credentials (:mod:`.auth`): ``token``, ``credentials_file``, or
Application Default Credentials. :data:`FACTORIES` is what gates.backends.registry
registers under the kind ``gcloud``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from core.errors import ConfigError
from gates.backends.config import SignalBackend
from gates.backends.gcloud.alerts import GcloudAlerts
from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.errors import GcloudErrors
from gates.backends.gcloud.logging import GcloudLogs
from gates.backends.gcloud.monitoring import GcloudMonitoring, GcloudPrometheus
from gates.backends.gcloud.trace import GcloudTraces
from gates.backends.sink import SinkClient

KIND = "gcloud"


def auth_for(spec: SignalBackend) -> GcloudAuth:
    """The credentials a backend's config names (token, key file, or ADC)."""
    return GcloudAuth(project_id=spec.project_id, credentials_file=spec.credentials_file,
                      token=spec.token.get_secret_value() if spec.token else None,
                      timeout_s=spec.timeout_s)


def _alerts(spec: SignalBackend, _: httpx.AsyncClient, sink: SinkClient | None) -> Any:
    if sink is None:
        raise ConfigError("alerts kind 'gcloud' reads incidents from the notifications Cloud "
                          "Monitoring's webhook channel sends to <sink>/webhooks/gcloud: set "
                          "backends.sink.url", key="backends.alerts")
    return GcloudAlerts(sink, GcloudMonitoring(auth_for(spec), url=spec.url,
                                               timeout_s=spec.timeout_s))


FACTORIES: dict[str, Callable[[SignalBackend, httpx.AsyncClient, SinkClient | None], Any]] = {
    "logs": lambda s, c, _: GcloudLogs(auth_for(s), url=s.url, log_filter=s.query,
                                       timeout_s=s.timeout_s),
    "traces": lambda s, c, _: GcloudTraces(auth_for(s), url=s.url, timeout_s=s.timeout_s),
    "metrics": lambda s, c, _: GcloudPrometheus(auth_for(s), c, url=s.url,
                                                timeout_s=s.timeout_s),
    "errors": lambda s, c, _: GcloudErrors(auth_for(s), url=s.url, timeout_s=s.timeout_s),
    "alerts": _alerts,
}
"""Signal -> the factory of its gcloud backend."""

__all__ = ["FACTORIES", "KIND", "GcloudAlerts", "GcloudAuth", "GcloudErrors", "GcloudLogs",
           "GcloudMonitoring", "GcloudPrometheus", "GcloudTraces", "auth_for"]
