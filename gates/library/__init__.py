"""Ready-made gates: ``gates/library/<name>.yaml``, each one gate, loadable by name.

The files are data; :mod:`scenarios.library` loads them (a gate holds a scenario).
"""

from __future__ import annotations

from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
"""Where the library gates live."""


def names() -> list[str]:
    """The names of every library gate."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))
