"""``readygate sink``: the telemetry receiver (OTLP, Sentry envelopes, Alertmanager webhooks).

Used by the demo, by ``readygate stack`` and by users who point their services at it.
"""
