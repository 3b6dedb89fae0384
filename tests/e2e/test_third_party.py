"""readygate gates a real third-party server with YAML only: Jupyter Server (issue 11).

Nobody here wrote Jupyter Server. It is installed from PyPI (every version pinned in
tests/e2e/third_party/requirements.txt) into a virtualenv of its own, cached under
``~/.cache/readygate-e2e/``, and run under OpenTelemetry auto-instrumentation by
``third_party/start-jupyter.sh``, exporting traces and logs to the sink that
``readygate stack`` starts on a fixed port (``stack.sink.listen``). Everything readygate
knows about it is in the example files under tests/e2e/third_party/ (readygate.yaml,
journeys.yaml, alerts.yml, alertmanager.yml), written from the docs as a user would, and
walked through in docs/own-service.md. Three runs through the real CLI:

1. healthy: ``readygate stack release`` is READY: probes on health, login and upload; log
   lines and a trace carrying the upload probe's trace id; Jupyter's own metrics in
   Prometheus; the user's alert rules loaded; no alert in the baseline.
2. uploads broken (Jupyter serves a read-only directory): NOT READY, naming the upload
   journey.
3. ``readygate stack crash`` kills Jupyter (a process fault, scope tree, on the pidfile this
   test writes): JupyterDown fires and is delivered, and with nothing to restart Jupyter the
   gate is NOT READY, naming the health journey.

And a fourth: Jupyter started without the log handler its config adds (its logger does not
propagate to OpenTelemetry's), so no log line carries a trace id: NOT READY by the logs check
alone.

If the server cannot be installed (no route to PyPI) the tests fail in CI (``CI=true``) and
skip elsewhere. Measured on the 2-core dev machine, venv cached: 100-135 s for all four
(about 100 s for the three runs the issue asks for, on a quiet machine); building the venv
adds about 45 s.

Gaps found while writing the example (see docs/own-service.md):
- ``stack.sink.listen`` did not exist: the stack's sink took a random port, so a service
  started before the stack had nowhere to send OTLP. Added (stack/config.py, a small edit).
- The stack's sink speaks OTLP over HTTP only (``sink.server``); SDKs whose default is gRPC
  (Python's opentelemetry-distro, Java agent 1.x) must be told
  ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.procs import free_port

HERE = Path(__file__).resolve().parent / "third_party"
REQUIREMENTS = HERE / "requirements.txt"
PASSWORD = "jupyter-Pa55-" + os.urandom(6).hex()  # new per session; must appear nowhere
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 60
COMPLETE = ".readygate-complete"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(shutil.which(b) is None for b in (
        "prometheus", "promtool", "prometheus-alertmanager", "amtool")),
        reason="needs the prometheus and prometheus-alertmanager Debian packages"),
]


def _cannot(message: str) -> None:
    """Fail in CI, skip elsewhere: a machine without PyPI may skip, CI may not."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(REQUIREMENTS.read_bytes()
                         + f"{sys.version_info[:2]}".encode()).hexdigest()[:16]
    return base / "readygate-e2e" / f"jupyter-{key}"


def _usable(venv: Path) -> bool:
    if not (venv / COMPLETE).is_file():
        return False
    try:  # the interpreter it links to may have gone (a Python upgrade)
        subprocess.run([str(venv / "bin" / "python"), "-c", "import jupyter_server"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@pytest.fixture(scope="module")
def jupyter_venv() -> Path:
    """Jupyter Server + OpenTelemetry from PyPI, in a cached virtualenv of their own."""
    venv = _cache_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never build the same venv at once
        if _usable(venv):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, timeout=120)
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
                 "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(venv, ignore_errors=True)
            _cannot(f"could not create the Jupyter virtualenv in {venv}: {exc}")
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            tail = "\n".join((pip.stderr or pip.stdout).strip().splitlines()[-5:])
            _cannot(f"could not install Jupyter Server from PyPI (pip exited "
                    f"{pip.returncode}; no network?):\n{tail}")
        (venv / COMPLETE).write_text(REQUIREMENTS.read_text(encoding="utf-8"),
                                     encoding="utf-8")
        print(f"\nbuilt {venv} in {time.monotonic() - started:.1f}s")
        return venv


@dataclass
class Jupyter:
    """A running Jupyter Server: its process, URL, pidfile and log."""

    proc: subprocess.Popen[bytes]
    pidfile: Path
    log: Path
    url: str = ""

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() \
            else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: its exporter retries for a while once the sink is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(10)


def _read_only(root: Path) -> list[str]:
    """A prefix for argv that serves ``root`` read-only (chmod does not stop root)."""
    if os.geteuid() != 0:
        root.chmod(0o555)
        return []
    # As root, a read-only bind mount in a private mount namespace; the script keeps the
    # PID (unshare and sh exec), so the pidfile still names Jupyter.
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or shutil.which("mount") is None:
        _cannot("running as root, and cannot make a directory read-only for Jupyter "
                f"(unshare --mount: {probe.stderr.strip() or 'no mount binary'})")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind -o ro "$1" "$1" && shift && exec "$@"', "sh", str(root)]


@pytest.fixture
def start_jupyter(jupyter_venv: Path, tmp_path: Path) -> Iterator[Callable[..., Jupyter]]:
    """Start Jupyter as docs/own-service.md does; every one is stopped after the test."""
    started: list[Jupyter] = []
    roots: list[Path] = []

    def start(sink_port: int, *, read_only: bool = False,
              config: Path | None = None) -> Jupyter:
        work = tmp_path / f"jupyter-{len(started)}"
        root = work / "notebooks"
        root.mkdir(parents=True)
        roots.append(root)
        runtime = work / "runtime"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "PYTHON", "JUPYTER")) and k != "VIRTUAL_ENV"}
        env.update({
            "JUPYTER_VENV": str(jupyter_venv), "JUPYTER_PASSWORD": PASSWORD,
            "JUPYTER_ROOT_DIR": str(root), "JUPYTER_PORT": "0",
            "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(work / "config"),
            "JUPYTER_DATA_DIR": str(work / "data"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"})
        if config is not None:
            env["JUPYTER_SERVER_CONFIG"] = str(config)
        argv = [*(_read_only(root) if read_only else []), str(HERE / "start-jupyter.sh"),
                *(["--allow-root"] if os.geteuid() == 0 else [])]
        log = work / "jupyter.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        jupyter = Jupyter(proc, work / "jupyter.pid", log)
        started.append(jupyter)
        jupyter.pidfile.write_text(f"{proc.pid}\n")
        jupyter.url = _wait_started(jupyter, runtime / f"jpserver-{proc.pid}.json")
        return jupyter

    yield start
    for jupyter in started:
        jupyter.stop()
    for root in roots:
        root.chmod(0o755)  # so tmp_path can be removed


def _wait_started(jupyter: Jupyter, info: Path) -> str:
    """Jupyter's URL once it answers /api (it writes its server info file when it listens)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if jupyter.proc.poll() is not None:
            raise AssertionError(f"Jupyter exited ({jupyter.proc.returncode}):\n"
                                 f"{jupyter.log_tail()}")
        if info.is_file():
            with contextlib.suppress(ValueError, KeyError, httpx.HTTPError):
                url = str(json.loads(info.read_text())["url"]).rstrip("/")
                if httpx.get(url + "/api", timeout=2).status_code == 200:
                    return url
        time.sleep(0.2)
    raise AssertionError(f"Jupyter did not start within {START_TIMEOUT_S}s:\n"
                         f"{jupyter.log_tail()}")


@dataclass
class GateRun:
    """One ``readygate stack GATE`` run and what it left behind."""

    returncode: int
    stdout: str
    stderr: str
    out: Path
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)

    def status(self, name: str) -> str:
        return self.check(name)["status"]

    def check(self, name: str) -> dict[str, Any]:
        found = [c for c in self.report["checks"] if c["name"] == name]
        assert found, f"no check named {name!r}: {[c['name'] for c in self.report['checks']]}"
        return found[0]

    def failed(self) -> list[str]:
        return [c["name"] for c in self.report["checks"] if c["status"] == "fail"]


def run_gate(gate: str, jupyter: Jupyter, sink_port: int, out: Path) -> GateRun:
    """``readygate stack GATE --config readygate.yaml`` from the example's directory."""
    env = {**os.environ, "JUPYTER_URL": jupyter.url, "JUPYTER_PASSWORD": PASSWORD,
           "JUPYTER_PIDFILE": str(jupyter.pidfile), "READYGATE_SINK_PORT": str(sink_port)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "readygate", "stack", gate, "--config",
                           "readygate.yaml", "--out", str(out)], cwd=HERE, env=env,
                          capture_output=True, text=True, timeout=240)
    run = GateRun(proc.returncode, proc.stdout, proc.stderr, out, time.monotonic() - started)
    print(f"\nreadygate stack {gate}: exit {run.returncode} in {run.seconds:.1f}s")
    assert (out / "report.json").is_file(), proc.stdout + proc.stderr
    run.report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    _assert_clean(run)
    return run


def _assert_clean(run: GateRun) -> None:
    """The stack stopped everything it started; the password shows up nowhere."""
    pids = run.report["stack"]["pids"]
    assert len(pids) == 3, run.report["stack"]  # sink, Alertmanager, Prometheus
    assert [pid for pid in pids if alive(pid)] == []
    assert PASSWORD not in run.stdout + run.stderr
    for path in run.out.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def alive(pid: int) -> bool:
    """Whether a process (zombies aside) with this PID exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_healthy_jupyter_is_ready(tmp_path: Path,
                                  start_jupyter: Callable[..., Jupyter]) -> None:
    """Probes, logs and a trace by the probe's trace id, metrics, rules, no alert: READY."""
    sink_port = free_port()
    jupyter = start_jupyter(sink_port)
    run = run_gate("release", jupyter, sink_port, tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.report["verdict"] == "ready"
    checks = {c["name"]: c["status"] for c in run.report["checks"]}
    assert checks == {
        "health probes succeed": "pass", "login probes succeed": "pass",
        "upload probes succeed": "pass",
        "upload requests are logged with the probe's trace id": "pass",
        "upload requests are traced": "pass",
        "Prometheus sees the probes' requests in Jupyter's metrics": "pass",
        "metric contract (1 metrics)": "pass",
        "alert rule JupyterDown is sound": "pass",
        "alert rule JupyterSavesFailing is sound": "pass",
        "no alert during healthy baseline": "pass"}, run.stdout
    # The sink's spans and log lines carry the trace id readygate chose for an upload probe:
    # Jupyter took the probe's traceparent as its server span's parent.
    uploads = {p["trace_id"] for p in run.report["probe_results"] if p["journey"] == "upload"}
    trace = run.check("upload requests are traced")["evidence"]
    logs = run.check("upload requests are logged with the probe's trace id")["evidence"]
    assert trace["trace_id"] in uploads and logs["trace_id"] in uploads
    # the spans seen when the check passed: Jupyter's batch exporter may still be sending
    # the rest of the journey's (one per request) on a busy machine
    assert trace["services"] == ["jupyter"] and trace["spans"] >= 1
    assert logs["lines"] >= 3
    assert run.report["stack"]["components"]["sink"] == f"http://127.0.0.1:{sink_port}"


def test_read_only_notebook_dir_is_not_ready_and_names_upload(
        tmp_path: Path, start_jupyter: Callable[..., Jupyter]) -> None:
    """Jupyter cannot save: the upload journey fails, the gate is NOT READY and says so."""
    sink_port = free_port()
    jupyter = start_jupyter(sink_port, read_only=True)
    run = run_gate("release", jupyter, sink_port, tmp_path / "out")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.report["verdict"] == "not_ready"
    upload = run.check("upload probes succeed")
    assert upload["status"] == "fail"
    assert "save: PUT /api/contents/readygate-" in upload["message"], upload["message"]
    assert run.status("health probes succeed") == "pass"
    assert run.status("login probes succeed") == "pass"
    assert "upload probes succeed" in run.failed()
    assert "upload" in run.stdout and "NOT READY" in run.stdout
    assert "upload probes succeed" in (run.out / "report.md").read_text(encoding="utf-8")


def test_killed_jupyter_fires_its_alert_and_is_not_ready(
        tmp_path: Path, start_jupyter: Callable[..., Jupyter]) -> None:
    """A process fault kills Jupyter: JupyterDown fires and notifies; nothing restarts it."""
    sink_port = free_port()
    jupyter = start_jupyter(sink_port)
    run = run_gate("crash", jupyter, sink_port, tmp_path / "out")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.report["verdict"] == "not_ready"
    assert run.status("alert JupyterDown fires") == "pass"
    assert run.status("notification JupyterDown firing delivered") == "pass"
    assert run.status("jupyter /api reports down") == "pass"
    assert run.failed() == ["Jupyter is back after the crash"]
    assert "health probes not succeeding" in run.check("Jupyter is back after the crash")[
        "message"]
    fault = run.report["faults"][0]
    assert (fault["kind"], fault["detail"]["pids"]) == ("process", [jupyter.proc.pid])
    jupyter.proc.wait(5)  # killed by readygate, not by this test
    assert jupyter.proc.returncode == -signal.SIGKILL


def test_without_the_log_handler_the_logs_check_fails(
        tmp_path: Path, start_jupyter: Callable[..., Jupyter]) -> None:
    """Jupyter's own config minus its logging_config: no line carries a trace id, NOT READY.

    Jupyter's "ServerApp" logger does not propagate to the root logger, where OpenTelemetry's
    logging instrumentation hangs its handler; docs/own-service.md says what to configure.
    """
    config = tmp_path / "jupyter_server_config.py"
    original = (HERE / "jupyter_server_config.py").read_text(encoding="utf-8")
    config.write_text(original.split("\n# Logs with trace ids.")[0] + "\n", encoding="utf-8")
    assert "logging_config" not in config.read_text(encoding="utf-8")
    sink_port = free_port()
    jupyter = start_jupyter(sink_port, config=config)
    run = run_gate("release", jupyter, sink_port, tmp_path / "out")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.failed() == ["upload requests are logged with the probe's trace id"]
    logs = run.check("upload requests are logged with the probe's trace id")
    assert logs["message"].startswith("no log line carries trace_id "), logs["message"]
    assert run.status("upload requests are traced") == "pass"  # the traces still flow
