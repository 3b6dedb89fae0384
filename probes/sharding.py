"""Which journeys a shard of a fleet, or a worker of one process, runs: stable, uncoordinated.

``probe serve --shard I/N`` runs the journeys that :func:`assign` gives shard ``I``; every
shard computes the same assignment from the same journeys (one ConfigMap in Kubernetes),
so the fleet needs no coordinator, no lease and no peer discovery. ``--workers N`` splits
a process's share between its workers the same way (another salt, so a shard's journeys
do not all land on one worker).

The assignment is rendezvous (highest-random-weight) hashing with bounded loads: each
journey ranks the shards by ``blake2b(salt, shard, name)`` and goes to the first one in
its ranking whose load would stay within the fair share (total load / N); only when none
would, to the least loaded. Journeys are placed heaviest first, ties in hash order, so
the result depends on the set of journeys, never on file order. Load is a journey's
requests per second (steps / interval). What that buys, measured on 1,000 journeys
(docs/probe-serve.md "Shards"): loads within one journey of each other (plain
rendezvous hashing: max/min 1.05-1.23 at 1,000 journeys, 1.45-2.6 at 100); adding or
removing a journey moves a handful of others; going from N to N+1 shards moves about
1/(N+1) of them, as plain rendezvous hashing does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.errors import ConfigError
from probes.journeys import Journey

# I/N, where I may also be a StatefulSet pod name ending in its ordinal (probes-2/3), so a
# manifest can pass --shard "$(POD_NAME)/3" straight from the downward API.
_SHARD_RE = re.compile(r"^\s*(?:\S*-)?(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as a StatefulSet's pod ordinals)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with ``0 <= I < N`` (I may be a pod name ending in ``-I``); else a
        ConfigError naming the flag."""
        match = _SHARD_RE.match(text)
        if match is None:
            raise ConfigError(f"--shard {text!r} is not I/N (for example 0/3, the first of "
                              "three shards, or POD_NAME/3 with a StatefulSet pod's name)")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise ConfigError(f"--shard {text!r}: the index must be 0 to N-1 (pod ordinals "
                              "start at 0)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _score(salt: str, bucket: int, name: str) -> int:
    digest = hashlib.blake2b(f"{salt}\0{bucket}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def load(journey: Journey) -> float:
    """A journey's load: HTTP requests (or browser steps) per second on its schedule."""
    return max(1, len(journey.spec.steps)) / max(journey.interval_s, 1e-3)


def assign(loads: Mapping[str, float], count: int, *, salt: str = "shard") -> dict[str, int]:
    """Each name's bucket in ``range(count)``: rendezvous hashing with bounded loads."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if count == 1:
        return dict.fromkeys(loads, 0)
    fair = sum(loads.values()) / count
    # Floating-point slack: sums of the same floats in the same order are equal on every
    # machine, but a load exactly at the fair share must still count as fitting.
    cap = fair * (1 + 1e-9)
    filled = [0.0] * count
    out: dict[str, int] = {}
    order = sorted(loads, key=lambda n: (-loads[n], _score(salt, -1, n), n))
    for name in order:
        weight = loads[name]
        ranking = sorted(range(count), key=lambda b: (-_score(salt, b, name), b))
        chosen = next((b for b in ranking if filled[b] + weight <= cap), None)
        if chosen is None:
            least = min(filled)
            chosen = next(b for b in ranking if filled[b] == least)
        out[name] = chosen
        filled[chosen] += weight
    return out


def owned(journeys: Sequence[Journey], index: int, count: int, *,
          salt: str = "shard") -> list[Journey]:
    """The journeys bucket ``index`` of ``count`` runs, in their given order."""
    buckets = assign({j.name: load(j) for j in journeys}, count, salt=salt)
    return [j for j in journeys if buckets[j.name] == index]


def split(journeys: Sequence[Journey], count: int, *, salt: str = "worker"
          ) -> list[list[Journey]]:
    """``journeys`` in ``count`` disjoint lists that together hold every one."""
    buckets = assign({j.name: load(j) for j in journeys}, count, salt=salt)
    parts: list[list[Journey]] = [[] for _ in range(count)]
    for j in journeys:
        parts[buckets[j.name]].append(j)
    return parts
