#!/bin/sh
# Start Jupyter Server under OpenTelemetry auto-instrumentation, sending its traces, logs
# and metrics to readygate's sink (docs/own-service.md). Every step execs the next, so this
# script's PID is Jupyter's: `./start-jupyter.sh & echo $! > jupyter.pid` makes the pidfile
# a process fault needs. Extra arguments go to jupyter-server (e.g. --allow-root);
# JUPYTER_SERVER_CONFIG names another Jupyter config (default: the one beside this script).
set -eu
: "${JUPYTER_VENV:?set JUPYTER_VENV to the virtualenv Jupyter is installed in}"
: "${OTEL_EXPORTER_OTLP_ENDPOINT:?set OTEL_EXPORTER_OTLP_ENDPOINT to the sink, e.g. http://127.0.0.1:4318}"
: "${JUPYTER_PASSWORD:?set JUPYTER_PASSWORD}"

export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-jupyter}"   # the service name checks select on
# The distro's default exporter is OTLP over gRPC; the sink readygate's stack starts speaks
# OTLP over HTTP (only opentelemetry-exporter-otlp-proto-http is installed).
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_TRACES_EXPORTER=otlp OTEL_LOGS_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp
# Send batches every 0.5 s instead of every 5 s (spans) and 1 s (logs): a gate waits for them.
export OTEL_BSP_SCHEDULE_DELAY=500 OTEL_BLRP_SCHEDULE_DELAY=500

here=$(cd "$(dirname "$0")" && pwd)
config="${JUPYTER_SERVER_CONFIG:-$here/jupyter_server_config.py}"
# --ServerApp.config_file, not --config: opentelemetry-instrument's own argument parser
# takes any prefix of its options (--config_file, --configurator) even after the command.
exec "$JUPYTER_VENV/bin/opentelemetry-instrument" "$JUPYTER_VENV/bin/jupyter-server" \
    --ServerApp.config_file="$config" "$@"
