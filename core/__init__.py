"""The ground floor: what every layer may import, and which imports no other readygate package.

``config`` (the YAML loader with line numbers, ``${VAR}``, one-line errors, the config
``Model`` base), ``errors``, ``events``, ``waiting``, ``redact``, ``procs`` / ``serve``
(the child-process contract).
"""

from __future__ import annotations

__version__ = "0.1.0"
