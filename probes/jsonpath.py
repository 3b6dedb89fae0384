"""A small JSON path: ``$.a.b``, ``$.items[0].id``, ``$['odd key']``, ``$.list[-1]``.

Enough for extracting ids and tokens and asserting fields; no filters or wildcards, so a
path names at most one value and a miss can say exactly where it stopped.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(-?\d+)\]|\[['"]([^'"]*)['"]\]""")


class Missing(Exception):
    """The path does not lead to a value; the message says where it stopped."""


def parse(path: str) -> list[str | int]:
    """Split a path into keys and indexes; raise ValueError when it is not one we support."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with '$'")
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise ValueError(f"JSON path {path!r}: cannot read from {path[pos:]!r}")
        name, index, quoted = match.groups()
        parts.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = match.end()
    return parts


def get(document: Any, path: str) -> Any:
    """The value at ``path``; raise :class:`Missing` naming the first missing part."""
    node = document
    walked = "$"
    for part in parse(path):
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise Missing(f"{walked} has no item [{part}]")
            node = node[part]
            walked += f"[{part}]"
        else:
            if not isinstance(node, dict) or part not in node:
                raise Missing(f"{walked} has no key '{part}'")
            node = node[part]
            walked += f".{part}"
    return node
