"""The config files a stack runs with: prometheus.yml, and alertmanager.yml with the sink wired in.

Pure functions from settings to YAML text; the stack writes them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from core.config import resolve_path
from core.errors import ConfigError
from stack.config import ScrapeJob, parse_target
from stack.tools import duration

SINK_URL_PLACEHOLDER = "http://sink.readygate.invalid"
"""Base URL in Alertmanager config texts that is replaced by the sink's URL once it is up."""

SINK_WEBHOOK_PATH = "/alertmanager/webhook"
RECEIVER_NAME = "readygate-sink"
"""The receiver the stack adds; the name is reserved."""

SINK_WEBHOOK_PLACEHOLDER = SINK_URL_PLACEHOLDER + SINK_WEBHOOK_PATH

# Scrapes longer than this are abandoned even with long intervals: a gate wants fresh data.
_MAX_SCRAPE_TIMEOUT_S = 10.0


def prometheus_config_text(*, jobs: list[dict[str, Any]], rule_files: list[str],
                           scrape_interval_s: float = 1.0, evaluation_interval_s: float = 1.0,
                           alertmanager_sd_file: str = "targets/alertmanager.json") -> str:
    """prometheus.yml: the given scrape jobs, rules, and the Alertmanager found via file_sd.

    Relative paths are relative to the config file, as Prometheus resolves them.
    """
    config = {
        "global": {
            "scrape_interval": duration(scrape_interval_s),
            "scrape_timeout": duration(min(scrape_interval_s, _MAX_SCRAPE_TIMEOUT_S)),
            "evaluation_interval": duration(evaluation_interval_s),
        },
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [{
            "api_version": "v2", "timeout": "2s",
            "file_sd_configs": [{"files": [alertmanager_sd_file]}],
        }]},
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def scrape_config(job: ScrapeJob, secrets_dir: str = "secrets") -> tuple[dict[str, Any],
                                                                          dict[str, str]]:
    """One user scrape job as a Prometheus scrape config, and the secret files it reads.

    Secrets go to files (``password_file``, ``credentials_file``) named by the returned
    mapping (path relative to prometheus.yml -> content), never into prometheus.yml.
    URL targets become target groups whose ``__scheme__``/``__metrics_path__``/``__param_*``
    labels carry what the URL says.
    """
    config: dict[str, Any] = {"job_name": job.job, "metrics_path": job.metrics_path,
                              "scheme": job.scheme}
    if job.scrape_interval_s is not None:
        config["scrape_interval"] = duration(job.scrape_interval_s)
        config["scrape_timeout"] = duration(min(job.scrape_interval_s, _MAX_SCRAPE_TIMEOUT_S))
    secrets: dict[str, str] = {}
    if job.basic_auth is not None:
        name = f"{secrets_dir}/{job.job}.password"
        secrets[name] = job.basic_auth.password.get_secret_value()
        config["basic_auth"] = {"username": job.basic_auth.username, "password_file": name}
    if job.bearer_token is not None:
        name = f"{secrets_dir}/{job.job}.token"
        secrets[name] = job.bearer_token.get_secret_value()
        config["authorization"] = {"type": "Bearer", "credentials_file": name}
    if job.tls is not None:
        tls: dict[str, Any] = {"insecure_skip_verify": job.tls.insecure_skip_verify}
        for key in ("ca_file", "cert_file", "key_file"):
            name = getattr(job.tls, key)
            if name is not None:
                tls[key] = str(resolve_path(name).resolve())
        if job.tls.server_name is not None:
            tls["server_name"] = job.tls.server_name
        config["tls_config"] = tls
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for text in job.targets:
        target = parse_target(text)
        labels = dict(job.labels)
        if target.scheme is not None:
            labels["__scheme__"] = target.scheme
        if target.metrics_path is not None:
            labels["__metrics_path__"] = target.metrics_path
        labels.update({f"__param_{k}": v for k, v in target.params.items()})
        groups.setdefault(tuple(sorted(labels.items())), []).append(target.address)
    config["static_configs"] = [{"targets": addresses, "labels": dict(labels)} if labels
                                else {"targets": addresses} for labels, addresses in groups.items()]
    return config, secrets


def sink_webhook(url: str, token_file: str | None = None) -> dict[str, Any]:
    """Alertmanager's webhook_config to the sink; with the sink's token when it has one."""
    config: dict[str, Any] = {"url": url, "send_resolved": True}
    if token_file is not None:
        config["http_config"] = {"authorization": {"type": "Bearer",
                                                   "credentials_file": token_file}}
    return config


def sink_alertmanager_config(*, group_interval_s: float = 1.0,
                             webhook_url: str = SINK_WEBHOOK_PLACEHOLDER,
                             group_by: list[str] | None = None,
                             token_file: str | None = None) -> str:
    """alertmanager.yml sending every alert to the sink's webhook only.

    ``group_by`` defaults to ``['...']``: every alert is its own group, so each one is
    notified at once and a notification check sees exactly its own alert.
    """
    config = {
        "route": {
            "receiver": RECEIVER_NAME,
            "group_by": group_by if group_by is not None else ["..."],
            # group_wait 0s: the first notification of a group leaves at once.
            "group_wait": "0s",
            "group_interval": duration(group_interval_s),
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": RECEIVER_NAME,
            "webhook_configs": [sink_webhook(webhook_url, token_file)],
        }],
    }
    return yaml.safe_dump(config, sort_keys=False)


# Settings a child route inherits from its parent: the new root repeats the user's, so the
# user's tree (now one level down) behaves exactly as it did at the top.
_INHERITED = ("group_by", "group_wait", "group_interval", "repeat_interval")


def with_sink_route(user_text: str, user_path: str, *, group_interval_s: float = 1.0,
                    webhook_url: str = SINK_WEBHOOK_PLACEHOLDER,
                    token_file: str | None = None) -> str:
    """The user's alertmanager.yml with every alert also delivered to the sink.

    A new root route has two children: first the sink's route (matches everything,
    ``continue: true``), then the user's whole original root route (matches everything,
    keeping its receiver, settings and sub-routes). A sink route added beside the user's
    sub-routes instead would swallow the alerts that fall through to the user's default
    receiver. Relative file paths (``templates``, ``*_file``) are made absolute, because
    the merged file lives elsewhere. ``user_text`` has passed ``amtool check-config``.
    """
    data = yaml.safe_load(user_text)
    if not isinstance(data, dict) or not isinstance(data.get("route"), dict):
        raise ConfigError("Alertmanager config has no route", path=user_path,
                          key="stack.alertmanager_config")
    receivers = data.get("receivers") or []
    if any(isinstance(r, dict) and r.get("name") == RECEIVER_NAME for r in receivers):
        raise ConfigError(f"receiver name {RECEIVER_NAME!r} is reserved for readygate's sink",
                          path=user_path, key="stack.alertmanager_config")
    base = resolve_path(user_path).resolve().parent
    _absolute_files(data, base)
    if isinstance(data.get("templates"), list):
        data["templates"] = [t if os.path.isabs(t) else str(base / t)
                             for t in data["templates"] if isinstance(t, str)]
    user_root = data["route"]
    sink_route = {"receiver": RECEIVER_NAME, "group_by": ["..."], "group_wait": "0s",
                  "group_interval": duration(group_interval_s), "repeat_interval": "1h",
                  "continue": True}
    root = {"receiver": user_root.get("receiver")}
    root.update({k: copy.deepcopy(user_root[k]) for k in _INHERITED if k in user_root})
    root["routes"] = [sink_route, user_root]
    data["route"] = root
    data["receivers"] = [*receivers, {
        "name": RECEIVER_NAME,
        "webhook_configs": [sink_webhook(webhook_url, token_file)]}]
    return yaml.safe_dump(data, sort_keys=False)


def _absolute_files(node: Any, base: Path) -> None:
    """Make every relative ``*_file`` value (password_file, ca_file, ...) absolute, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.endswith("_file") and isinstance(value, str) \
                    and value and not os.path.isabs(value):
                node[key] = str(base / value)
            else:
                _absolute_files(value, base)
    elif isinstance(node, list):
        for item in node:
            _absolute_files(item, base)


def fill_sink_url(text: str, sink_url: str) -> str:
    """Replace the sink placeholder base URL in a config text with the running sink's."""
    return text.replace(SINK_URL_PLACEHOLDER, sink_url.rstrip("/"))
