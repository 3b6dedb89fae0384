"""readygate's roof: the ``readygate`` CLI, the run wiring, the root config, the selftest.

Nothing imports this package; it imports every layer below (ARCHITECTURE.md).
"""

from __future__ import annotations

from core import __version__

__all__ = ["__version__"]
