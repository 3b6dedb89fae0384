"""Which Chromium a browser journey launches: READYGATE_CHROMIUM over browser.executable_path."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from probes.browser import CHROMIUM_ENV, chromium_executable, run_browser
from probes.spec import BrowserJourney, BrowserSettings
from tests.fakes.server import serve

SYSTEM_CHROMIUM = "/usr/bin/chromium"


def test_the_environment_wins_over_the_journeys_file(tmp_path: Path) -> None:
    browser = tmp_path / "chrome"
    browser.write_text("#!/bin/sh\n")
    settings = BrowserSettings(executable_path="/nowhere/chromium")
    assert chromium_executable(settings, {CHROMIUM_ENV: str(browser)}) == str(browser)
    assert chromium_executable(settings, {CHROMIUM_ENV: "playwright"}) is None
    assert chromium_executable(BrowserSettings(executable_path=str(browser)), {}) == str(browser)
    assert chromium_executable(BrowserSettings(executable_path=str(browser)),
                               {CHROMIUM_ENV: "  "}) == str(browser)  # blank is unset
    assert chromium_executable(BrowserSettings(executable_path="playwright"), {}) is None


def test_a_missing_browser_says_how_to_get_one() -> None:
    with pytest.raises(FileNotFoundError) as err:
        chromium_executable(BrowserSettings(executable_path="/nowhere/chromium"), {})
    assert str(err.value) == ("no Chromium at /nowhere/chromium: install the chromium package, "
                              "or set READYGATE_CHROMIUM to a Chromium binary or to "
                              "'playwright'")


async def _page(request: Request) -> Response:
    return HTMLResponse("<html><head><title>t</title></head><body><h1>hello</h1></body></html>")


@pytest.mark.skipif(shutil.which(SYSTEM_CHROMIUM) is None, reason="needs the chromium package")
def test_a_journey_runs_in_the_browser_the_environment_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BrowserJourney.model_validate(
        {"steps": [{"goto": "/"}, {"expect_text": "hello"}]})
    settings = BrowserSettings(executable_path="/nowhere/chromium",
                               artifacts_dir=str(tmp_path / "artifacts"))
    with serve(Starlette(routes=[Route("/", _page)])) as url:
        failed = asyncio.run(run_browser("hello", spec, url, settings))
        assert not failed.success
        assert failed.error is not None and "no Chromium at /nowhere/chromium" in failed.error
        monkeypatch.setenv(CHROMIUM_ENV, SYSTEM_CHROMIUM)
        passed = asyncio.run(run_browser("hello", spec, url, settings))
    assert passed.success, passed.error
