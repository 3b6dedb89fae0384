"""The YAML a user copies from docs/backends.md is valid as written: each example that is a
whole readygate.yaml (or its backends:/reports: sections) passes `readygate validate`."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from readygate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
TOP_KEYS = {"version", "target", "backends", "probes", "journeys", "browser_journeys",
            "browser", "gates", "demo", "links", "notify", "reports", "stack"}


def config_examples(doc: str) -> list[tuple[int, str]]:
    """(line, text) of each yaml block that is a config: its top keys are config keys and it
    names no local file (certificates, key files) the test machine would lack."""
    text = (ROOT / "docs" / doc).read_text()
    out = []
    for m in re.finditer(r"^( *)```yaml\n(.*?)^\1```", text, re.S | re.M):
        block = textwrap.dedent(m.group(2))
        if "_file:" in block or "\n---" in block:
            continue
        line = text[:m.start()].count("\n") + 2
        try:
            data = yaml.safe_load(re.sub(r"\$\{[^}]*\}", "x", block))
        except yaml.YAMLError as exc:
            raise AssertionError(f"docs/{doc}:{line}: not YAML: {exc}") from None
        if isinstance(data, dict) and data and set(data) <= TOP_KEYS:
            out.append((line, block))
    return out


@pytest.mark.parametrize("doc", ["backends.md", "checks.md", "chaos.md", "gates.md",
                                 "own-service.md", "reports.md"])
def test_every_config_example_validates(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = config_examples(doc)
    assert examples
    for line, block in examples:
        for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", block)):
            monkeypatch.setenv(name, "example-secret-value")
        text = block if block.startswith("version:") else "version: 1\n" + block
        try:
            parse_config(text, str(ROOT / "docs" / doc))
        except Exception as exc:  # name the example that fails
            raise AssertionError(f"docs/{doc}:{line}: {exc}") from None
