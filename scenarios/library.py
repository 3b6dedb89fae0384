"""Loads the ready-made gates of ``gates/library/<name>.yaml`` by name.

A gate of the same name in the config wins; otherwise the library gate is merged into
the config when it is asked for (``readygate run observability-readiness``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from core.config import parse_model
from core.errors import ConfigError
from gates.library import LIBRARY_DIR, names
from scenarios.config import C, Gate, check_gate_references


def load_gate(name: str, config: C) -> Gate:
    """The library gate ``name``, checked against the config's target (file:line errors)."""
    path = LIBRARY_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no library gate named '{name}'", path=str(path))
    gate, lines = parse_model(path.read_text(encoding="utf-8"), str(path), Gate)
    check_gate_references(gate, config.target, lines, str(path), ())
    return gate


def resolve_gate(config: C, name: str, config_path: str | Path) -> C:
    """The config holding gate ``name``: its own gate wins, else the library's is merged in.

    An unknown name is a :class:`ConfigError` that suggests the nearest gate of either kind.
    """
    if name in config.gates:
        return config
    if name in names():
        gates = {**config.gates, name: load_gate(name, config)}
        return config.model_copy(update={"gates": gates})
    close = difflib.get_close_matches(name, sorted(set(config.gates) | set(names())), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else \
        f" (in the config: {', '.join(sorted(config.gates)) or 'none'}; " \
        f"in gates/library: {', '.join(names())})"
    raise ConfigError(f"no gate named '{name}'{hint}", path=str(config_path), key="gates")
