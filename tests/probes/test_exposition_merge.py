"""The fast exposition writer, the merge of workers' expositions, and fleet labels."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probes.exposition import add_labels, generate, merge
from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.model import ProbeResult, StepResult
from probes.pool import _shared
from probes.spec import HttpJourney, Step

ODD = 'we"ird\\name\nline'


def journeys(names: list[str]) -> list[Journey]:
    spec = HttpJourney(steps=[Step(url="/"), Step(name="second", url="/x")])
    return [Journey(n, spec, "http://127.0.0.1:9", 1.0) for n in names]


def result(name: str, ok: bool = True) -> ProbeResult:
    steps = tuple(StepResult(s, "GET", "http://127.0.0.1:9/", 200 if ok else 503, 0.0123,
                             "rid", ok, None if ok else "boom", phases={"connect": 0.001,
                                                                       "processing": 0.01},
                             ttfb_s=0.011) for s in ("GET /", "second"))
    return ProbeResult(name, time.time(), 0.0246, ok, "t" * 32, steps,
                       None if ok else "boom", target="http://127.0.0.1:9")


def populated(names: list[str]) -> ProbeMetrics:
    metrics = ProbeMetrics(journeys(names), "here")
    for name in names:
        metrics.started(name, 0.0, 0.0005 * len(name))
        metrics.observe(result(name, ok=not name.endswith(("0", "3", "6"))))
    return metrics


def samples(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample as (name, sorted labels, value), parsed by prometheus_client."""
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                  for family in text_string_to_metric_families(text) for s in family.samples)


def test_generate_writes_what_generate_latest_writes_byte_for_byte() -> None:
    metrics = populated(["a", "b", ODD, "d"])
    assert generate(metrics.registry) == generate_latest(metrics.registry).decode()


def test_generate_matches_for_plain_and_unlabelled_metrics_too() -> None:
    registry = CollectorRegistry()
    Counter("plain_events", "Events.", registry=registry).inc(3)
    Gauge("plain_level", "A level\nwith a newline.", registry=registry).set(1e22)
    hist = Histogram("lat_seconds", "Latency.", ["path"], buckets=(0.1, 1, float("inf")),
                     registry=registry)
    hist.labels("/a").observe(0.05)
    hist.labels('/"b"').observe(7)
    counter = Counter("hits", "Hits.", ["code", "a_label"], registry=registry)
    counter.labels("200", "x").inc()
    counter.labels("500", "y\\z").inc(2.5)
    assert generate(registry) == generate_latest(registry).decode()


def test_merged_workers_equal_one_process_with_every_journey_once() -> None:
    names = [f"j{i}" for i in range(10)]
    whole = populated(names)
    left, right = populated(names[:4]), populated(names[4:])
    parts = [left.render().decode(), right.render().decode()]
    merged = merge(parts, shared=_shared(parts))
    got = samples(merged)
    # every journey's series exactly once
    successes = [labels for name, labels, _ in got if name == "probe_success"]
    assert sorted(dict(labels)["journey"] for labels in successes) == names
    info = [dict(labels)["journey"] for name, labels, _ in got
            if name == "readygate_probe_info"]
    assert sorted(info) == sorted(names * 2)  # one per step, two steps each
    # journey series equal the single process's, sample by sample (created times aside)
    def journey_series(rows: list[tuple[str, tuple[tuple[str, str], ...], float]]
                       ) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        return [r for r in rows if "journey" in dict(r[1])
                and not r[0].endswith("_created")
                and r[0] != "readygate_journey_last_run_timestamp_seconds"]
    assert journey_series(got) == journey_series(samples(whole.render().decode()))
    # the journey-less lateness histogram is summed: its count is every run started
    count = next(v for n, labels, v in got
                 if n == "readygate_scheduler_start_lateness_seconds_count")
    assert count == 10
    # and the merged text is one valid exposition: each family's header once
    assert merged.count("# TYPE probe_success gauge") == 1
    assert merged.count("# TYPE readygate_scheduler_start_lateness_seconds histogram") == 1


def test_a_worker_without_journeys_adds_nothing_but_its_empty_families() -> None:
    names = ["a", "b"]
    parts = [populated(names).render().decode(), populated([]).render().decode()]
    merged = merge(parts, shared=_shared(parts))

    def values(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        return [r for r in samples(text) if not r[0].endswith("_created")]
    assert values(merged) == values(parts[0])


def test_add_labels_labels_every_sample_and_keeps_a_family_own_label() -> None:
    text = populated(["a", ODD]).render().decode()
    labelled = add_labels(text, {"shard": "2", "location": "eu-1"})
    rows = samples(labelled)
    assert rows and all(dict(labels).get("shard") == "2" for _, labels, _ in rows)
    info = [dict(labels) for name, labels, _ in rows if name == "readygate_probe_info"]
    assert info and all(i["location"] == "here" for i in info)  # its own location wins
    others = [dict(labels) for name, labels, _ in rows if name != "readygate_probe_info"]
    assert all(o["location"] == "eu-1" for o in others)
    assert len(rows) == len(samples(text))
