"""Web Vitals of browser journeys, measured by Google's web-vitals library (pinned, bundled).

``web-vitals.iife.js`` is web-vitals' own ``dist/web-vitals.iife.js`` at the version in
``package-lock.json`` (``bundle.json`` records it and its sha256; ``scripts/build-web-vitals.sh``
re-creates and checks it), so installs need no npm. :func:`init_script` runs it in every page
before the page's scripts, with ``reportAllChanges`` so each new value is sent at once over a
CDP binding; :data:`FINALISE_JS` makes web-vitals report its final values, as it does when a
page is hidden, before readygate leaves a page with ``goto`` and when the journey ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from importlib import resources
from typing import Any

BINDING = "__readygateVital"
"""The CDP binding (``Runtime.addBinding``) the page sends each reported value through."""

NAMES = {"TTFB": "ttfb", "FCP": "fcp", "LCP": "lcp", "CLS": "cls", "INP": "inp"}
"""web-vitals' metric names -> readygate's (``lcp``... in seconds, ``cls`` unitless)."""

LIBRARY_FILE = "web-vitals.iife.js"

# Wrapped in a function so the library's `var webVitals` stays out of the page's globals.
# Only the top frame reports: iframes are parts of the page, not pages of the journey.
# `doc` (the document's time origin) tells two loads of the same path apart; `seq`
# orders the values, which arrive both pushed (binding) and pulled (FINALISE_JS).
_GLUE = """
(() => {
%s
if (window !== window.top) return;
const path = location.pathname, doc = performance.timeOrigin, latest = {};
let seq = 0;
const keep = (metric) => {
  seq += 1;
  latest[metric.name] = [seq, metric.value];
  const send = window.%s;
  if (typeof send === 'function') {
    try { send(JSON.stringify([path, doc, seq, metric.name, metric.value])); } catch (e) {}
  }
};
Object.defineProperty(window, '__readygateVitals',
                      {value: () => JSON.stringify([path, doc, latest])});
const opts = {reportAllChanges: true};
for (const on of [webVitals.onTTFB, webVitals.onFCP, webVitals.onLCP, webVitals.onCLS,
                  webVitals.onINP]) {
  on(keep, opts);
}
})();
"""

FINALISE_JS = """
async () => {
  // Let a frame be presented after the last interaction so its event timing entry exists
  // (bounded: frames may be throttled), then fire the `visibilitychange` to hidden that a
  // closing tab or a navigation fires: web-vitals takes its pending records and reports
  // CLS and INP. Bindings called while a page unloads never arrive, hence this.
  // web-vitals starts measuring CLS only at the first contentful paint, and a hide before
  // it reports no CLS at all: on a busy machine a page can be loaded but not yet painted,
  // so wait for that paint first (bounded: a page with no content never paints).
  const painted = () => performance.getEntriesByName('first-contentful-paint').length > 0;
  for (let waited = 0; !painted() && waited < 1500; waited += 50) {
    await new Promise((done) => setTimeout(done, 50));
  }
  await new Promise((done) => {
    requestAnimationFrame(() => requestAnimationFrame(done));
    setTimeout(done, 200);
  });
  // the paint's PerformanceObserver callbacks (web-vitals' own) run in a task after it
  await new Promise((done) => setTimeout(done, 0));
  if (typeof window.__readygateVitals !== 'function') return null;
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  try {
    document.dispatchEvent(new Event('visibilitychange', {bubbles: true}));
  } finally {
    delete document.visibilityState;
  }
  return window.__readygateVitals();
}
"""


@functools.cache
def library() -> str:
    """The bundled web-vitals IIFE (defines ``webVitals``)."""
    return resources.files(__name__).joinpath(LIBRARY_FILE).read_text(encoding="utf-8")


@functools.cache
def init_script() -> str:
    """The script run in every page: web-vitals plus readygate's reporting glue."""
    return _GLUE % (library(), BINDING)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


class PageVitals:
    """The newest value of each Web Vital per page path, from the page's reports."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}
        """Page path -> metric -> value (seconds; ``cls`` unitless): the result's shape."""
        self._doc: dict[str, float] = {}
        self._seq: dict[tuple[str, str], int] = {}

    def take(self, path: Any, doc: Any, seq: Any, name: Any, value: Any) -> None:
        """Keep one reported value; a page's malformed or stale report is ignored."""
        metric = NAMES.get(name) if isinstance(name, str) else None
        number, origin = _number(value), _number(doc)
        if (metric is None or number is None or origin is None or not isinstance(path, str)
                or isinstance(seq, bool) or not isinstance(seq, int)):
            return
        known = self._doc.get(path)
        if known is None or origin > known:  # a new load of this path starts afresh
            self._doc[path] = origin
            self.values[path] = {}
            for key in [k for k in self._seq if k[0] == path]:
                del self._seq[key]
        elif origin < known:  # a late report of an earlier load
            return
        if seq <= self._seq.get((path, metric), 0):
            return
        self._seq[(path, metric)] = seq
        self.values[path][metric] = number if metric == "cls" else number / 1000.0

    def on_binding(self, event: dict[str, Any]) -> None:
        """CDP ``Runtime.bindingCalled``: one value pushed by the page."""
        if event.get("name") != BINDING:
            return
        try:
            path, doc, seq, name, value = json.loads(str(event.get("payload")))
        except (ValueError, TypeError):
            return
        self.take(path, doc, seq, name, value)

    def snapshot(self, text: Any) -> None:
        """The page's latest values as :data:`FINALISE_JS` returns them."""
        try:
            path, doc, latest = json.loads(str(text))
            items = [(name, seq, value) for name, (seq, value) in latest.items()]
        except (ValueError, TypeError, AttributeError):
            return
        for name, seq, value in items:
            self.take(path, doc, seq, name, value)


async def watch(context: Any, page: Any, vitals: PageVitals) -> None:
    """Receive the page's reports in ``vitals`` (a CDP session: Chromium only)."""
    cdp = await context.new_cdp_session(page)
    cdp.on("Runtime.bindingCalled", vitals.on_binding)
    # Both at once (Chromium runs a session's commands in order): one round trip less per run.
    await asyncio.gather(cdp.send("Runtime.enable"),
                         cdp.send("Runtime.addBinding", {"name": BINDING}))


async def finalise(page: Any, vitals: PageVitals, timeout_s: float = 5.0) -> None:
    """Have web-vitals report the page's final values; a page that cannot answer is skipped."""
    try:
        text = await asyncio.wait_for(page.evaluate(FINALISE_JS), timeout_s)
    except Exception:
        return  # a crashed or hung page: the values it pushed before are kept
    if text is not None:
        vitals.snapshot(text)
