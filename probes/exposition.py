"""The text exposition, fast, and the text operations of a worker pool and a fleet.

:func:`generate` writes what ``prometheus_client.generate_latest`` writes, byte for byte
(a test compares them), at a fraction of the CPU: with 1,000 journeys (42,000 lines) a
``generate_latest`` render took ~0.6 s of CPU, in a thread that shares the GIL with the
event loop starting the runs (bench.scheduler_scale: late starts during every scrape).
:func:`merge` joins the expositions of ``probe serve --workers N`` into one; :func:`add_labels`
labels every sample of a shard with its ``shard`` and ``location``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import metrics as client_metrics
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import (
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

# OpenMetrics-only samples that the Prometheus text format puts in a gauge of their own,
# after the family (prometheus_client's rule).
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram",
          "unknown": "untyped"}

_label_names: dict[str, str] = {}
_metric_names: dict[str, str] = {}
_orders: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _metric_name(name: str) -> str:
    escaped = _metric_names.get(name)
    if escaped is None:
        escaped = _metric_names[name] = escape_metric_name(name, UNDERSCORES)
    return escaped


def _order(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Per label-name tuple: the names sorted (the text format's order) with their escaped
    # form and the '="' that follows, computed once instead of per sample.
    order = _orders.get(keys)
    if order is None:
        names = []
        for key in sorted(keys):
            escaped = _label_names.get(key)
            if escaped is None:
                escaped = _label_names[key] = escape_label_name(key, UNDERSCORES)
            names.append((key, escaped + '="'))
        order = _orders[keys] = tuple(names)
    return order


def number(value: float) -> str:
    """``floatToGoString``: Python's repr except infinities, NaN and large exponents."""
    text = repr(float(value))
    dot = text.find(".")
    if dot < 0 or dot > 6 or text[-1] in "fn" or "e" in text:
        return str(floatToGoString(value))  # type: ignore[no-untyped-call]
    return text


def _value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


def _collectors(registry: Collector) -> list[Collector]:
    # CollectorRegistry.collect() without the families: the collectors themselves, so
    # labelled counters and histograms can be written from their children directly. Any
    # other registry (or one with target_info) goes through collect().
    collectors = getattr(registry, "_collector_to_names", None)
    if (type(registry) is not CollectorRegistry or not isinstance(collectors, dict)
            or getattr(registry, "_target_info", None)):
        return [registry]
    with registry._lock:
        return list(collectors)


def _children(metric: Any) -> list[tuple[tuple[str, ...], Any]]:
    with metric._lock:
        return list(metric._metrics.items())


def _fast(metric: Collector, out: list[str]) -> bool:
    """Write a labelled Counter or Histogram from its children; False for anything else.

    What prometheus_client's ``_multi_samples`` + ``generate_latest`` make of them, without a
    Sample per line (the families of 1,000 journeys' counters and histograms were most of
    a render's CPU).
    """
    kind = type(metric)
    if kind not in (client_metrics.Counter, client_metrics.Histogram):
        return False
    wrapper: Any = metric
    if not wrapper._labelnames or wrapper._labelvalues:  # unlabelled or a child
        return False
    name: str = wrapper._name
    names: tuple[str, ...] = tuple(wrapper._labelnames)
    created = client_metrics._use_created
    doc = _help(wrapper._documentation)
    later: list[str] = []
    if kind is client_metrics.Counter:
        total = _metric_name(name + "_total")
        out.append(f"# HELP {total} {doc}\n# TYPE {total} counter\n")
        order = [names.index(key) for key, _ in _order(names)]
        heads = [escaped for _, escaped in _order(names)]
        created_name = _metric_name(name + "_created")
        for values, child in _children(wrapper):
            pairs = ",".join(f'{heads[k]}{_value(values[i])}"' for k, i in enumerate(order))
            out.append(f"{total}{{{pairs}}} {number(child._value.get())}\n")
            if created:
                later.append(f"{created_name}{{{pairs}}} {number(child._created)}\n")
    else:
        family = _metric_name(name)
        out.append(f"# HELP {family} {doc}\n# TYPE {family} histogram\n")
        with_le = (*names, "le")
        order = [with_le.index(key) for key, _ in _order(with_le)]
        heads = [escaped for _, escaped in _order(with_le)]
        plain_order = [names.index(key) for key, _ in _order(names)]
        plain_heads = [escaped for _, escaped in _order(names)]
        bucket, count = _metric_name(name + "_bucket"), _metric_name(name + "_count")
        total, created_name = _metric_name(name + "_sum"), _metric_name(name + "_created")
        bounds: list[str] | None = None
        for values, child in _children(wrapper):
            if bounds is None:
                bounds = [number(b) for b in child._upper_bounds]
            pairs = ",".join(f'{plain_heads[k]}{_value(values[i])}"'
                             for k, i in enumerate(plain_order))
            acc = 0.0
            for b, le in enumerate(bounds):
                acc += child._buckets[b].get()
                full = (*values, le)
                bucket_pairs = ",".join(f'{heads[k]}{_value(full[i])}"'
                                        for k, i in enumerate(order))
                out.append(f"{bucket}{{{bucket_pairs}}} {number(acc)}\n")
            out.append(f"{count}{{{pairs}}} {number(acc)}\n")
            if child._upper_bounds[0] >= 0:
                out.append(f"{total}{{{pairs}}} {number(child._sum.get())}\n")
            if created:
                later.append(f"{created_name}{{{pairs}}} {number(child._created)}\n")
    if later:
        om = _metric_name(name + "_created")
        out.append(f"# HELP {om} {doc}\n# TYPE {om} gauge\n")
        out.extend(later)
    return True


def generate(registry: Collector) -> str:
    """The Prometheus text format (0.0.4) of ``registry``, as ``generate_latest`` writes it."""
    out: list[str] = []
    for collector in _collectors(registry):
        if not _fast(collector, out):
            _write(collector.collect(), out)
    return "".join(out)


def _write(families: Iterable[Metric], out: list[str]) -> None:
    append = out.append
    for metric in families:
        name, mtype = metric.name, metric.type
        if mtype == "counter":
            shown = name + "_total"
        elif mtype == "info":
            shown = name + "_info"
        else:
            shown = name
        mtype = _TYPES.get(mtype, mtype)
        doc = _help(metric.documentation)
        escaped = _metric_name(shown)
        append(f"# HELP {escaped} {doc}\n# TYPE {escaped} {mtype}\n")
        extra: dict[str, list[str]] = {}
        om_names = {name + suffix: suffix for suffix in _OM_SUFFIXES}
        for sample in metric.samples:
            labels = sample.labels
            if labels:
                pairs = ",".join(f"{escaped_key}{_value(labels[key])}\""
                                 for key, escaped_key in _order(tuple(labels)))
                line = f"{_metric_name(sample.name)}{{{pairs}}} {number(sample.value)}"
            else:
                line = f"{_metric_name(sample.name)} {number(sample.value)}"
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000):d}"
            suffix = om_names.get(sample.name)
            if suffix is None:
                append(line + "\n")
            else:
                extra.setdefault(suffix, []).append(line + "\n")
        for suffix, lines in sorted(extra.items()):
            om = _metric_name(name + suffix)
            append(f"# HELP {om} {doc}\n# TYPE {om} gauge\n")
            out.extend(lines)


# A family block of the text format: its HELP and TYPE lines, then its samples.
_BLOCK_RE = re.compile(r"^# HELP (\S+) .*\n# TYPE \S+ (\S+)\n", re.M)
_SAMPLE_RE = re.compile(r"^([^\s{]+)(\{.*\})? (\S+)(?: \S+)?$")


def _blocks(text: str) -> list[tuple[str, str, str, str]]:
    """(family name, type, header, sample lines) of each family block, in order."""
    found = list(_BLOCK_RE.finditer(text))
    blocks = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        blocks.append((match.group(1), match.group(2), match.group(0),
                       text[match.end():end]))
    return blocks


def merge(parts: Sequence[str], *, shared: Iterable[str] = ()) -> str:
    """One exposition from the workers' (each journey's series are in exactly one part).

    A family appears once, with its header from the first part that has it, in the order
    of first appearance. Families named in ``shared`` are process-wide series every worker
    has (the scheduler's lateness histogram): their samples are summed by name and labels,
    so a histogram stays a histogram, except ``*_created`` families, which keep the
    earliest time. The other families' samples are concatenated.
    """
    summed = set(shared)
    headers: dict[str, str] = {}
    lines: dict[str, list[str]] = {}
    totals: dict[str, dict[str, float]] = {}
    for part in parts:
        for name, _mtype, header, body in _blocks(part):
            if name not in headers:
                headers[name] = header
                lines[name] = []
                totals[name] = {}
            if name not in summed:
                lines[name].append(body)
                continue
            sums = totals[name]
            for line in body.splitlines():
                match = _SAMPLE_RE.match(line)
                if match is None:
                    continue
                key = match.group(1) + (match.group(2) or "")
                value = float(match.group(3))
                if key not in sums:
                    sums[key] = value
                elif name.endswith("_created"):
                    sums[key] = min(sums[key], value)
                else:
                    sums[key] += value
    out: list[str] = []
    for name, header in headers.items():
        out.append(header)
        if name in summed:
            out.extend(f"{key} {number(value)}\n" for key, value in totals[name].items())
        else:
            out.extend(lines[name])
    return "".join(out)


def families_without(parts: Sequence[str], label: str) -> set[str]:
    """Names of the families none of whose samples, in any part, carry ``label``."""
    seen: set[str] = set()
    labelled: set[str] = set()
    for part in parts:
        for name, _mtype, _header, body in _blocks(part):
            seen.add(name)
            if body and _has_label(body, label):
                labelled.add(name)
    return seen - labelled


_LABELLED_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", re.M)
_BARE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) ", re.M)


def _has_label(body: str, label: str) -> bool:
    first = body.split("\n", 1)[0]
    brace = first.find("{")
    if brace < 0:
        return False
    # Label names precede '="'; a value cannot contain an unescaped '"', so scanning the
    # pairs of the first sample (every sample of a family has the same label names) works.
    return re.search(r'[{,]' + re.escape(label) + '="', first[brace:]) is not None


def _labelled(body: str, pairs: str) -> str:
    body = _LABELLED_RE.sub(lambda m: f"{m.group(1)}{{{pairs},", body)
    return _BARE_RE.sub(lambda m: f"{m.group(1)}{{{pairs}}} ", body)


def add_labels(text: str, labels: Mapping[str, str]) -> str:
    """Every sample of ``text`` with ``labels`` added (a family's own label wins)."""
    if not labels:
        return text
    out: list[str] = []
    for _name, _mtype, header, body in _blocks(text):
        extra = [(k, v) for k, v in labels.items() if not _has_label(body, k)]
        out.append(header)
        if not extra:
            out.append(body)
            continue
        out.append(_labelled(body, ",".join(f'{k}="{_value(v)}"' for k, v in extra)))
    return "".join(out)

