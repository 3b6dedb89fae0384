"""Config: typed models, line-numbered one-line errors, interpolation, redaction, schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from core import redact
from core.errors import ConfigError
from readygate.config import json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "readygate.yaml").read_text()


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "readygate.yaml")
    message = str(info.value)
    assert "\n" not in message, "config errors are one line"
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_config_loads_with_the_release_gate() -> None:
    config = load_config(ROOT / "readygate.yaml")
    assert "release" in config.gates
    signals = {c.signal for c in config.gates["release"].checks}
    assert {"alert", "notification", "no_alert", "trace", "logs", "metric"} <= signals


def test_misspelt_key_names_line_key_and_suggestion() -> None:
    text = DEFAULT.replace("timeout_s: 5", "timout_s: 5")
    err = error_of(text)
    assert err.line == line_of(text, "timout_s")
    assert str(err) == (f"readygate.yaml:{err.line} probes.timout_s: unknown key 'timout_s' "
                        "(did you mean 'timeout_s'?)")


def test_misspelt_key_inside_a_check_suggests_that_checks_fields() -> None:
    text = DEFAULT.replace("alertname: HighErrorRate\n        labels", "alertnme: HighErrorRate\n"
                           "        labels", 1)
    err = error_of(text)
    assert "did you mean 'alertname'" in str(err)
    assert err.line == line_of(text, "alertnme")


def test_unknown_signal_is_named_with_a_suggestion() -> None:
    text = DEFAULT.replace("signal: metric", "signal: metrics")
    err = error_of(text)
    assert "unknown signal 'metrics' (did you mean 'metric'?)" in str(err)
    assert err.line == line_of(text, "signal: metrics")


def test_wrong_type_shows_the_value_and_line() -> None:
    text = DEFAULT.replace("interval_s: 0.5", "interval_s: often")
    err = error_of(text)
    assert err.key == "probes.interval_s" and "'often'" in str(err)
    assert err.line == line_of(text, "interval_s: often")


def test_duplicate_keys_are_refused() -> None:
    text = DEFAULT.replace("  timeout_s: 5\n", "  timeout_s: 5\n  timeout_s: 9\n")
    err = error_of(text)
    assert "duplicate key 'timeout_s'" in str(err)


def test_invalid_yaml_names_the_line() -> None:
    err = error_of("probes:\n  journeys: [health, login\ngates: {}\n")
    assert err.line is not None and "invalid YAML" in str(err)


def test_top_level_must_be_a_mapping() -> None:
    assert "mapping" in str(error_of("- a\n- b\n"))


def test_env_interpolation_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "target:\n  credentials:\n    password: ${RG_TEST_PW:-fallback-pw}\n"
    assert parse_config(text).target.credentials.password.get_secret_value() == "fallback-pw"
    monkeypatch.setenv("RG_TEST_PW", "from-env-pw")
    assert parse_config(text).target.credentials.password.get_secret_value() == "from-env-pw"


def test_missing_env_var_names_the_variable_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RG_UNSET_VAR", raising=False)
    err = error_of("target:\n  credentials:\n    password: ${RG_UNSET_VAR}\n")
    assert str(err) == ("readygate.yaml:3 target.credentials.password: environment variable "
                        "RG_UNSET_VAR is not set (and no default given)")


def test_secrets_are_redacted_in_repr_and_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RG_SECRET_PW", "s3cret-value-xyz")
    config = parse_config("target:\n  credentials:\n    password: ${RG_SECRET_PW}\n")
    assert "s3cret-value-xyz" not in repr(config)
    assert redact.scrub("login with s3cret-value-xyz") == "login with ***"


def test_fault_on_a_service_without_a_proxy_is_refused() -> None:
    text = DEFAULT.replace("  name: demo\n", "  name: demo\n  fault_proxies: {web: http://127.0.0.1:1}\n")
    err = error_of(text)
    assert err.key == "gates.release.scenario.fault.service"
    assert err.line == line_of(text, "service: storage")


def test_schema_is_valid_and_accepts_the_default_config() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load(DEFAULT.replace("${READYGATE_DEMO_PASSWORD:-demo-Pa55word-change-me}",
                                          "pw"))
    jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"probes": {"timout_s": 1}}, schema)


@pytest.mark.parametrize(("check", "backends", "needs"), [
    ("{signal: dashboard, phase: baseline, dashboards: [abc]}", "", "backends.dashboards"),
    ("{signal: alert_policy, phase: baseline, policies: [API error rate]}",
     "backends: {alerts: {kind: grafana, url: 'http://127.0.0.1:1'}}\n", "kind gcloud"),
])
def test_a_check_whose_only_backend_is_missing_is_refused_at_load_time(
        check: str, backends: str, needs: str) -> None:
    text = ("version: 1\ntarget: {name: x, services: {web: 'http://127.0.0.1:1'}}\n"
            + backends + "gates:\n  g:\n    scenario: {probes: false}\n    checks:\n"
            f"      - {check}\n")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "readygate.yaml")
    assert needs in str(err.value) and "gates.g.checks[0].signal" in str(err.value)


def test_an_unquoted_variable_in_a_flow_mapping_gets_a_hint_to_quote_it() -> None:
    text = "backends:\n  metrics: {kind: mimir, url: 'http://m:8080', token: ${MIMIR_TOKEN}}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "readygate.yaml")
    message = str(err.value)
    assert "readygate.yaml:2" in message and "invalid YAML" in message
    assert 'quote a variable: "${MIMIR_TOKEN}"' in message
    assert len(message.splitlines()) == 1


def test_a_journeys_template_reference_is_not_a_secret(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`password: "{{password}}"` in a journey refers to target.credentials: the rendered
    value's source is the secret, counted once; the literal template is not one."""
    monkeypatch.setenv("RG_SECRET_PW", "s3cret-value-xyz")
    (tmp_path / "journeys.yaml").write_text(
        "journeys:\n  login:\n    steps:\n      - method: GET\n        url: /v2/\n"
        "        basic_auth: {username: u, password: \"{{password}}\"}\n"
        "        expect: {status: 200}\n")
    (tmp_path / "readygate.yaml").write_text(
        "target:\n  services: {web: http://127.0.0.1:1}\n"
        "  credentials:\n    password: ${RG_SECRET_PW}\n"
        "probes:\n  journeys_file: journeys.yaml\n")
    config = load_config(tmp_path / "readygate.yaml")
    assert config.secrets() == ["s3cret-value-xyz"]
