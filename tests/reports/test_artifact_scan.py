"""A real gate run against a service that leaks its password in every encoding it can (the
demo's web with every leak_password* knob) finds the leak, and no artifact of the run holds
the password in any encoding: every file under --out and the history directory, the
console output, the Slack and webhook payloads, and the service's log copied by the writer.

The password holds a quote, a backslash, non-ASCII, ``&``, ``%``, ``+`` and a space: the
characters a serialiser escapes, which an after-the-fact text scrub used to miss.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from core import redact
from core.procs import ProcessSet, start_python_service
from core.redact import encodings, find_leaks
from reports.writer import write_text_artifact
from tests.reports.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
KNOBS = ["leak_password", "leak_password_url", "leak_password_basic", "leak_password_json",
         "leak_password_split", "leak_password_startup"]


@dataclass
class Leaky:
    """A sink, storage and a web that leaks its password; the password and the web's log."""

    password: str
    web: str
    sink: str
    web_log: Path


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leaky]:
    tmp = tmp_path_factory.mktemp("leaky")
    password = 'pä"ss\\wörd&%+ x' + secrets.token_hex(3)
    procs = ProcessSet()

    async def start() -> Leaky:
        sink = await start_python_service(procs, "sink", "sink.server",
                                          ["--db", str(tmp / "sink.db")], log_dir=tmp)
        assert sink.url is not None
        storage = await start_python_service(procs, "storage", "demo.storage",
                                             ["--sink-url", sink.url], log_dir=tmp)
        assert storage.url is not None
        web = await start_python_service(
            procs, "web", "demo.web", ["--storage-url", storage.url, "--sink-url", sink.url],
            env={"DEMO_PASSWORD": password, "DEMO_USER": "demo",
                 "DEMO_SABOTAGE": ",".join(KNOBS)}, log_dir=tmp)
        assert web.url is not None
        return Leaky(password, web.url, sink.url, tmp / "web.log")

    try:
        yield asyncio.run(start())
    finally:
        procs.stop_all()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    try:
        yield fake
    finally:
        fake.close()


def config(leaky: Leaky, slack: FakeSlack) -> dict[str, object]:
    return {
        "version": 1,
        "target": {"name": "leaky", "services": {"web": leaky.web},
                   "credentials": {"username": "demo", "password": "${RG_ARTIFACT_PW}"}},
        "backends": {"sink": {"url": leaky.sink}},
        "probes": {"journeys_file": str(ROOT / "demo" / "journeys.yaml"),
                   "journeys": ["login"], "interval_s": 0.3},
        "gates": {"leaky": {
            "scenario": {"baseline": {"min_duration_s": 2, "max_duration_s": 30}},
            "checks": [
                {"signal": "logs", "phase": "baseline", "journey": "login",
                 "services": ["web"], "deadline_s": 10},
                {"signal": "secret_leak", "phase": "baseline", "journey": "login",
                 "deadline_s": 10}]}},
        "notify": {"slack": {"token": "${RG_ARTIFACT_SLACK}", "channel": "#ci",
                             "base_url": slack.url + "/api/"},
                   "webhook": {"url": slack.url + "/hook"}},
    }


def leaks_in(texts: dict[str, str], secret: str) -> dict[str, list[str]]:
    """Artifact -> how the secret shows in it: any encoding the canary knows, and (not
    trusting the canary alone) each named encoding as a plain substring."""
    found: dict[str, list[str]] = {}
    forms = {name: form for name, form in encodings(secret, "demo").items()
             if name not in ("basic",)}  # "Basic " + the blob: the blob is checked alone
    for name, text in texts.items():
        hits = find_leaks(text, [secret])
        hits += [f"literal {form_name}" for form_name, form in forms.items() if form in text]
        if hits:
            found[name] = hits
    return found


def test_no_artifact_holds_the_password_in_any_encoding(
        tmp_path: Path, leaky: Leaky, slack: FakeSlack) -> None:
    config_path = tmp_path / "readygate.yaml"
    config_path.write_text(yaml.safe_dump(config(leaky, slack), allow_unicode=True))
    out, history = tmp_path / "out", tmp_path / "history"
    env = {**os.environ, "RG_ARTIFACT_PW": leaky.password, "RG_ARTIFACT_SLACK": slack.token}
    proc = subprocess.run([sys.executable, "-m", "readygate", "run", "leaky",
                           "--config", str(config_path), "--out", str(out),
                           "--history", str(history)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]

    # the leak is real: the service's own log holds the password in several encodings
    raw_log = leaky.web_log.read_text(encoding="utf-8")
    assert find_leaks(raw_log, [leaky.password])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    leak = next(c for c in report["checks"] if c["signal"] == "secret_leak")
    assert leak["status"] == "fail", leak["message"]
    for how in ("url-encoded", "base64", "escaped"):
        assert how in leak["message"], leak["message"]
    logs = next(c for c in report["checks"] if c["signal"] == "logs")
    assert logs["status"] == "pass" and logs["evidence"]["sample"]

    # the writer's copy of the service's log (as `readygate demo` copies it)
    redact.register(leaky.password)
    write_text_artifact(out / "logs", "web.log", raw_log)

    artifacts = {"stdout": proc.stdout, "stderr": proc.stderr}
    files = [p for d in (out, history) for p in d.rglob("*") if p.is_file()]
    artifacts.update({str(p.relative_to(tmp_path)): p.read_text(encoding="utf-8")
                      for p in files})
    artifacts.update({f"{r.path} request {i}": r.raw + json.dumps(
        {k: v for k, v in r.headers.items() if k.lower() != "authorization"})
        for i, r in enumerate(slack.received)})
    names = set(artifacts)
    assert {"out/report.json", "out/report.md", "out/report.html", "out/junit.xml",
            "out/logs/web.log"} <= names, names
    assert any(n.startswith("history/") for n in names), names
    assert any(n.startswith("/api/chat.postMessage") for n in names), names
    assert any(n.startswith("/hook") for n in names), names
    assert leaks_in(artifacts, leaky.password) == {}
    # the copied log kept its lines (masked, not dropped)
    assert raw_log.count("\n") == artifacts["out/logs/web.log"].count("\n")
    assert "***" in artifacts["out/logs/web.log"]


def test_every_writer_masks_values_before_serialising(tmp_path: Path) -> None:
    """The four reports, the history copy, the console summary and both notification
    payloads, for a report holding the password in every encoding, split over two values
    and in a dict key: none keeps it."""
    from reports.model import CheckResult, Report
    from reports.notify import slack_message, summary_payload
    from reports.render import render_console
    from reports.writer import archive_report, scrubbed, write_reports

    password = 'wr"it\\ër&%+ ' + secrets.token_hex(3)
    redact.register(password)
    forms = encodings(password, "demo")
    evidence = {"sample": f"login form body {forms['url.quote_plus']}", "forms": forms,
                "pw_head": password[:5], "pw_tail": password[5:], password: "as a key"}
    check = CheckResult(name="logs", signal="logs", status="fail",
                        message=f"e.g. {forms['json.ascii']} and {forms['basic']}",
                        phase="baseline", evidence=evidence)
    report = Report(gate="g", target="t", started_at=1.0, finished_at=2.0,
                    verdict="not_ready", checks=[check], reason=f"because {password}",
                    probes=[{"journey": "login", "started_at": 1.0, "duration_s": 0.1,
                             "success": False, "error": f"POST /login?pw={forms['url.quote']}"}],
                    timeline=[{"at": 1.5, "text": forms["html"]}])
    written = write_reports(report, tmp_path / "out")
    archived = archive_report(report, tmp_path / "history")
    texts = {p.name: p.read_text(encoding="utf-8") for p in [*written, archived]}
    texts["console"] = render_console(scrubbed(report), "out")
    text, blocks = slack_message(report)
    texts["slack"] = text + json.dumps(blocks, ensure_ascii=False)
    texts["webhook"] = json.dumps(summary_payload(report), ensure_ascii=False)
    assert set(texts) >= {"report.json", "junit.xml", "report.md", "report.html", "console"}
    assert leaks_in(texts, password) == {}
    for name, text in texts.items():  # the halves of the split value are gone too
        assert password[:5] not in text and password[5:] not in text, name
    # masked, not dropped: the report still says what happened
    data = json.loads(texts["report.json"])
    assert data["checks"][0]["evidence"]["sample"] == "login form body ***"
    assert data["reason"] == "because ***"
