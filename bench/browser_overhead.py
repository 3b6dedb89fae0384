"""Browser journey overhead: the demo login through readygate vs a bare Playwright script.

    .venv/bin/python -m bench.browser_overhead [--runs 10] [--breakdown]

Both drive the same Chromium (/usr/bin/chromium, never a downloaded one) with the same
launch flags against the same demo web service (started here with its storage and sink),
alternating, each run a fresh browser launch as readygate does it. readygate's figure is
``run_browser`` on ``browser-login`` from demo/journeys-examples.yaml; the bare script does
the same six steps and nothing else. ``--breakdown`` also times the bare script plus each
thing readygate adds (Playwright tracing, same-origin route interception for the
traceparent header, the Web Vitals init script), to show where the difference goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, python, start_ready
from core.procs import ManagedProcess
from probes.browser import LAUNCH_ARGS, VITALS_JS, run_browser
from probes.spec import BrowserSettings, parse_journeys

CHROMIUM = "/usr/bin/chromium"
EXAMPLE = ROOT / "demo" / "journeys-examples.yaml"


async def bare_login(url: str, user: str, password: str, *, tracing: bool = False,
                     route: bool = False, vitals: bool = False) -> float:
    """The login journey's steps in plain Playwright; returns wall seconds."""
    from playwright.async_api import async_playwright

    t0 = time.perf_counter()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS,
                                           headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            if vitals:
                await context.add_init_script(VITALS_JS)
            if route:
                async def add_header(r: Any) -> None:
                    await r.continue_(headers={**r.request.headers, "x-bench": "1"})
                await context.route(lambda u: u.startswith(url), add_header)
            if tracing:
                await context.tracing.start(screenshots=True, snapshots=True)
            page = await context.new_page()
            await page.goto(url + "/login", wait_until="load")
            await page.fill("#username", user)
            await page.fill("#password", password)
            await page.click("#login")
            await page.wait_for_load_state("load")
            await page.wait_for_url(re.compile("/upload$"))
            await page.get_by_text(f"Logged in as {user}").first.wait_for(state="visible")
            if tracing:
                await context.tracing.stop()
            await context.close()
        finally:
            await browser.close()
    return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> int:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found: run `bash scripts/install-os-deps.sh`")
    password = "pw-" + secrets.token_urlsafe(12)
    os.environ["DEMO_PASSWORD"] = password  # the example file reads ${DEMO_PASSWORD}
    spec = parse_journeys(EXAMPLE.read_text(), str(EXAMPLE)).browser_journeys["browser-login"]
    variants: dict[str, list[float]] = {"readygate": [], "bare": []}
    if args.breakdown:
        variants.update({"bare+tracing": [], "bare+route": [], "bare+vitals": []})
    with tempfile.TemporaryDirectory(prefix="rg-bench-browser-") as tmp_name:
        tmp = Path(tmp_name)
        settings = BrowserSettings(executable_path=CHROMIUM, artifacts_dir=str(tmp / "art"))
        started: list[ManagedProcess] = []
        try:
            sink = await start_ready("sink", python("sink.server", "--db", str(tmp / "s.db")), tmp)
            started.append(sink)
            assert sink.url is not None
            storage = await start_ready("storage", python("demo.storage", "--sink-url",
                                                          sink.url), tmp)
            started.append(storage)
            assert storage.url is not None
            web = await start_ready("web", python("demo.web", "--storage-url", storage.url,
                                                  "--sink-url", sink.url), tmp,
                                    env={"DEMO_PASSWORD": password, "DEMO_USER": "demo"})
            started.append(web)
            url = web.url
            assert url is not None

            async def readygate() -> float:
                t0 = time.perf_counter()
                result = await run_browser("browser-login", spec, url, settings)
                if not result.success:
                    raise SystemExit(f"readygate's login journey failed: {result.error}")
                return time.perf_counter() - t0

            runners: dict[str, Callable[[], Awaitable[float]]] = {
                "readygate": readygate,
                "bare": lambda: bare_login(url, "demo", password),
                "bare+tracing": lambda: bare_login(url, "demo", password, tracing=True),
                "bare+route": lambda: bare_login(url, "demo", password, route=True),
                "bare+vitals": lambda: bare_login(url, "demo", password, vitals=True),
            }
            await readygate()  # warm the page cache and the web service once, unmeasured
            await bare_login(url, "demo", password)
            for i in range(args.runs):
                names = list(variants)
                if i % 2:
                    names.reverse()  # alternate who goes first
                for name in names:
                    variants[name].append(await runners[name]())
                print(f"run {i + 1:>2}: " + "  ".join(f"{n} {variants[n][-1]:.3f}s"
                                                      for n in variants))
        finally:
            for proc in reversed(started):
                proc.stop()
    bare = statistics.median(variants["bare"])
    print(f"\nmedian over {args.runs} runs (each a fresh Chromium launch + login):")
    for name, times in variants.items():
        med = statistics.median(times)
        print(f"  {name:<13} {med:.3f}s  {med / bare:.2f}x")
    pair = statistics.median(r / b for r, b in zip(variants["readygate"], variants["bare"],
                                                    strict=True))
    ratio = statistics.median(variants["readygate"]) / bare
    print(f"readygate / bare: {ratio:.2f}x (median of per-run ratios {pair:.2f}x; goal <= 1.10x): "
          f"{'met' if ratio <= 1.1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the bare script plus each thing readygate adds")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
