"""The GitHub workflows and the CI templates in docs/ci/: valid against SchemaStore's schemas
(vendored by check-jsonschema: no network at test time), and the known defects stay fixed."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TEMPLATES = sorted((ROOT / "docs" / "ci").glob("readygate-*.yml"))
GITLAB = sorted((ROOT / "docs" / "ci").glob("*.gitlab-ci.yml"))
GITHUB_FILES = WORKFLOWS + TEMPLATES
ON_GITHUB = "runner.environment == 'github-hosted'"
# Steps that run readygate or its tests, and so may launch Chromium.
RUNS_READYGATE = re.compile(r"\breadygate (run|demo|drill)\b|\.ci/run|\bmake\b[^\n]*\btest\b")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where the key ``on`` is True; GitHub reads it as a string."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                                    list("tf"))


def load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)


def vendored_schema(name: str) -> dict[str, Any]:
    """A schema check-jsonschema ships (SchemaStore's, vendored in the package)."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / f"{name}.json").read_text(encoding="utf-8"))
    return schema


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_name, step) for job_name, job in workflow["jobs"].items()
            for step in job.get("steps", [])]


def test_the_files_are_there() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "nightly.yml", "release-gate.yml"}
    assert {p.name for p in TEMPLATES} >= {"readygate-gate.yml", "readygate-nightly.yml"}
    assert GITLAB


@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: p.name)
def test_validates_against_the_github_workflow_schema(path: Path) -> None:
    schema = vendored_schema("github-workflows")
    assert schema["$id"] == "https://json.schemastore.org/github-workflow.json"
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(load(path))]
    assert errors == []


@pytest.mark.parametrize("path", GITLAB, ids=lambda p: p.name)
def test_the_gitlab_example_validates_against_the_gitlab_ci_schema(path: Path) -> None:
    schema = vendored_schema("gitlab-ci")
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(load(path))]
    assert errors == []


def test_the_schema_catches_a_broken_workflow() -> None:
    """The validation has teeth: a typo'd key and a step with neither uses nor run fail."""
    schema = vendored_schema("github-workflows")
    bad = {"on": "push", "jobs": {"j": {"runs-on": "ubuntu-latest",
                                        "steps": [{"name": "x", "with": {"a": 1}}],
                                        "timout-minutes": 5}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
    assert load(ROOT / ".github" / "workflows" / "ci.yml")["on"]  # `on` read as a string key


@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: p.name)
def test_nothing_but_apt_runs_under_sudo_unless_path_is_passed(path: Path) -> None:
    """``sudo -E`` resets PATH to secure_path: the venv would be built with the system Python."""
    bad = []
    for _, step in steps(load(path)):
        for line in str(step.get("run", "")).splitlines():
            for sudo in re.finditer(r"\bsudo\b(.*)", line):
                rest = sudo.group(1)
                if re.search(r"\b(make|pip3?|python3?)\b|\.ci/run|\.venv", rest) and \
                        "PATH=" not in rest:
                    bad.append(line.strip())
    assert bad == []


@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: p.name)
def test_setup_python_caches_pip(path: Path) -> None:
    setups = [s for _, s in steps(load(path))
              if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setups
    for step in setups:
        assert step.get("with", {}).get("cache") == "pip", step
        assert step["with"]["cache-dependency-path"]


@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: p.name)
def test_chromium_comes_from_playwright_only_on_github_hosted_runners(path: Path) -> None:
    """GitHub's Ubuntu has no Debian chromium; a Debian runner cannot download Playwright's."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for job, step in steps(load(path)):
        by_job.setdefault(job, []).append(step)
    checked = 0
    for job, job_steps in by_job.items():
        runs = [i for i, s in enumerate(job_steps) if RUNS_READYGATE.search(str(s.get("run", "")))]
        if not runs:
            continue
        checked += 1
        installs = [i for i, s in enumerate(job_steps)
                    if "playwright install --with-deps chromium" in str(s.get("run", ""))]
        assert installs, f"{job}: no Playwright install step"
        assert max(installs) < min(runs), f"{job}: the browser comes after readygate runs"
        chooses = [s for s in job_steps if "READYGATE_CHROMIUM=playwright" in str(s.get("run", ""))]
        assert chooses, f"{job}: READYGATE_CHROMIUM=playwright is never set"
        for step in [job_steps[i] for i in installs] + chooses:
            assert ON_GITHUB in str(step.get("if", "")), f"{job}: {step.get('name')} unguarded"
    assert checked, "no job runs readygate"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_run_a_gate_and_keep_the_report(path: Path) -> None:
    workflow = load(path)
    all_steps = [s for _, s in steps(workflow)]
    text = path.read_text(encoding="utf-8")
    assert re.search(r"readygate run \"\$\w+\" --config \"\$READYGATE_CONFIG\"", text)
    uploads = [s for s in all_steps
               if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads and all(s.get("if") == "always()" for s in uploads)
    summaries = [s for s in all_steps if "GITHUB_STEP_SUMMARY" in str(s.get("run", ""))]
    assert summaries and summaries[0].get("if") == "always()"
    # the job's result is the verdict, after the report is safe
    assert all_steps[-1]["run"] == "exit ${{ steps.gate.outputs.exit_code }}"


def test_the_gate_template_publishes_junit() -> None:
    gate = load(ROOT / "docs" / "ci" / "readygate-gate.yml")
    junit = [s for _, s in steps(gate) if "junit" in str(s.get("uses", ""))]
    assert junit and junit[0]["with"]["report_paths"].endswith("/junit.xml")
    assert gate["permissions"]["checks"] == "write"
