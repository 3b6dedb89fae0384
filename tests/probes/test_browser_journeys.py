"""Browser journeys in the real Chromium against the demo web's HTML pages."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from probes.browser import run_browser, secret_variants
from probes.model import ProbeResult
from probes.spec import BrowserJourney, BrowserSettings, parse_journeys
from tests.fixtures.demo_system import Demo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "demo" / "journeys-examples.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium package"),
]


def journeys(password: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, BrowserJourney]:
    monkeypatch.setenv("DEMO_PASSWORD", password)
    return dict(parse_journeys(EXAMPLE.read_text(), str(EXAMPLE)).browser_journeys)


def run(name: str, spec: BrowserJourney, url: str, artifacts: Path) -> ProbeResult:
    settings = BrowserSettings(artifacts_dir=str(artifacts))
    return asyncio.run(run_browser(name, spec, url, settings))


def test_login_and_upload_pass_in_chromium_with_web_vitals_and_the_trace_id(
        demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = demo.web().url
    assert url is not None
    specs = journeys(demo.password, monkeypatch)
    login = run("browser-login", specs["browser-login"], url, tmp_path)
    assert login.success, login.error
    vitals = login.web_vitals["/login"]
    assert {"fcp", "lcp", "ttfb", "cls"} <= set(vitals), vitals
    assert 0 < vitals["ttfb"] <= vitals["fcp"] < 10
    upload = run("browser-upload", specs["browser-upload"], url, tmp_path)
    assert upload.success, upload.error
    assert upload.steps[-1].name == "checksum" and upload.steps[-1].ok
    assert list(tmp_path.iterdir()) == []  # nothing is kept for a pass
    # the web service logged the browser's requests under readygate's trace id
    logs = demo.sink_logs(trace_id=upload.trace_id)
    assert any(line.get("service") == "web" or "web" in json.dumps(line) for line in logs)


def test_a_wrong_password_fails_precisely_and_keeps_scrubbed_artifacts(
        demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = demo.web().url
    assert url is not None
    wrong = "Wr0ng-browser-Pa55+word/&"
    spec = journeys(wrong, monkeypatch)["browser-login"]
    result = run("browser-login", spec, url, tmp_path)
    assert not result.success
    assert result.error is not None
    assert result.error.startswith("expect_url 5: expect_url: URL ")
    assert "page /login shows 'Login failed': 'Login failed'" in result.error
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(k.rsplit(".", 1)[-1] for k in kept) == ["json", "png", "zip"]
    assert all(k.startswith("browser-login-") for k in kept)
    # the secret is in no artifact: not in the sidecar, not in any entry of the trace zip
    blobs = [p.read_bytes() for p in tmp_path.iterdir()]
    with zipfile.ZipFile(next(tmp_path.glob("*.zip"))) as z:
        blobs += [z.read(n) for n in z.namelist()]
        assert any(n.endswith(".trace") for n in z.namelist())
    for variant in secret_variants({wrong}):
        assert not any(variant in blob for blob in blobs), variant
    # Playwright did record the typed password and the form body: they were masked
    assert any(b"***" in blob for blob in blobs)
    assert wrong not in json.dumps(result.to_dict())


def test_upload_fails_precisely_when_storage_is_down(demo: Demo, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    demo.dead_storage()
    url = demo.web(storage="storage-dead").url
    assert url is not None
    result = run("browser-upload", journeys(demo.password, monkeypatch)["browser-upload"],
                 url, tmp_path)
    assert result.error is not None
    assert result.error.startswith("expect_selector 7: expect_selector: no visible #upload-id")
    assert "page /upload shows 'Upload failed': 'Upload failed'" in result.error


def test_probe_run_of_browser_journeys_leaves_no_secret_in_any_output(
        demo: Demo, tmp_path: Path) -> None:
    url = demo.web().url
    assert url is not None
    wrong = "An0ther-wrong-pw-for-the-scan"
    journeys_file = tmp_path / "j.yaml"
    # the wrong password fails at expect_url, after the journey's timeout: 3 s, not 10
    journeys_file.write_text(EXAMPLE.read_text().replace(
        "browser_journeys:", f"browser:\n  artifacts_dir: {tmp_path / 'art'}\n"
                             "browser_journeys:").replace("timeout_s: 10", "timeout_s: 3"))
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\ntarget: {{services: {{web: '{url}'}}}}\n")
    outputs = []
    for extra in ([], ["--json"]):
        out = subprocess.run([sys.executable, "-m", "readygate.cli", "probe", "run", "-c",
                              str(config), "-j", str(journeys_file), "browser-login", *extra],
                             capture_output=True, text=True, timeout=120, cwd=ROOT,
                             env={"PATH": "/usr/bin:/bin", "DEMO_PASSWORD": wrong,
                                  "HOME": str(tmp_path)})
        assert out.returncode == 1, out.stderr
        outputs.append(out.stdout + out.stderr)
    assert "artifact:" in outputs[0]
    artifacts = list((tmp_path / "art").iterdir())
    assert len(artifacts) == 6  # two failed runs: png, json, trace zip each
    for path in artifacts:
        outputs.append(path.name)
        outputs.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                outputs += [z.read(n).decode("latin-1") for n in z.namelist()]
    for variant in secret_variants({wrong}):
        assert not any(variant.decode() in text for text in outputs), variant
