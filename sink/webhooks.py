"""Alert webhooks: one parser per vendor, Alertmanager's among them.

``POST /webhooks/{vendor}`` (sink/server.py) turns a vendor's webhook body into rows of the
notifications table (the shape :func:`sink.formats.notification_rows` writes for
Alertmanager, which is also served at ``/alertmanager/webhook``), so ``kind: sink``
notification checks read every vendor alike. A vendor is one
module (``sink/hooks_<vendor>.py``) with a parser ``(payload, received_at) -> rows`` built
with :func:`sink.formats.notification_row`, imported here with one entry in :data:`PARSERS`.
A parser raises :class:`sink.formats.BadPayload` for a body it cannot read (answered 400).
"""

from __future__ import annotations

from collections.abc import Callable

from sink.formats import Json, notification_rows
from sink.hooks_datadog import datadog_rows
from sink.hooks_gcloud import incident_rows
from sink.hooks_grafana import grafana_rows
from sink.hooks_sentry import sentry_rows

Parser = Callable[[Json, float], list[Json]]

# vendor name in the URL -> parser (one import and one entry per vendor)
PARSERS: dict[str, Parser] = {
    "alertmanager": notification_rows,  # also at /alertmanager/webhook
    "gcloud": incident_rows,
    "datadog": datadog_rows,
    "sentry": sentry_rows,
    "grafana": grafana_rows,
}
