"""Pytest gate suites: each test becomes a check with its severity; nothing that could not
look ever passes; fixtures read the run file or a previous report.json."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gates.pytest_suites import run_document, run_suites
from readygate.config import Config, parse_config
from reports.model import CheckResult, Report, verdict_of

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55-for-suites"


def _config() -> Config:
    os.environ["RG_TEST_SUITE_PASSWORD"] = SECRET
    return parse_config(textwrap.dedent("""
        target:
          name: suite-target
          services: {web: "http://127.0.0.1:9"}
          credentials: {username: u, password: "${RG_TEST_SUITE_PASSWORD}"}
        backends:
          prometheus: {url: "http://127.0.0.1:9"}
    """), "suite.yaml")


def _report() -> Report:
    now = time.time()
    probes = [{"journey": "upload", "started_at": now - 3 + i * 0.5, "duration_s": 0.05,
               "success": i != 1, "trace_id": "ab" * 16, "error": None if i != 1 else "500"}
              for i in range(5)]
    return Report(gate="g", target="suite-target", started_at=now - 4, finished_at=now,
                  verdict="ready", checks=[], probes=probes,
                  phases=[{"phase": "baseline", "started_at": now - 4, "finished_at": now - 2}],
                  timeline=[{"type": "FaultInjected", "at": now - 2}])


def _suite(tmp_path: Path, body: str) -> str:
    path = tmp_path / "test_gate_suite.py"
    path.write_text("from __future__ import annotations\n\nimport pytest\n\n"
                    + textwrap.dedent(body))
    return str(path)


def _run(suites: list[str], timeout_s: float = 60) -> dict[str, CheckResult]:
    results = asyncio.run(run_suites(suites, _report(), _config(), timeout_s=timeout_s))
    return {r.name.rsplit("::", 1)[-1]: r for r in results}


def test_each_test_becomes_a_check_with_its_severity(tmp_path: Path) -> None:
    suite = _suite(tmp_path, '''
        def test_probes_were_seen(probe_results):
            """Probe results reach the suite."""
            assert len(probe_results) == 5

        def test_no_upload_failed(probe_results):
            failed = [p for p in probe_results if not p["success"]]
            assert not failed, f"{len(failed)} upload(s) failed"

        @pytest.mark.severity("warning")
        def test_a_warning_that_fails():
            assert 1 == 2

        def test_skipped_is_not_passed():
            pytest.skip("nothing to judge")

        @pytest.fixture
        def broken():
            raise RuntimeError("backend down")

        def test_fixture_error(broken):
            pass

        def test_target_and_secret_come_back_from_the_environment(target, timeline, phases):
            assert target.name == "suite-target"
            assert target.credentials.password.get_secret_value() == "SECRET_VALUE"
            assert timeline[0]["type"] == "FaultInjected" and "baseline" in phases
    '''.replace("SECRET_VALUE", SECRET))
    by = _run([suite])
    assert {k: (r.status, r.severity) for k, r in by.items()} == {
        "test_probes_were_seen": ("pass", "critical"),
        "test_no_upload_failed": ("fail", "critical"),
        "test_a_warning_that_fails": ("fail", "warning"),
        "test_skipped_is_not_passed": ("skipped", "critical"),
        "test_fixture_error": ("error", "critical"),
        "test_target_and_secret_come_back_from_the_environment": ("pass", "critical")}
    assert by["test_probes_were_seen"].message == "passed: Probe results reach the suite."
    assert by["test_no_upload_failed"].message.startswith("failed: AssertionError: 1 upload(s)")
    assert "error in setup: RuntimeError: backend down" in by["test_fixture_error"].message
    assert by["test_skipped_is_not_passed"].message == "skipped: nothing to judge"
    assert all(r.signal == "pytest" and r.phase == "pytest" for r in by.values())
    assert verdict_of(list(by.values())) == "not_ready"


def test_the_run_file_carries_no_secret_and_the_child_gets_it_by_environment() -> None:
    doc, env = run_document(_report(), _config())
    text = json.dumps(doc, default=str)
    assert SECRET not in text and "${READYGATE_SUITE_SECRET_0}" in text
    assert env == {"READYGATE_SUITE_SECRET_0": SECRET}


def test_a_warning_failure_alone_does_not_block(tmp_path: Path) -> None:
    suite = _suite(tmp_path, '''
        def test_ok(probe_results):
            assert probe_results

        @pytest.mark.severity("warning")
        def test_slow():
            assert False, "p95 too high"
    ''')
    assert verdict_of(list(_run([suite]).values())) == "ready"


def test_a_suite_without_tests_or_with_a_bad_marker_could_not_look(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test_nothing.py").write_text("x = 1\n")
    results = list(_run([str(empty)]).values())
    assert [r.status for r in results] == ["error"]
    assert "collected no tests" in results[0].message
    bad = _suite(tmp_path, '''
        @pytest.mark.severity("blocker")
        def test_x():
            pass
    ''')
    results = list(_run([bad]).values())
    assert results and all(r.status == "error" for r in results)
    assert "severity must be one of" in " ".join(r.message for r in results)


def test_a_hanging_suite_is_killed_at_its_timeout(tmp_path: Path) -> None:
    suite = _suite(tmp_path, '''
        import threading

        def test_hangs():
            threading.Event().wait(120)
    ''')
    started = time.monotonic()
    results = list(_run([suite], timeout_s=3).values())
    assert time.monotonic() - started < 20
    assert [r.status for r in results] == ["error"]
    assert "did not finish within 3s" in results[0].message


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # without this project's own test plugins (hypothesis alone imports for 1.2 s)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs",
                           "-p", "no:hypothesispytest", "-p", "no:locust", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in (env or os.environ).items()
                               if k not in ("READYGATE_RUN", "READYGATE_CONFIG")})


def test_plain_pytest_without_a_run_skips_with_the_reason_never_passes() -> None:
    proc = _pytest("gates/suites/test_example.py")
    assert "4 skipped" in proc.stdout and "passed" not in proc.stdout.split("\n")[-2]
    assert "no readygate run to judge: pass --readygate-run" in proc.stdout


def test_plain_pytest_reads_a_previous_report_json(tmp_path: Path) -> None:
    report = _report()
    report.probes = [{**p, "success": True} for p in report.probes]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(report.to_dict()))
    proc = _pytest("gates/suites/test_example.py", "--readygate-run", str(good),
                   "-k", "baseline")
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_report().to_dict()))  # a baseline upload failed
    proc = _pytest("gates/suites/test_example.py", "--readygate-run", str(bad),
                   "-k", "baseline")
    assert proc.returncode == 1 and "1 of 2 baseline probes failed" in proc.stdout
    # a report.json has no backends: the live test skips and says how to give them
    proc = _pytest("gates/suites/test_example.py", "--readygate-run", str(good),
                   "-k", "prometheus")
    assert "1 skipped" in proc.stdout and "--readygate-config" in proc.stdout


def test_plain_pytest_refuses_a_run_file_that_does_not_exist(tmp_path: Path) -> None:
    proc = _pytest("gates/suites/test_example.py", "--readygate-run", str(tmp_path / "no.json"))
    assert proc.returncode == 4 and "is not a file" in proc.stderr


