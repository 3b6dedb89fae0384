# Jupyter Server's own config for the gated example (docs/own-service.md). Jupyter reads it
# with `--ServerApp.config_file=jupyter_server_config.py`; everything else comes from the
# environment: JUPYTER_PASSWORD (the login password), JUPYTER_ROOT_DIR (the directory it
# serves and saves into), JUPYTER_PORT (0: any free port; Jupyter reads it itself).
import os

from jupyter_server.auth import passwd

c = get_config()  # noqa: F821 (Jupyter defines it while it reads this file)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.ServerApp.root_dir = os.environ.get("JUPYTER_ROOT_DIR", os.getcwd())
# Password login through the /login form; no token (a token would log in without it).
c.IdentityProvider.token = ""
c.PasswordIdentityProvider.hashed_password = passwd(os.environ["JUPYTER_PASSWORD"])
# Prometheus scrapes /metrics without logging in.
c.ServerApp.authenticate_prometheus = False
# The probes' clean-up step really deletes its file (the default moves it to a trash
# folder in the home directory, where probe files would pile up).
c.FileContentsManager.delete_to_trash = False

# Logs with trace ids. OpenTelemetry's logging instrumentation hangs its handler on the
# root logger, but Jupyter's logger ("ServerApp") does not propagate to the root logger
# (Jupyter sets propagate = False to avoid double lines), so the handler never sees a line.
# Give Jupyter's logger the handler itself. DEBUG ships Jupyter's per-request lines
# ("201 PUT /api/contents/...") too, each carrying the request's trace id.
c.ServerApp.logging_config = {
    "handlers": {
        "otel": {
            "class": "opentelemetry.instrumentation.logging.handler.LoggingHandler",
            "level": "DEBUG",
        },
    },
    "loggers": {"ServerApp": {"handlers": ["console", "otel"]}},
}
