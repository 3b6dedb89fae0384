"""Bad configs end with one line naming the problem, exit code 3 and no traceback: a corpus
of hand-written ones (tests/data/bad-configs, each with its expected words on line 1) through
the real CLI, and hypothesis-generated ones through the parser."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import redact
from core.errors import ConfigError, shown_path
from readygate.cli import main
from readygate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "data" / "bad-configs").glob("*.yaml"))
EXPECT = "# expect: "


def expected_words(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith(EXPECT), f"{path.name}: line 1 must be '{EXPECT}<words>'"
    return first[len(EXPECT):].strip()


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "readygate", "validate", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CI": "true"})


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 20


def validate_in_process(path: Path) -> subprocess.CompletedProcess[str]:
    """The CLI's own entry point in this process: the same code as `readygate validate`
    without 1.5 s of interpreter start-up and imports per file."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "--config", str(path)])
    return subprocess.CompletedProcess([], code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("how", ["process", "in-process"])
def test_every_bad_config_is_one_line_exit_3_no_traceback(
        how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI is what users meet: a few files through `python -m readygate` (interpreter,
    # entry point, exit status), every file through the CLI's main() (the same code).
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CI", "true")
    # a fresh process knows no secret yet: in this one, other tests' secrets would mask
    # words of the messages (a test's secret "password" once turned "{{password}}" to ***)
    monkeypatch.setattr(redact, "_secrets", set())
    monkeypatch.setattr(redact, "_canary", redact.Canary(()))
    if how == "process":
        corpus = CORPUS[::10]
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = dict(zip(corpus, pool.map(validate, corpus), strict=True))
    else:
        results = {path: validate_in_process(path) for path in CORPUS}
    problems = []
    for path, result in results.items():
        lines = result.stderr.strip().splitlines()
        words = expected_words(path)
        where = f"readygate: {shown_path(str(path))}"
        if result.returncode != 3 or len(lines) != 1 or "Traceback" in result.stderr \
                or words not in lines[0] or not lines[0].startswith(where):
            problems.append(f"{path.name}: exit {result.returncode}, stderr {result.stderr!r}, "
                            f"expected {words!r}")
        assert result.stdout == "", path.name
    assert not problems, "\n".join(problems)


def one_line_config_error_or_valid(text: str) -> None:
    """parse_config either accepts ``text`` or raises a one-line ConfigError, nothing else."""
    try:
        parse_config(text, "gen.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert message.startswith("gen.yaml"), message


SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | \
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
KEYS = st.sampled_from(["version", "target", "name", "environment", "services", "gates",
                        "release", "scenario", "fault", "kind", "checks", "signal", "alertname",
                        "deadline_s", "phase", "labels", "probes", "journeys", "backends",
                        "prometheus", "url", "credentials", "password", "notify", "demo",
                        "baseline", "min_duration_s", "max_duration_s", "status", "rate"]) | \
    st.text(max_size=6)
TREES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(KEYS, kids, max_size=5), max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(KEYS, TREES, max_size=6))
def test_generated_config_trees_never_raise_anything_but_a_config_error(
        tree: dict[str, Any]) -> None:
    one_line_config_error_or_valid(yaml.safe_dump(tree))


def _default_config_mutations() -> st.SearchStrategy[str]:
    base = (ROOT / "readygate.yaml").read_text()
    lines = base.splitlines()

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        out = list(lines)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(out) - 1))
            how = draw(st.sampled_from(["drop", "dup", "garble", "indent", "value"]))
            if how == "drop":
                del out[i]
            elif how == "dup":
                out.insert(i, out[i])
            elif how == "garble":
                out[i] = out[i][:draw(st.integers(0, len(out[i])))] + draw(
                    st.text(alphabet=":{}[]-&*!|>'\"#% \t", max_size=3))
            elif how == "indent":
                out[i] = " " * draw(st.integers(0, 3)) + out[i]
            elif ":" in out[i]:
                key = out[i].split(":", 1)[0]
                value = yaml.safe_dump(draw(SCALARS)).split("\n")[0]
                out[i] = f"{key}: {value}"
            if not out:
                break
        return "\n".join(out) + "\n"
    return mutate()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_default_config_mutations())
def test_mutated_default_configs_never_raise_anything_but_a_config_error(text: str) -> None:
    one_line_config_error_or_valid(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
@example(text="{{}}")  # a mapping as a key: found by this test in CI, crashed the loader
@example(text="[a]: 1")
def test_arbitrary_text_never_raises_anything_but_a_config_error(text: str) -> None:
    one_line_config_error_or_valid(text)


@pytest.mark.parametrize("env_value", ["", "x\ny"])
def test_interpolated_values_stay_one_line(env_value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RG_SELFTEST_VAR", env_value)
    one_line_config_error_or_valid("version: 1\ntarget: {name: ${RG_SELFTEST_VAR}}\n")
