"""report.json validates against the published, versioned schema in docs/report-schema.json."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from reports.history import compare
from reports.model import REPORT_SCHEMA_VERSION, Report
from reports.render import render_json
from tests.reports.conftest import SCHEMA, make_check, make_report, many_probes


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_version_matches_the_code() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"].endswith(REPORT_SCHEMA_VERSION)


def test_a_real_demo_report_validates(validator: jsonschema.Draft202012Validator,
                                      demo_report_data: dict[str, Any]) -> None:
    validator.validate(demo_report_data)


def test_a_rerendered_report_with_comparison_and_links_validates(
        validator: jsonschema.Draft202012Validator, demo_report: Report,
        demo_report_data: dict[str, Any]) -> None:
    demo_report.links = {"prometheus": "http://prom:9090"}
    demo_report.comparison = compare(demo_report, demo_report_data, source="x.json")
    data = json.loads(render_json(demo_report))
    validator.validate(data)
    assert data["schema_version"] == REPORT_SCHEMA_VERSION


def test_every_status_validates_and_a_broken_report_does_not(
        validator: jsonschema.Draft202012Validator) -> None:
    report = make_report(make_check("pass"), make_check("fail", latency=None),
                         make_check("error"), make_check("skipped", severity="warning"),
                         probes=many_probes(30))
    data = json.loads(render_json(report))
    validator.validate(data)
    data["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)


def test_report_round_trips_through_json(demo_report_data: dict[str, Any]) -> None:
    again = json.loads(render_json(Report.from_dict(demo_report_data)))
    for key in ("gate", "verdict", "checks", "phases", "faults", "probes", "probe_results"):
        assert again[key] == demo_report_data[key], key
