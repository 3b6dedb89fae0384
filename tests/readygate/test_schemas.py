"""The JSON Schemas and docs/config.md match the models, and accept what the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from core.config import load_yaml
from readygate.schemas import SCHEMAS, markdown, schema, schema_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schemas_are_current(name: str) -> None:
    """docs/schemas/NAME.schema.json is what the models say (run python -m readygate.schemas)."""
    committed = (ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(name)


def test_config_reference_is_current() -> None:
    """docs/config.md is generated from the models and lists every section."""
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert text == markdown()
    for section in ("## Probes", "## Target", "## Gate", "## HttpJourney", "## Load"):
        assert section in text


@pytest.mark.parametrize(("name", "files"), [
    ("config", ["readygate.yaml"]),
    ("journeys", ["demo/journeys.yaml", "demo/journeys-examples.yaml"]),
    ("scenario", ["scenarios/error-rate.yaml", "scenarios/latency.yaml",
                  "scenarios/dependency-down.yaml"]),
])
def test_shipped_files_validate_against_their_schema(name: str, files: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As editors see them: YAML 1.2 keys (``on:`` is a string), ${VAR} as written."""
    monkeypatch.setenv("DEMO_PASSWORD", "x")
    for f in files:
        data, _ = load_yaml((ROOT / f).read_text(), f)
        jsonschema.validate(data, schema(name))


def test_env_references_are_valid_in_number_and_boolean_fields() -> None:
    """The loader fills ${VAR:-5} in before validation, so the schema accepts it too."""
    doc = {"probes": {"interval_s": "${PROBE_INTERVAL:-5}", "timeout_s": "${T}"},
           "gates": {"g": {"scenario": {"probes": "${RUN_PROBES:-true}"}}}}
    jsonschema.validate(doc, schema("config"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"probes": {"interval_s": "five"}}, schema("config"))


def test_schema_command_prints_each_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from readygate.cli import main

    for name in SCHEMAS:
        assert main(["schema", name]) == 0
        assert json.loads(capsys.readouterr().out)["title"] == SCHEMAS[name][1]


def test_the_config_schema_offers_each_signals_registered_backend_kinds() -> None:
    from gates.backends import registry
    validator = jsonschema.Draft202012Validator(schema("config"))  # compiled once
    for signal in ("metrics", "logs", "traces", "errors", "notifications", "alerts"):
        for kind in registry.kinds(signal):
            validator.validate({"backends": {signal: {"kind": kind, "url": "http://x"}}})
    validator.validate({"backends": {"logs": {"kind": "${LOGS_KIND}"}}})
    for signal, wrong in (("traces", "jeager"), ("logs", "jaeger"), ("alerts", "loki")):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({"backends": {signal: {"kind": wrong}}})
