"""Process faults, command hooks and the Toxiproxy adapter: inject, see the effect, roll back,
see it gone; and the TTL watchdog that undoes them when nobody else does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chaos.base import FaultError
from chaos.config import CommandFault, ProcessFault, ToxiproxyFault
from chaos.hooks import CommandFaultInjector
from chaos.injector import build_injector
from chaos.process import ProcessFaultInjector, command_line, process_state
from chaos.toxiproxy import ToxiproxyInjector
from core import redact
from core.errors import ConfigError
from core.target import ProcessTarget, Target, ToxiproxyTarget
from readygate.config import parse_config
from tests.fakes.server import serve
from tests.fakes.toxiproxy import FakeToxiproxy

pytestmark = pytest.mark.anyio

MARKER = "readygate-chaos-test-victim"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll every 20 ms until ``predicate()``; the elapsed seconds, or fail."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real process that ticks a counter file, with a pidfile; always resumed and stopped."""
    ticks = tmp_path / "ticks"
    code = (f"import time, sys  # {MARKER}\n"
            "n = 0\n"
            "while n < 6000:\n"
            f"    n += 1; open({str(ticks)!r}, 'w').write(str(n)); time.sleep(0.01)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, MARKER])
    pidfile = tmp_path / "victim.pid"
    pidfile.write_text(str(proc.pid))
    # Between fork and exec the command line is empty (and the process would be refused).
    wait_for(lambda: MARKER in (command_line(proc.pid) or ""), 10, "victim exec'd")
    try:
        yield proc, pidfile
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process must not outlive the test
            proc.kill()
        proc.wait(5)


def ticks(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def targets(pidfile: Path, contains: str = MARKER) -> dict[str, ProcessTarget]:
    return {"worker": ProcessTarget(pidfile=str(pidfile), command_contains=contains)}


# --- process faults ---------------------------------------------------------------------


async def test_stop_pauses_the_process_and_rollback_resumes_it(
        victim: tuple[subprocess.Popen[bytes], Path], tmp_path: Path) -> None:
    proc, pidfile = victim
    tick_file = pidfile.parent / "ticks"
    wait_for(lambda: ticks(tick_file) > 0, 10, "victim started")
    injector = ProcessFaultInjector(targets(pidfile), log_dir=tmp_path / "logs")
    injected = await injector.inject(ProcessFault(kind="process", service="worker",
                                                  action="stop", ttl_s=60))
    assert process_state(proc.pid) == "T"
    frozen = ticks(tick_file)
    watchdog = injected.detail["watchdog_pid"]
    assert process_state(watchdog) in ("S", "R")
    await injector.remove(injected)
    assert process_state(proc.pid) != "T"
    wait_for(lambda: ticks(tick_file) > frozen, 5, "ticking again after rollback")
    assert process_state(watchdog) is None  # stopped and reaped with the rollback


async def test_a_paused_process_is_resumed_at_the_ttl_without_readygate(
        victim: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, pidfile = victim
    injector = ProcessFaultInjector(targets(pidfile))
    injected = await injector.inject(ProcessFault(kind="process", service="worker",
                                                  action="stop", ttl_s=1.0))
    assert process_state(proc.pid) == "T"
    # Nobody calls remove(): the detached watchdog resumes it at the TTL.
    elapsed = wait_for(lambda: process_state(proc.pid) != "T", 6, "resumed by the watchdog")
    assert elapsed < 3
    watchdog = injector._held[injected.fault_id].watchdog
    assert watchdog is not None
    assert watchdog.wait(5) == 0


async def test_kill_and_term_end_the_process(
        victim: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, pidfile = victim
    injector = ProcessFaultInjector(targets(pidfile))
    injected = await injector.inject(ProcessFault(kind="process", service="worker",
                                                  action="term", ttl_s=5))
    assert proc.wait(5) == -signal.SIGTERM
    await injector.remove(injected)  # nothing to undo; it must not fail


async def test_a_pidfile_naming_another_program_is_refused(
        victim: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, pidfile = victim
    injector = ProcessFaultInjector(targets(pidfile, contains="postgres"))
    with pytest.raises(ConfigError, match=r"chaos refused: PID \d+ from .* not a process whose "
                                          r"command contains 'postgres'"):
        await injector.inject(ProcessFault(kind="process", service="worker", ttl_s=5))
    assert process_state(proc.pid) != "T"
    with pytest.raises(ConfigError, match=r"'db' is not in target\.processes"):
        await injector.inject(ProcessFault(kind="process", service="db", ttl_s=5))
    pidfile.write_text(str(os.getpid()))
    with pytest.raises(ConfigError, match="readygate itself"):
        await ProcessFaultInjector(targets(pidfile, "python")).inject(
            ProcessFault(kind="process", service="worker", ttl_s=5))


def test_config_ties_process_faults_to_named_processes() -> None:
    text = ("target:\n  processes:\n    worker: {pidfile: /tmp/w.pid, command_contains: w}\n"
            "gates:\n  g:\n    scenario:\n      fault: {kind: process, service: db}\n")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "r.yaml")
    assert str(err.value) == ("r.yaml:7 gates.g.scenario.fault.service: 'db' is not in "
                              "target.processes (worker)")


# --- command hooks ----------------------------------------------------------------------


async def test_command_hooks_inject_and_roll_back_with_scrubbed_output(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    redact.register("hook-secret-4711")
    fault = CommandFault(kind="command", service="web", ttl_s=60,
                         inject=f"echo 'token hook-secret-4711'; touch {flag}",
                         rollback=f"rm {flag}; echo rolled back")
    injector = CommandFaultInjector(log_dir=tmp_path)
    injected = await injector.inject(fault)
    assert flag.exists()
    assert injected.detail["inject_output"].strip() == "token ***"
    await injector.remove(injected)
    assert not flag.exists()
    assert injected.detail["rollback_output"].strip() == "rolled back"
    assert process_state(injected.detail["watchdog_pid"]) is None


async def test_a_failing_hook_is_a_clear_error_and_rolls_back(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    fault = CommandFault(kind="command", service="web", ttl_s=60,
                         inject=f"touch {flag}; echo 'kubectl: forbidden' >&2; exit 7",
                         rollback=f"rm -f {flag}")
    with pytest.raises(FaultError) as err:
        await CommandFaultInjector().inject(fault)
    assert str(err.value) == "inject hook for 'web' exited 7: kubectl: forbidden"
    assert not flag.exists()  # the half-applied inject was rolled back
    slow = CommandFault(kind="command", service="web", ttl_s=60, inject="sleep 30",
                        rollback="true", timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(FaultError, match=r"timed out after 0\.3s"):
        await CommandFaultInjector().inject(slow)
    assert time.monotonic() - start < 5


async def test_the_watchdog_runs_the_rollback_at_the_ttl(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    fault = CommandFault(kind="command", service="web", ttl_s=1.0, inject=f"touch {flag}",
                         rollback=f"rm {flag}")
    injector = CommandFaultInjector()
    injected = await injector.inject(fault)
    assert flag.exists()
    wait_for(lambda: not flag.exists(), 6, "rollback by the watchdog")
    assert injector._held[injected.fault_id][1].wait(5) == 0


# --- toxiproxy --------------------------------------------------------------------------


@pytest.fixture
def toxiproxy() -> Iterator[tuple[FakeToxiproxy, str]]:
    fake = FakeToxiproxy()
    fake.proxies["redis"] = {"name": "redis", "listen": "127.0.0.1:26379",
                             "upstream": "127.0.0.1:6379", "enabled": True, "toxics": []}
    with serve(fake.app) as url:
        yield fake, url


async def test_toxiproxy_toxic_is_added_and_removed(
        toxiproxy: tuple[FakeToxiproxy, str], tmp_path: Path) -> None:
    fake, url = toxiproxy
    async with httpx.AsyncClient(trust_env=False) as client:
        injector = ToxiproxyInjector(ToxiproxyTarget(url=url, proxies={"cache": "redis"}),
                                     client, log_dir=tmp_path)
        fault = ToxiproxyFault(kind="toxiproxy", service="cache", type="latency", ttl_s=60,
                               attributes={"latency": 1000, "jitter": 100})
        injected = await injector.inject(fault)
        toxics = httpx.get(f"{url}/proxies/redis/toxics").json()
        assert toxics == [{"name": f"readygate-{injected.fault_id}", "type": "latency",
                           "stream": "downstream", "toxicity": 1.0,
                           "attributes": {"latency": 1000, "jitter": 100}}]
        await injector.remove(injected)
        assert httpx.get(f"{url}/proxies/redis/toxics").json() == []
        down = await injector.inject(ToxiproxyFault(kind="toxiproxy", service="cache",
                                                    type="down", ttl_s=60))
        assert fake.proxies["redis"]["enabled"] is False
        await injector.remove(down)
        assert fake.proxies["redis"]["enabled"] is True
        with pytest.raises(ConfigError, match=r"'db' is not in target\.toxiproxy\.proxies"):
            await injector.inject(ToxiproxyFault(kind="toxiproxy", service="db",
                                                 type="timeout", ttl_s=5))


async def test_toxiproxy_toxic_expires_by_the_watchdog(
        toxiproxy: tuple[FakeToxiproxy, str]) -> None:
    fake, url = toxiproxy
    async with httpx.AsyncClient(trust_env=False) as client:
        injector = ToxiproxyInjector(ToxiproxyTarget(url=url, proxies={"cache": "redis"}),
                                     client)
        injected = await injector.inject(ToxiproxyFault(
            kind="toxiproxy", service="cache", type="reset_peer", ttl_s=1.0,
            attributes={"timeout": 0}))
        assert len(fake.proxies["redis"]["toxics"]) == 1
        wait_for(lambda: not fake.proxies["redis"]["toxics"], 6, "toxic removed at TTL")
        assert injector._held[injected.fault_id][2].wait(5) == 0
        await injector.remove(injected)  # the toxic is already gone: not an error


async def test_one_injector_dispatches_by_kind_and_refuses_unnamed_kinds(
        toxiproxy: tuple[FakeToxiproxy, str]) -> None:
    _, url = toxiproxy
    async with httpx.AsyncClient(trust_env=False) as client:
        bare = build_injector(Target(services={"web": "http://127.0.0.1:9"}), client)
        assert bare is not None
        with pytest.raises(ConfigError, match="no target is configured for 'toxiproxy'"):
            await bare.inject(ToxiproxyFault(kind="toxiproxy", service="cache",
                                             type="latency", ttl_s=5))
        full = build_injector(Target(toxiproxy=ToxiproxyTarget(url=url,
                                                               proxies={"cache": "redis"})),
                              client)
        assert full is not None
        injected = await full.inject(ToxiproxyFault(kind="toxiproxy", service="cache",
                                                    type="latency", ttl_s=30))
        await full.remove(injected)
