"""Web Vitals of browser journeys: Google's web-vitals (pinned, bundled) in real Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from probes.browser import VITALS_JS, chromium_executable, run_browser
from probes.journeys import Journey
from probes.metrics import ProbeMetrics, render_single
from probes.model import ProbeResult
from probes.spec import BrowserJourney, BrowserSettings
from probes.webvitals import BINDING, PageVitals, library
from tests.fakes.server import serve

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_DIR = ROOT / "probes" / "webvitals"


def _has_chromium() -> bool:
    try:
        chromium_executable(BrowserSettings())
    except FileNotFoundError:
        return False
    return True


needs_chromium = pytest.mark.skipif(not _has_chromium(), reason="needs the chromium package")

SLOW_CLICK = """<!doctype html><html><head><title>slow</title></head>
<body style="margin:0;font-family:sans-serif">
<img src="/hero.svg" width="900" height="400" alt="hero">
<p id="state">ready</p>
<button id="slow" onclick="
  const end = performance.now() + 150;
  while (performance.now() < end) {}
  document.getElementById('state').textContent = 'clicked';">slow</button>
</body></html>"""

HERO_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="900" height="400">'
            '<rect width="900" height="400" fill="#36c"/></svg>')

# Two bursts of layout shifts 1.3 s apart (a session window closes after a 1 s gap): the
# largest window is burst B, the plain sum is A + B. The page posts the raw layout-shift
# entries it observed itself, so the test knows both numbers independently of web-vitals.
SHIFTS = """<!doctype html><html><head><title>shifts</title></head>
<body style="margin:0;font-family:sans-serif">
<div id="a"></div><div id="b"></div><div id="c"></div>
<div style="height:300px;background:#c63;font-size:40px">content that moves</div>
<p id="state">waiting</p>
<script>
const seen = [];
new PerformanceObserver((list) => list.getEntries().forEach((e) => seen.push(
  {value: e.value, startTime: e.startTime, hadRecentInput: e.hadRecentInput}))
).observe({type: 'layout-shift', buffered: true});
const grow = (id, px) => { document.getElementById(id).style.height = px + 'px'; };
addEventListener('load', () => requestAnimationFrame(() => requestAnimationFrame(() => {
  setTimeout(() => grow('a', 100), 50);                   // burst A
  setTimeout(() => grow('b', 150), 1350);                 // burst B, 1.3 s later
  setTimeout(() => grow('c', 150), 1450);
  setTimeout(async () => {
    await fetch('/shift-log', {method: 'POST', body: JSON.stringify(seen)});
    document.getElementById('state').textContent = 'done';
  }, 1900);
})));
</script>
</body></html>"""

STILL = """<!doctype html><html><head><title>still</title></head>
<body style="font-family:sans-serif"><h1>Nothing moves here</h1>
<p id="global"></p>
<script>document.getElementById('global').textContent = 'webVitals:' + typeof webVitals;</script>
</body></html>"""


class Site:
    """The test pages, and the layout-shift entries the shifts page posted."""

    def __init__(self) -> None:
        self.shift_log: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        pages = {"/slow": (SLOW_CLICK, "text/html"), "/hero.svg": (HERO_SVG, "image/svg+xml"),
                 "/shifts": (SHIFTS, "text/html"), "/still": (STILL, "text/html")}
        if scope["path"] == "/shift-log":
            self.shift_log = json.loads(body)
            content, kind, status = "", "text/plain", 204
        elif scope["path"] in pages:
            (content, kind), status = pages[scope["path"]], 200
        else:
            content, kind, status = "not found", "text/plain", 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind.encode())]})
        await send({"type": "http.response.body", "body": content.encode()})


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    app = Site()
    with serve(app) as url:
        yield app, url


def journey(tmp_path: Path, url: str, steps: list[dict[str, Any]]) -> ProbeResult:
    spec = BrowserJourney.model_validate({"steps": steps, "timeout_s": 10})
    settings = BrowserSettings(artifacts_dir=str(tmp_path / "artifacts"))
    result = asyncio.run(run_browser("vitals", spec, url, settings))
    assert result.success, result.error
    return result


def largest_session_window(entries: list[dict[str, Any]]) -> float:
    """CLS as defined by web.dev: the largest burst (gaps < 1 s, at most 5 s long)."""
    best = current = 0.0
    first = last = None
    for e in sorted(entries, key=lambda e: float(e["startTime"])):
        if e["hadRecentInput"]:
            continue
        t = float(e["startTime"])
        if first is None or last is None or t - last >= 1000 or t - first >= 5000:
            first, current = t, 0.0
        current += float(e["value"])
        last = t
        best = max(best, current)
    return best


@needs_chromium
def test_a_click_that_blocks_150_ms_gives_inp_kept_when_goto_leaves_the_page(
        site: tuple[Site, str], tmp_path: Path) -> None:
    _, url = site
    # goto right after the click: without the finalisation before leaving, the click's INP
    # (reported by web-vitals after the next paint and an idle callback) is lost
    result = journey(tmp_path, url, [{"goto": "/slow"}, {"click": "#slow"}, {"goto": "/still"}])
    vitals = result.web_vitals["/slow"]
    assert set(vitals) == {"ttfb", "fcp", "lcp", "cls", "inp"}, vitals
    assert 0.1 <= vitals["inp"] < 2.0, vitals
    assert 0 < vitals["ttfb"] <= vitals["fcp"] <= vitals["lcp"] < 10, vitals
    assert vitals["cls"] == 0.0


@needs_chromium
def test_cls_is_the_largest_session_window_not_the_sum_of_all_shifts(
        site: tuple[Site, str], tmp_path: Path) -> None:
    app, url = site
    # leaving with goto finalises the page, as hiding it does
    result = journey(tmp_path, url, [{"goto": "/shifts"}, {"expect_text": "done"},
                                     {"goto": "/still"}])
    entries = app.shift_log
    assert len(entries) >= 3, entries  # burst A, then burst B's two shifts
    window = largest_session_window(entries)
    plain_sum = sum(float(e["value"]) for e in entries)
    assert plain_sum - window > 0.01, (plain_sum, window)  # the page tells them apart
    assert result.web_vitals["/shifts"]["cls"] == pytest.approx(window, rel=1e-9, abs=1e-12)
    assert result.web_vitals["/still"]["cls"] == 0.0


@needs_chromium
def test_a_page_without_shifts_or_interactions_has_cls_0_and_no_inp(
        site: tuple[Site, str], tmp_path: Path) -> None:
    _, url = site
    # the library stays out of the page's globals
    result = journey(tmp_path, url, [{"goto": "/still"},
                                     {"expect_text": "webVitals:undefined"}])
    vitals = result.web_vitals["/still"]
    assert vitals["cls"] == 0.0
    assert "inp" not in vitals  # INP needs an interaction
    assert {"ttfb", "fcp", "lcp"} <= set(vitals), vitals


def test_the_bundled_library_is_the_pinned_web_vitals_release_byte_for_byte() -> None:
    bundle = json.loads((BUNDLE_DIR / "bundle.json").read_text())
    lock = json.loads((BUNDLE_DIR / "package-lock.json").read_text())
    pinned = json.loads((BUNDLE_DIR / "package.json").read_text())["dependencies"]["web-vitals"]
    data = (BUNDLE_DIR / "web-vitals.iife.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == bundle["sha256"]
    assert bundle["version"] == lock["packages"]["node_modules/web-vitals"]["version"] == pinned
    assert pinned[0].isdigit()  # an exact version, not a range
    assert library() == data.decode() and library() in VITALS_JS and BINDING in VITALS_JS
    assert "Apache License" in (BUNDLE_DIR / "LICENSE").read_text()


def test_the_bundled_library_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"].get("probes.webvitals", [])
    for name in ("web-vitals.iife.js", "LICENSE"):
        assert any(fnmatch(name, p) for p in patterns), (name, patterns)


def test_every_vital_inp_included_is_exposed_per_page_in_both_expositions() -> None:
    vitals = {"/slow": {"ttfb": 0.02, "fcp": 0.1, "lcp": 0.2, "inp": 0.176, "cls": 0.125}}
    result = ProbeResult("shop", 1.0, 2.0, True, "a" * 32, (), kind="browser",
                         web_vitals=vitals)
    metrics = ProbeMetrics([Journey("shop", BrowserJourney(steps=[{"goto": "/slow"}]),
                                    "http://127.0.0.1:1")], "ci")
    metrics.observe(result)
    for text in (metrics.render().decode(), render_single(result).decode()):
        for metric, value in vitals["/slow"].items():
            line = f'readygate_browser_web_vital{{journey="shop",metric="{metric}",page="/slow"}}'
            assert f"{line} {value}" in text, (line, text)
        assert "inp in seconds; cls unitless" in text


def _push(vitals: PageVitals, *payload: Any) -> None:
    vitals.on_binding({"name": BINDING, "payload": json.dumps(list(payload))})


def test_reports_are_kept_in_seconds_per_page_and_a_new_load_starts_afresh() -> None:
    vitals = PageVitals()
    _push(vitals, "/a", 1000.5, 1, "LCP", 250)
    _push(vitals, "/a", 1000.5, 2, "CLS", 0.125)
    _push(vitals, "/a", 1000.5, 3, "INP", 180)
    assert vitals.values == {"/a": {"lcp": 0.25, "cls": 0.125, "inp": 0.18}}
    _push(vitals, "/a", 2000.0, 1, "TTFB", 40)  # the same path loaded again
    _push(vitals, "/a", 1000.5, 4, "CLS", 0.5)  # a late report of the first load
    assert vitals.values == {"/a": {"ttfb": 0.04}}


def test_an_older_value_never_replaces_a_newer_one_of_the_same_load() -> None:
    vitals = PageVitals()
    vitals.snapshot(json.dumps(["/a", 1.0, {"INP": [5, 300], "CLS": [4, 0.2]}]))
    _push(vitals, "/a", 1.0, 3, "INP", 120)  # pushed before the snapshot, arrived after
    assert vitals.values == {"/a": {"inp": 0.3, "cls": 0.2}}


@pytest.mark.parametrize("payload", [
    "not json", '["/a", 1.0, 1, "FID", 10]', '["/a", 1.0, 1, "LCP", -1]',
    '["/a", 1.0, 1, "LCP", "fast"]', '["/a", 1.0, true, "LCP", 10]', '[1, 1.0, 1, "LCP", 10]',
    '["/a", 1.0, 1, "LCP", 1e999]', '{"path": "/a"}', "[]"])
def test_a_malformed_report_from_the_page_is_ignored(payload: str) -> None:
    vitals = PageVitals()
    vitals.on_binding({"name": BINDING, "payload": payload})
    vitals.on_binding({"name": "somethingElse", "payload": '["/a", 1.0, 1, "LCP", 10]'})
    vitals.snapshot(payload)
    assert vitals.values == {}
