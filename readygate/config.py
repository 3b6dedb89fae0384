"""readygate.yaml as small typed values that check themselves.

Loading keeps every key's line number, so an error reads
``readygate.yaml:14 gates.release.timout: unknown key (did you mean 'timeout'?)``.
``${VAR}`` and ``${VAR:-default}`` are interpolated from the environment; values of
secret fields (passwords, tokens, webhook URLs) are registered with
:mod:`readygate.redact` and never shown.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from readygate import redact
from readygate.errors import ConfigError

Severity = Literal["critical", "warning"]
PhaseName = Literal["baseline", "fault", "recovery"]
Anchor = Literal["phase_start", "fault_start", "fault_end", "probe_sent"]


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- target -----------------------------------------------------------------------------

class Credentials(Model):
    """The journey user; the password comes from the environment and is always redacted."""

    username: str = "demo"
    password: SecretStr | None = None


class Target(Model):
    """The system under test."""

    name: str = "demo"
    environment: str = Field(
        "staging", description="'production' is refused unless --allow-production")
    services: dict[str, str] = Field(
        default_factory=dict, description="base URL per service, e.g. {web: https://staging.example.com}")
    fault_proxies: dict[str, str] = Field(
        default_factory=dict,
        description="readygate fault proxy control URL per service; chaos touches only these")
    credentials: Credentials = Field(default_factory=Credentials)

    @model_validator(mode="after")
    def _urls(self) -> Target:
        for kind, mapping in (("services", self.services), ("fault_proxies", self.fault_proxies)):
            for name, url in mapping.items():
                if not re.match(r"^https?://", url):
                    raise ValueError(f"{kind}.{name}: {url!r} is not an http(s) URL")
        return self


# --- backends ---------------------------------------------------------------------------

class Backend(Model):
    """Where readygate looks for evidence."""

    url: str
    token: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)


class Backends(Model):
    """Evidence backends by signal."""

    prometheus: Backend | None = None
    alertmanager: Backend | None = None
    sink: Backend | None = Field(
        None, description="readygate's embedded sink (traces, logs, errors, notifications)")


# --- probes -----------------------------------------------------------------------------

JourneyName = Literal["health", "login", "upload"]
_ALL_JOURNEYS: tuple[JourneyName, ...] = ("health", "login", "upload")


class Probes(Model):
    """The journeys that run throughout a scenario."""

    journeys: list[JourneyName] = Field(default_factory=lambda: list(_ALL_JOURNEYS))
    interval_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=300)
    service: str = Field("web", description="the target service the journeys call")
    upload_size_bytes: int = Field(1024, ge=1, le=50_000_000)


# --- checks -----------------------------------------------------------------------------

class CheckBase(Model):
    """What every check has: a name, a severity, the phase it judges and a deadline."""

    name: str | None = None
    severity: Severity = "critical"
    phase: PhaseName = "fault"
    deadline_s: float = Field(30.0, gt=0, le=3600)
    anchor: Anchor = Field("phase_start", description="the event the deadline counts from")

    def display_name(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        raise NotImplementedError


class AlertCheck(CheckBase):
    """The alert fires (in Prometheus) within the deadline after the anchor."""

    signal: Literal["alert"]
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    anchor: Anchor = "fault_start"

    def default_name(self) -> str:
        return f"alert {self.alertname} fires"


class NotificationCheck(CheckBase):
    """The alert's notification reaches the receiver within the deadline."""

    signal: Literal["notification"]
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    anchor: Anchor = "fault_start"

    def default_name(self) -> str:
        return f"notification {self.alertname} {self.status} delivered"


class NoAlertCheck(CheckBase):
    """No alert fires during a healthy window (the false-positive check)."""

    signal: Literal["no_alert"]
    phase: PhaseName = "baseline"
    window_s: float = Field(5.0, gt=0, le=3600, description="how long to watch")
    alertnames: list[str] = Field(default_factory=list, description="empty: any alert")

    def default_name(self) -> str:
        return "no alert during healthy baseline"


class TraceCheck(CheckBase):
    """The probe's trace reaches the trace backend and spans the expected services."""

    signal: Literal["trace"]
    journey: JourneyName = "upload"
    services: list[str] = Field(default_factory=lambda: ["web"])
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} trace spans {'+'.join(self.services)}"


class LogsCheck(CheckBase):
    """Log lines carrying the probe's trace id reach the log backend."""

    signal: Literal["logs"]
    journey: JourneyName = "login"
    services: list[str] = Field(default_factory=list, description="services that must have logged")
    min_lines: int = Field(1, ge=1)
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} logs carry the trace id"


class MetricCheck(CheckBase):
    """A PromQL condition holds (returns a non-empty result) within the deadline."""

    signal: Literal["metric"]
    query: str = Field(min_length=1)

    def default_name(self) -> str:
        return f"metric condition {self.query}"


class ProbeCheck(CheckBase):
    """A journey's probes succeed (again) within the deadline: N consecutive passes."""

    signal: Literal["probe"]
    journey: JourneyName = "health"
    consecutive: int = Field(2, ge=1, le=100)

    def default_name(self) -> str:
        return f"{self.journey} probes succeed"


Check = Annotated[
    Union[AlertCheck, NotificationCheck, NoAlertCheck, TraceCheck, LogsCheck, MetricCheck,  # noqa: UP007
          ProbeCheck],
    Field(discriminator="signal"),
]

# --- scenario and gates -----------------------------------------------------------------


class Phase(Model):
    """A phase lasts at least min_duration_s and until its checks settle, at most max_duration_s."""

    min_duration_s: float = Field(0.0, ge=0, le=86400)
    max_duration_s: float = Field(60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _order(self) -> Phase:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class Fault(Model):
    """A fault injected through the fault proxy in front of ``service``; it expires by its TTL."""

    kind: Literal["http_error", "latency", "abort"] = "http_error"
    service: str = Field(description="a service named in target.fault_proxies")
    status: int = Field(500, ge=400, le=599)
    rate: float = Field(1.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=600_000)
    jitter_ms: int = Field(0, ge=0, le=600_000)
    path_prefix: str | None = None
    methods: list[str] | None = None
    ttl_s: float = Field(120.0, gt=0, le=3600, description="the fault removes itself after this")


class Scenario(Model):
    """Baseline (healthy) → fault → recovery, probes running throughout."""

    baseline: Phase = Field(default_factory=lambda: Phase(min_duration_s=5, max_duration_s=30))
    fault: Fault | None = None
    fault_phase: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))
    recovery: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))


class Gate(Model):
    """A named set of a scenario and checks with severities."""

    description: str = ""
    scenario: Scenario = Field(default_factory=Scenario)
    checks: list[Check] = Field(default_factory=list)


class DemoSettings(Model):
    """How `readygate demo` runs the bundled demo system."""

    gate: str = "release"
    sabotage: list[str] = Field(default_factory=list)
    rules_file: str | None = Field(
        None, description="alert rules to load instead of the demo's own")


class Config(Model):
    """The whole readygate.yaml."""

    version: Literal[1] = 1
    target: Target = Field(default_factory=Target)
    backends: Backends = Field(default_factory=Backends)
    probes: Probes = Field(default_factory=Probes)
    gates: dict[str, Gate] = Field(default_factory=dict)
    demo: DemoSettings = Field(default_factory=DemoSettings)

    def secrets(self) -> list[str]:
        """Every secret value in this config (for redaction and leak scans)."""
        out: list[str] = []
        if self.target.credentials.password is not None:
            out.append(self.target.credentials.password.get_secret_value())
        for backend in (self.backends.prometheus, self.backends.alertmanager, self.backends.sink):
            if backend is not None and backend.token is not None:
                out.append(backend.token.get_secret_value())
        return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of readygate.yaml."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "readygate.yaml"
    return schema


# --- loading ----------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None


def _to_python(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    """Build plain Python values from the node tree, remembering each location's line."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _Loader(key_node.value).construct_object(key_node) \
                if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            if not isinstance(key, str):
                raise ConfigError("keys must be strings", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted(loc) or None)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted((*loc, key)))
            out[key] = _to_python(value_node, (*loc, key), lines, path)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), lines, path) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    value = _Loader("").construct_object(node)
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, loc, lines[loc], path)
    return value


def _interpolate(value: str, loc: Loc, line: int, path: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        env = os.environ.get(name)
        if env is not None and env != "":
            return env
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (and no default given)",
                          path=path, line=line, key=_dotted(loc))

    return _ENV_RE.sub(sub, value)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Optional/Annotated so the model class is visible."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _resolve_union(tp: Any, data: Any) -> Any:
    """Pick the check model whose ``signal`` literal matches the data (for suggestions)."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (Union, types.UnionType) and isinstance(data, dict):
        for member in typing.get_args(tp):
            if isinstance(member, type) and issubclass(member, BaseModel):
                field = member.model_fields.get("signal")
                if field is not None and data.get("signal") in typing.get_args(field.annotation):
                    return member
    return tp


def _signal_names() -> set[str]:
    """Every check's ``signal`` literal (pydantic puts it in error locations as a tag)."""
    names: set[str] = set()
    for member in typing.get_args(typing.get_args(Check)[0]):
        names.update(typing.get_args(member.model_fields["signal"].annotation))
    return names


def _known_keys(loc: Loc, data: Any) -> list[str]:
    """Keys allowed at ``loc`` (the parent mapping of an unknown key)."""
    current: Any = Config
    node = data
    for part in loc:
        current = _resolve_union(_unwrap(current), node)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(part, int) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return []
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    current = _resolve_union(_unwrap(current), node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop pydantic's union-tag elements (e.g. 'alert') that are not keys in the data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict | list):
            # a union tag or model name pydantic inserts: not part of the user's path
            if isinstance(part, str) and (part in _signal_names() or "[" in part):
                continue
            out.append(part)
            node = None
        else:
            out.append(part)
            node = None
    return tuple(out)


def _format_validation(exc: ValidationError, data: Any, lines: Mapping[Loc, int],
                       path: str) -> ConfigError:
    errors = exc.errors(include_url=False)
    # a misspelt key also makes the real key "missing": the typo is the better explanation
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _clean_loc(tuple(err["loc"]), data)
    kind = err["type"]
    key = _dotted(loc) or None
    line = _line_for(loc, lines)
    if kind == "extra_forbidden":
        bad = str(loc[-1])
        known = _known_keys(loc[:-1], data)
        close = difflib.get_close_matches(bad, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else (
            f" (allowed: {', '.join(known)})" if known else "")
        return ConfigError(f"unknown key '{bad}'{hint}", path=path, line=line, key=key)
    if kind == "missing":
        return ConfigError("required key is missing", path=path, line=line, key=key)
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tag = ctx.get("tag", "?")
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        options = [t.strip() for t in expected.split(",") if t.strip()]
        close = difflib.get_close_matches(str(tag), options, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {expected})"
        sig_loc = (*loc, "signal")
        return ConfigError(f"unknown signal {tag!r}{hint}", path=path,
                           line=_line_for(sig_loc, lines), key=_dotted(sig_loc))
    if kind == "union_tag_not_found":
        return ConfigError("a check needs a 'signal' key (one of: "
                           f"{', '.join(sorted(_signal_names()))})", path=path, line=line,
                           key=key)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    given = err.get("input")
    if kind not in {"model_type", "dict_type"} and isinstance(given, str | int | float | bool):
        secretish = key is not None and any(s in key for s in ("password", "token", "secret"))
        if not secretish:
            message += f" (got {given!r})"
    return ConfigError(message, path=path, line=line, key=key)


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` with file:line and key."""
    root = _compose(text, path)
    lines: dict[Loc, int] = {}
    data = {} if root is None else _to_python(root, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys", path=path, line=1)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(exc, data, lines, path) from None
    _check_references(config, lines, path)
    redact.register(*config.secrets())
    return config


def _check_references(config: Config, lines: Mapping[Loc, int], path: str) -> None:
    """Cross-field rules: chaos touches only services named in target.fault_proxies."""
    for gname, gate in config.gates.items():
        fault = gate.scenario.fault
        if fault is None:
            continue
        if config.target.fault_proxies and fault.service not in config.target.fault_proxies:
            loc: Loc = ("gates", gname, "scenario", "fault", "service")
            known = ", ".join(sorted(config.target.fault_proxies))
            raise ConfigError(f"{fault.service!r} is not in target.fault_proxies ({known})",
                              path=path, line=_line_for(loc, lines), key=_dotted(loc))


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(path)) from None
    return parse_config(text, str(path))


def default_config_path() -> Path:
    """``./readygate.yaml`` if present, else the checkout's bundled default."""
    local = Path("readygate.yaml")
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "readygate.yaml"
