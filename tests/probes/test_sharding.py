"""Sharding and the worker split: stable, complete, disjoint, even, and few moves on change."""

from __future__ import annotations

import random

import pytest

from core.errors import ConfigError
from probes.journeys import Journey
from probes.sharding import Shard, assign, load, owned, split
from probes.spec import HttpJourney, Step


def journeys(n: int, prefix: str = "journey", interval: float = 30.0) -> list[Journey]:
    spec = HttpJourney(steps=[Step(url="/")])
    return [Journey(f"{prefix}-{i}", spec, "http://127.0.0.1:9", interval) for i in range(n)]


def test_the_assignment_is_pinned_so_every_shard_of_a_fleet_computes_the_same() -> None:
    # Pinned values: a change here would move journeys between shards on upgrade, and two
    # versions in one fleet (a rolling update) would run some journeys twice or never.
    got = assign({f"journey-{i}": 1.0 for i in range(8)}, 3)
    assert got == {"journey-0": 2, "journey-1": 0, "journey-2": 2, "journey-3": 1,
                   "journey-4": 0, "journey-5": 2, "journey-6": 1, "journey-7": 1}


def test_the_assignment_does_not_depend_on_the_order_of_the_journeys() -> None:
    loads = {f"j{i}": 1.0 + (i % 3) for i in range(200)}
    shuffled = list(loads.items())
    random.Random(7).shuffle(shuffled)
    assert assign(dict(shuffled), 5) == assign(loads, 5)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_journey_runs_on_exactly_one_shard(count: int) -> None:
    every = journeys(101)
    shards = [owned(every, i, count) for i in range(count)]
    names = [j.name for part in shards for j in part]
    assert sorted(names) == sorted(j.name for j in every)  # complete
    assert len(names) == len(set(names))  # disjoint


@pytest.mark.parametrize(("n", "count"), [(100, 3), (100, 8), (1000, 4), (37, 5)])
def test_the_load_is_even_where_plain_hashing_is_not(n: int, count: int) -> None:
    parts = [owned(journeys(n), i, count) for i in range(count)]
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1, sizes
    if n >= 100:
        assert max(sizes) / min(sizes) <= 1.1


def test_load_is_requests_per_second_so_frequent_journeys_weigh_more() -> None:
    fast = journeys(10, "fast", interval=1.0)   # 10 requests/s
    slow = journeys(100, "slow", interval=60.0)  # 1.7 requests/s
    every = fast + slow
    loads = [sum(load(j) for j in owned(every, i, 2)) for i in range(2)]
    assert max(loads) / min(loads) <= 1.1, loads


def test_adding_or_removing_a_journey_moves_few_others() -> None:
    every = {f"journey-{i}": 1.0 for i in range(500)}
    before = assign(every, 4)
    after_add = assign({**every, "journey-new": 1.0}, 4)
    assert sum(before[k] != after_add[k] for k in before) <= 4
    del every["journey-17"]
    after_remove = assign(every, 4)
    assert sum(before[k] != after_remove[k] for k in after_remove) <= 8


def test_growing_the_fleet_moves_about_one_journey_in_n_plus_one() -> None:
    every = {f"journey-{i}": 1.0 for i in range(1000)}
    moved = sum(a != b for a, b in zip(assign(every, 4).values(), assign(every, 5).values(),
                                       strict=True))
    assert 0.15 <= moved / 1000 <= 0.30  # ideal 1/5; mod-N hashing would move ~80 %


def test_workers_split_a_shard_with_another_salt() -> None:
    # With the same hash for shards and workers, shard 0 of 2 would hand all of its
    # journeys to worker 0 of 2.
    mine = owned(journeys(200), 0, 2)
    parts = split(mine, 2)
    assert [len(p) for p in parts] == [50, 50]
    assert sorted(j.name for p in parts for j in p) == sorted(j.name for j in mine)


def test_no_journeys_and_more_buckets_than_journeys() -> None:
    assert split([], 3) == [[], [], []]
    parts = split(journeys(2), 4)
    assert sorted(len(p) for p in parts) == [0, 0, 1, 1]


@pytest.mark.parametrize(("text", "shard"), [
    ("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 1 / 2 ", Shard(1, 2)),
    ("readygate-probes-2/3", Shard(2, 3)), ("probes-0/1", Shard(0, 1)),
])
def test_shard_accepts_an_index_or_a_pod_name(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert str(shard) == f"{shard.index}/{shard.count}"


@pytest.mark.parametrize(("text", "message"), [
    ("3/3", "the index must be 0 to N-1"), ("0/0", "the index must be 0 to N-1"),
    ("1", "is not I/N"), ("a/b", "is not I/N"), ("probes/3", "is not I/N"),
])
def test_a_bad_shard_is_a_one_line_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Shard.parse(text)
    assert "\n" not in str(info.value)
