"""The one place that writes report files; every byte passes the secret scrubber first.

Secrets are masked twice: in the values of the report (:func:`scrubbed`, before any
renderer serialises them, so an escape a renderer adds cannot hide a secret from the
scrubber) and in the rendered text, in every encoding :mod:`core.redact` knows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import redact
from reports.html import render_html
from reports.junit import render_junit
from reports.model import Report
from reports.render import render_json, render_markdown

RENDERERS: dict[str, Callable[[Report], str]] = {
    "report.json": render_json,
    "junit.xml": render_junit,
    "report.md": render_markdown,
    "report.html": render_html,
}


def scrubbed(report: Report) -> Report:
    """``report`` with every registered secret masked in its values (messages, evidence,
    probe results, timeline), a secret split over two values included; the same object
    when there was nothing to mask."""
    clean: Report = redact.scrub_data(report)
    return clean


def write_reports(report: Report, out_dir: str | Path) -> list[Path]:
    """Render every format and write it atomically into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = scrubbed(report)
    written = []
    for name, render in RENDERERS.items():
        path = out / name
        _atomic_write(path, redact.scrub(render(clean)))
        written.append(path)
    return written


def archive_report(report: Report, history_dir: str | Path) -> Path:
    """Keep this run's report.json in the history directory (for later comparisons)."""
    from reports.history import history_path
    path = history_path(history_dir, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, redact.scrub(render_json(scrubbed(report))))
    return path


def _atomic_write(path: Path, text: str) -> None:
    # a report is never half-written, even when the run is killed while writing it
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are read by CI viewers and people
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_artifact(out_dir: str | Path, name: str, text: str) -> Path:
    """Write another artifact of a run (a component's log) with secrets scrubbed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    _atomic_write(path, scrub_log(text))
    return path


def scrub_log(text: str) -> str:
    """A log's text with secrets masked in every encoding, and in JSON lines also a
    secret split over two fields (both parts masked, the line written anew)."""
    lines = redact.scrub(text).splitlines(keepends=True)
    records: list[tuple[int, Any]] = []
    for n, line in enumerate(lines):
        if line.lstrip().startswith("{"):
            try:
                records.append((n, json.loads(line)))
            except ValueError:
                continue
    # one scan finds the records still holding a secret (split over fields, in a key)
    for index in redact.leaking([record for _, record in records]):
        n, record = records[index]
        end = "\n" if lines[n].endswith("\n") else ""
        lines[n] = json.dumps(redact.scrub_data(record), ensure_ascii=False) + end
    return "".join(lines)
