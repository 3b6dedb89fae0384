"""Browser journeys: Playwright driving the system's Chromium, with Web Vitals and artifacts.

Imported only when a browser journey runs (Playwright is heavy and starts a driver
process). Every request the browser sends to the target's origin carries readygate's
``traceparent`` and ``X-Request-ID`` (added by route interception, so third-party hosts
never see them). On failure a screenshot, a JSON sidecar and a Playwright trace zip are
kept in the artifacts directory; secrets are scrubbed from the trace zip before it is
written, because Playwright records typed values and request bodies.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from core.redact import MASK
from probes.correlation import Correlation
from probes.http import RunState, Undefined, content_bytes
from probes.model import ProbeResult, StepResult
from probes.spec import BrowserJourney, BrowserSettings, BrowserStep
from probes.webvitals import PageVitals, finalise, init_script, watch

# From FIELD-NOTES: without the background-networking flags Chromium keeps calling home.
LAUNCH_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]

CHROMIUM_ENV = "READYGATE_CHROMIUM"
"""Overrides ``browser.executable_path``: a Chromium binary, or ``playwright``."""


def chromium_executable(settings: BrowserSettings,
                        environ: Mapping[str, str] | None = None) -> str | None:
    """The Chromium to launch: ``$READYGATE_CHROMIUM``, else ``browser.executable_path``.

    The machine knows where its browser is, so the environment wins over the journeys file.
    ``playwright`` means Playwright's own browser (``python -m playwright install chromium``,
    as on GitHub-hosted Ubuntu runners, which have no Debian chromium): None for Playwright.
    """
    env = os.environ if environ is None else environ
    value = env.get(CHROMIUM_ENV, "").strip() or settings.executable_path
    if value == "playwright":
        return None
    if not Path(value).is_file():
        raise FileNotFoundError(f"no Chromium at {value}: install the chromium package, or set "
                                f"{CHROMIUM_ENV} to a Chromium binary or to 'playwright'")
    return value


# Runs in every page before its own scripts: Google's web-vitals (probes/webvitals/) and the
# glue that sends each value it reports to readygate.
VITALS_JS = init_script()


def secret_variants(values: set[str]) -> list[bytes]:
    """A secret as it may appear in recorded traffic: raw, URL-encoded, JSON-escaped."""
    out: set[bytes] = set()
    for value in values:
        if len(value) < 4:
            continue
        for form in (value, urllib.parse.quote_plus(value), urllib.parse.quote(value, safe=""),
                     json.dumps(value)[1:-1]):
            out.add(form.encode())
    return sorted(out, key=len, reverse=True)


def scrub_zip(data: bytes, secrets: set[str]) -> bytes:
    """The zip with every secret (in its usual encodings) replaced by ``***`` in every entry."""
    variants = secret_variants(secrets)
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            for variant in variants:
                content = content.replace(variant, MASK.encode())
            dst.writestr(info.filename, content)
    return buf.getvalue()


class BrowserRun:
    """One run of one browser journey."""

    def __init__(self, name: str, spec: BrowserJourney, base_url: str,
                 settings: BrowserSettings, files_dir: Path | None) -> None:
        self.name = name
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.files_dir = files_dir
        self.corr = Correlation(name)
        variables = {k: str(v) for k, v in spec.vars.items()}
        variables.update({k: v.get_secret_value() for k, v in spec.secrets.items()})
        variables.update(run_id=self.corr.trace_id[:16], trace_id=self.corr.trace_id,
                         base_url=self.base_url)
        self.state = RunState(variables, {v.get_secret_value() for v in spec.secrets.values()})
        self.steps: list[StepResult] = []
        self._vitals = PageVitals()
        self.vitals = self._vitals.values
        self.request_ids: list[str] = []
        self.origin = httpx.URL(self.base_url)

    def _same_origin(self, url: str) -> bool:
        u = httpx.URL(url)
        return (u.scheme, u.host, u.port) == (self.origin.scheme, self.origin.host,
                                              self.origin.port)

    async def _route(self, route: Any) -> None:
        headers, request_id = self.corr.headers()
        self.request_ids.append(request_id)
        merged = {**route.request.headers, "traceparent": headers["traceparent"],
                  "x-request-id": request_id}
        await route.continue_(headers=merged)

    async def _leave(self, page: Any) -> None:
        """Before ``goto`` leaves a loaded page: its final Web Vitals, as on a real hide."""
        if page.url != "about:blank":
            await finalise(page, self._vitals)

    async def _do(self, page: Any, step: BrowserStep, timeout_ms: float) -> int | None:
        """Perform one step; return an HTTP status for navigations; raise on failure."""
        render = self.state.render
        if step.goto is not None:
            target = render(step.goto)
            url = target if re.match(r"^https?://", target) else \
                self.base_url + "/" + target.lstrip("/")
            resp = await page.goto(url, wait_until="load", timeout=timeout_ms)
            status = None if resp is None else int(resp.status)
            if status is not None and status >= 400:
                raise AssertionError(f"answered {status}")
            return status
        if step.fill is not None:
            await page.fill(step.fill.selector, render(step.fill.value), timeout=timeout_ms)
            return None
        if step.click is not None:
            await page.click(step.click, timeout=timeout_ms)
            await page.wait_for_load_state("load", timeout=timeout_ms)
            return None
        if step.set_input_files is not None:
            files = step.set_input_files
            data = content_bytes(files.content, self.state, self.files_dir)
            self.state.variables["request_sha256"] = hashlib.sha256(data).hexdigest()
            self.state.variables["request_size"] = str(len(data))
            await page.set_input_files(files.selector, files={
                "name": files.content.filename or "readygate-probe.bin",
                "mimeType": files.content.content_type, "buffer": data}, timeout=timeout_ms)
            return None
        if step.expect_text is not None:
            text = render(step.expect_text)
            try:
                await page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_ms)
            except Exception:
                raise AssertionError(f"text {text!r} not visible within "
                                     f"{timeout_ms / 1000:g}s; {await self._near_miss(page)}"
                                     ) from None
            return None
        if step.expect_selector is not None:
            try:
                await page.wait_for_selector(step.expect_selector, state="visible",
                                             timeout=timeout_ms)
            except Exception:
                raise AssertionError(f"no visible {step.expect_selector} within "
                                     f"{timeout_ms / 1000:g}s; {await self._near_miss(page)}"
                                     ) from None
            return None
        assert step.expect_url is not None
        pattern = re.compile(render(step.expect_url))
        try:
            await page.wait_for_url(pattern, timeout=timeout_ms)
        except Exception:
            raise AssertionError(f"URL {page.url} does not match /{pattern.pattern}/; "
                                 f"{await self._near_miss(page)}") from None
        return None

    async def _near_miss(self, page: Any) -> str:
        """What the page shows instead: its title and first error or heading text."""
        try:
            title = await page.title()
            shown = await page.evaluate(
                "() => (document.querySelector('.error, [role=alert], h1') || {}).innerText"
                " || ''")
        except Exception:
            return "page unavailable"
        path = httpx.URL(page.url).path
        return f"page {path} shows {title!r}: {str(shown)[:120]!r}"

    async def run(self) -> ProbeResult:
        """Launch Chromium, run the steps, keep artifacts on failure, always close."""
        from playwright.async_api import async_playwright

        started = time.time()
        t0 = time.perf_counter()
        error: str | None = None
        artifacts: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_executable(self.settings),
                                               args=LAUNCH_ARGS, headless=True)
            try:
                width, height = self.settings.viewport
                context = await browser.new_context(
                    viewport={"width": width, "height": height},
                    user_agent=f"Mozilla/5.0 (X11; Linux x86_64) Chrome/{browser.version} "
                               f"{self.corr.user_agent}")
                await context.add_init_script(VITALS_JS)
                await context.route(lambda url: self._same_origin(url), self._route)
                await context.tracing.start(screenshots=True, snapshots=True)
                page = await context.new_page()
                await watch(context, page, self._vitals)
                # The probe is "sent" when its first step starts: checks that follow it
                # (`probe_sent`) must not charge the service for Chromium's start-up, which
                # takes seconds on a busy machine.
                started, t0 = time.time(), time.perf_counter()
                error = await self._steps(page)
                await finalise(page, self._vitals)
                if error is not None:
                    artifacts = await self._keep_artifacts(page, context, error, started)
                else:
                    await context.tracing.stop()
                await context.close()
            finally:
                await browser.close()
        return ProbeResult(journey=self.name, started_at=started,
                           duration_s=time.perf_counter() - t0, success=error is None,
                           trace_id=self.corr.trace_id, steps=tuple(self.steps), error=error,
                           kind="browser", target=self.state.scrub(self.base_url),
                           user_agent=self.corr.user_agent, web_vitals=self.vitals,
                           artifacts=tuple(artifacts))

    async def _steps(self, page: Any) -> str | None:
        for index, step in enumerate(self.spec.steps):
            name = step.display_name(index)
            timeout_ms = (step.timeout_s or self.spec.timeout_s) * 1000
            if step.goto is not None:
                await self._leave(page)  # before the clock: not part of the step's time
            t = time.perf_counter()
            before = len(self.request_ids)
            try:
                status = await self._do(page, step, timeout_ms)
                problem = None
            except Undefined as exc:
                status, problem = None, f"variable '{exc}' has no value"
            except AssertionError as exc:
                status, problem = None, str(exc)
            except Exception as exc:
                status = None
                problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            where = f"{name}: {step.action()}"
            error = None if problem is None else self.state.scrub(f"{where}: {problem}")
            request_id = self.request_ids[before] if len(self.request_ids) > before else ""
            self.steps.append(StepResult(name, step.action(), self.state.scrub(page.url), status,
                                         time.perf_counter() - t, request_id, error is None,
                                         error))
            if error is not None:
                return error
        return None

    async def _keep_artifacts(self, page: Any, context: Any, error: str,
                              started: float) -> list[str]:
        out_dir = Path(self.settings.artifacts_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-" \
               f"{self.corr.trace_id[:12]}"
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
        shot, trace_zip, sidecar = (out_dir / f"{stem}.png", out_dir / f"{stem}-trace.zip",
                                    out_dir / f"{stem}.json")
        kept: list[str] = []
        try:
            await page.screenshot(path=str(shot), full_page=True)
            kept.append(str(shot))
        except Exception:
            pass
        # Playwright writes the raw trace (typed values, request bodies) to a private
        # temporary dir; only the scrubbed copy reaches the artifacts dir.
        with tempfile.TemporaryDirectory(prefix="readygate-trace-") as tmp:
            raw = Path(tmp) / "trace.zip"
            await context.tracing.stop(path=str(raw))
            trace_zip.write_bytes(scrub_zip(raw.read_bytes(), self.state.secret_values))
        kept.append(str(trace_zip))
        sidecar.write_text(json.dumps({
            "journey": self.name, "trace_id": self.corr.trace_id, "error": error,
            "url": self.state.scrub(page.url), "steps": [s.to_dict() for s in self.steps],
            "web_vitals": self.vitals, "screenshot": shot.name, "trace": trace_zip.name},
            indent=2) + "\n", encoding="utf-8")
        kept.append(str(sidecar))
        return kept


async def run_browser(name: str, spec: BrowserJourney, base_url: str,
                      settings: BrowserSettings, files_dir: Path | None = None) -> ProbeResult:
    """Run a browser journey once; a failing target is a failed result, never an exception."""
    run = BrowserRun(name, spec, base_url, settings, files_dir)
    started = time.time()
    try:
        return await run.run()
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        error = run.state.scrub(f"{name}: browser failed: {type(exc).__name__}: {detail}")
        return ProbeResult(journey=name, started_at=started, duration_s=time.time() - started,
                           success=False, trace_id=run.corr.trace_id, steps=tuple(run.steps),
                           error=error, kind="browser", target=run.state.scrub(run.base_url),
                           user_agent=run.corr.user_agent, web_vitals=run.vitals)
