"""JSON Schemas of every file readygate reads, and docs/config.md generated from them.

``readygate schema [config|journeys|scenario]`` prints one; docs/schemas/ holds them all
and a test keeps them (and docs/config.md) in step with the models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from core.config import ENV_PATTERN, json_schema
from gates.backends import registry
from gates.backends.config import BACKEND_KINDS
from probes.spec import JourneysFile
from readygate.config import Config
from scenarios.files import ScenarioFile

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "config": (Config, "readygate.yaml"),
    "journeys": (JourneysFile, "readygate journeys file"),
    "scenario": (ScenarioFile, "readygate scenario file"),
}
"""Schema name -> (top-level model, title)."""


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema called ``name`` (a key of :data:`SCHEMAS`)."""
    model, title = SCHEMAS[name]
    out = json_schema(model, title)
    if name == "config":
        _backend_kinds(out)
    return out


def _backend_kinds(config: dict[str, Any]) -> None:
    """Each signal's backend ``kind`` as an enum of the registered kinds (editors offer
    them; a misspelt kind is flagged before readygate runs), and listed in its description.

    One model (``SignalBackend``) serves every signal, so the kinds are added per signal
    here, beside the model's own ``$ref``.
    """
    backends = config.get("$defs", {}).get("Backends", {}).get("properties", {})
    for signal in sorted(BACKEND_KINDS):
        node = backends.get(signal)
        if node is None:
            continue
        names = sorted(registry.kinds(signal) | BACKEND_KINDS[signal])
        kind = {"anyOf": [{"enum": names}, {"type": "string", "pattern": ENV_PATTERN}]}
        node["anyOf"] = [{"$ref": n["$ref"], "properties": {"kind": kind}} if "$ref" in n
                         else n for n in node.get("anyOf", [])]
        node["description"] = (f"{node.get('description', '').rstrip('.')}. "
                               f"Kinds: {', '.join(names)}").lstrip(". ")


def schema_text(name: str) -> str:
    """The schema as the committed file holds it."""
    return json.dumps(schema(name), indent=2, sort_keys=True) + "\n"


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short human name for a schema node's type."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node or "oneOf" in node:
        parts = [_type(n, defs) for n in node.get("anyOf", node.get("oneOf", []))
                 if not (n.get("type") == "string" and "pattern" in n
                         and n["pattern"].startswith("^(\\$"))]
        return " | ".join(dict.fromkeys(p for p in parts if p))
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in node:
        extra = node["additionalProperties"]
        return f"map of {_type(extra, defs) if isinstance(extra, dict) else 'any'}"
    return str(kind or "any")


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return "`" + json.dumps(value) + "`" if value not in ({}, []) else ""


def _table(model: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    required = set(model.get("required", []))
    for key, node in model.get("properties", {}).items():
        desc = (node.get("description") or "").replace("|", "\\|").replace("\n", " ")
        req = " (required)" if key in required else ""
        kind, default = _type(node, defs).replace("|", "\\|"), \
            _default(node).replace("|", "\\|")
        rows.append(f"| `{key}`{req} | {kind} | {default} | {desc} |")
    return rows


def markdown() -> str:
    """docs/config.md: every section and model of readygate.yaml, from the schema."""
    full = schema("config")
    defs: dict[str, Any] = full.get("$defs", {})
    out = ["# readygate.yaml reference", "",
           "Generated from the models by `python -m readygate.schemas` (a test keeps it "
           "current); do not edit by hand. Every key of every section, its type, default "
           "and meaning. Unknown keys are errors (one line naming the file, line and key, "
           "exit 3). `${VAR}` and `${VAR:-default}` are read from the environment and may "
           "stand for any value, numbers and booleans included. JSON Schemas for editors and "
           "CI: [schemas/](schemas/) (`readygate schema config|journeys|scenario`).", "",
           "Limits (exit 3, one line, checked before anything is built): a config, journeys, "
           "scenario or rules file is UTF-8 text of at most 10 MB, nested at most 64 mappings "
           "and lists deep, with at most 100000 values (YAML aliases expanded). `readygate "
           "validate` and `run` refuse a config that defines nothing to run (no gates, "
           "journeys, target services or backends), such as an empty file.", "",
           "Guides: [own-service.md](own-service.md) (gate your own service), "
           "[journeys.md](journeys.md), [checks.md](checks.md), [backends.md](backends.md), "
           "[chaos.md](chaos.md), [scenarios.md](scenarios.md), [gates.md](gates.md).", "",
           "## Top level", "", *_table(full, defs), ""]
    for name in sorted(defs):
        model = defs[name]
        if "properties" not in model:
            continue
        doc = (model.get("description") or "").strip().splitlines()
        out += [f"## {name}", "", *([doc[0], ""] if doc else []), *_table(model, defs), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    """Write docs/config.md and docs/schemas/*.json from the models."""
    from core.config import CHECKOUT

    docs = CHECKOUT / "docs"
    (docs / "schemas").mkdir(exist_ok=True)
    for name in SCHEMAS:
        (docs / "schemas" / f"{name}.schema.json").write_text(schema_text(name),
                                                              encoding="utf-8")
    (docs / "config.md").write_text(markdown(), encoding="utf-8")


if __name__ == "__main__":
    main()
